package miniserver

import (
	"net"
	"time"
)

// SendRaw writes raw bytes, as they are, to every session of the bare or
// full JID addr: a test's way to feed a client malformed XML, invalid
// UTF-8 or hostile stanzas "from the server". It returns ErrNoOccupant when
// no session matches.
func (s *Server) SendRaw(addr string, raw []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.clients {
		if c.gone || (c.bare != addr && c.full.String() != addr) {
			continue
		}
		c.send(append([]byte(nil), raw...))
		n++
	}
	if n == 0 {
		return ErrNoOccupant
	}
	return nil
}

// Forget removes an occupant from a room without telling anyone, as a
// server that lost its room state would: the client still believes it is
// joined until it checks (XEP-0410 self-ping).
func (s *Server) Forget(roomName, nick string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[s.roomKey(roomName)]
	if r == nil {
		return ErrNoRoom
	}
	if r.occupants[nick] == nil {
		return ErrNoOccupant
	}
	delete(r.occupants, nick)
	return nil
}

// shapedConn reads at most rate bytes per second: after each read it
// sleeps as long as the bytes "cost".
type shapedConn struct {
	net.Conn
	rate int
}

func (c *shapedConn) Read(p []byte) (int, error) {
	if chunk := max(1, c.rate/10); len(p) > chunk {
		p = p[:chunk]
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		time.Sleep(time.Duration(n) * time.Second / time.Duration(c.rate))
	}
	return n, err
}
