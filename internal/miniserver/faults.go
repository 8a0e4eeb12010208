package miniserver

import (
	"net"
	"time"

	"crier/internal/xmlsplit"
)

// SendRaw writes raw bytes, as they are, to every session of the bare or
// full JID addr: a test's way to feed a client malformed XML, invalid
// UTF-8 or hostile stanzas "from the server". It returns ErrNoOccupant when
// no session matches.
//
// The complete stanzas in raw count for stream management as any stanza
// the server sends (and are kept for a resumption), so that a client's
// count and the server's agree after injected input.
func (s *Server) SendRaw(addr string, raw []byte) error {
	stanzas := rawStanzas(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.clients {
		if c.gone || (c.bare != addr && c.full.String() != addr) {
			continue
		}
		c.send(append([]byte(nil), raw...))
		for _, st := range stanzas {
			c.smSentLocked(st)
		}
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

// rawStanzas returns the complete top-level message, presence and iq
// elements of raw (the ones a client counts for XEP-0198), up to the
// first piece that is not well-formed.
func rawStanzas(raw []byte) [][]byte {
	var sp xmlsplit.Splitter
	evs, _ := sp.Feed(append([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"), raw...))
	var out [][]byte
	for _, ev := range evs {
		if ev.Kind != xmlsplit.Element || ev.Name.Space != "" {
			continue
		}
		switch ev.Name.Local {
		case "message", "presence", "iq":
			out = append(out, ev.Raw)
		}
	}
	return out
}
