package miniserver

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
