package miniserver

import (
	"time"

	"mellium.im/xmpp/jid"
)

// The multi-user chat service's limits and counts (Config.JoinDelay,
// MaxPendingJoins, MaxRoomsPerUser, RoomMessageInterval, IgnoreJoins): what
// a real server does to protect itself from a client in many rooms, for
// tests of a client's pacing.

// MUCStats are the chat service's counts since Start.
type MUCStats struct {
	Joins int64 // joins answered with the room's presence
	// PendingPeak is the most joins waiting for their answer at once
	// (with JoinDelay).
	PendingPeak int
	// JoinsRefused counts joins answered resource-constraint
	// (MaxPendingJoins, MaxRoomsPerUser); JoinsIgnored joins never
	// answered (IgnoreJoins).
	JoinsRefused, JoinsIgnored int64
	// MessagesLimited counts room messages bounced by RoomMessageInterval.
	MessagesLimited int64
	// SelfPings holds when each ping to the sender's own occupant came in
	// (XEP-0410), the last selfPingMemory of them.
	SelfPings []time.Time
}

const selfPingMemory = 10000

// limitState is the chat service's limits bookkeeping; guarded by
// Server.mu.
type limitState struct {
	pending  int
	ignored  map[string]bool      // room localparts whose joins go unanswered
	lastSent map[string]time.Time // occupant JID -> its last room message
	st       MUCStats
}

// IgnoreJoins makes joins to the room roomName go unanswered (on) or
// answered again (off), as a room on a stuck server would.
func (s *Server) IgnoreJoins(roomName string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lim.ignored == nil {
		s.lim.ignored = make(map[string]bool)
	}
	k := s.roomKey(roomName)
	if on {
		s.lim.ignored[k] = true
	} else {
		delete(s.lim.ignored, k)
	}
}

// MUCStats returns the chat service's counts.
func (s *Server) MUCStats() MUCStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.lim.st
	st.SelfPings = append([]time.Time(nil), st.SelfPings...)
	return st
}

// ResetMUCStats sets the chat service's counts back to zero.
func (s *Server) ResetMUCStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.st = MUCStats{}
}

// admitJoinLocked applies the join limits to a join of c to the room of
// to. It reports false when the join is answered later or never (the
// caller does nothing more with it), true when it goes on now.
func (s *Server) admitJoinLocked(c *client, e *el, to jid.JID) bool {
	if s.lim.ignored[to.Localpart()] {
		s.lim.st.JoinsIgnored++
		return false
	}
	if n := s.cfg.MaxPendingJoins; n > 0 && s.lim.pending >= n {
		s.lim.st.JoinsRefused++
		s.mucError(c, e, "wait", "resource-constraint")
		return false
	}
	if n := s.cfg.MaxRoomsPerUser; n > 0 && s.roomsOfLocked(c.bare) >= n {
		s.lim.st.JoinsRefused++
		s.mucError(c, e, "wait", "resource-constraint")
		return false
	}
	if s.cfg.JoinDelay <= 0 {
		s.lim.st.Joins++
		return true
	}
	s.lim.pending++
	s.lim.st.PendingPeak = max(s.lim.st.PendingPeak, s.lim.pending)
	e = e.clone()
	time.AfterFunc(s.cfg.JoinDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lim.pending--
		if c.gone {
			return // the session ended (a restart ends them all)
		}
		r := s.rooms[to.Localpart()]
		if r != nil && r.occupantOf(c) != nil {
			return // joined meanwhile (a second join of the same room)
		}
		s.lim.st.Joins++
		s.joinLocked(c, e, to, r)
	})
	return false
}

// roomsOfLocked counts the rooms a user is in.
func (s *Server) roomsOfLocked(bare string) int {
	n := 0
	for _, r := range s.rooms {
		for _, o := range r.occupants {
			if o.c.bare == bare {
				n++
				break
			}
		}
	}
	return n
}

// limitMessageLocked applies RoomMessageInterval to a room message of
// occupant o: one sent sooner after the previous one is bounced with
// <error type='wait'><policy-violation/></error>, as Prosody's
// mod_muc_limits does. It reports whether the message was bounced.
func (s *Server) limitMessageLocked(c *client, e *el, r *room, o *occupant) bool {
	iv := s.cfg.RoomMessageInterval
	if iv <= 0 {
		return false
	}
	if s.lim.lastSent == nil {
		s.lim.lastSent = make(map[string]time.Time)
	}
	k := r.occJID(o.nick)
	now := time.Now()
	if last, ok := s.lim.lastSent[k]; ok && now.Sub(last) < iv {
		s.lim.st.MessagesLimited++
		s.replyError(c, e, "wait", "policy-violation")
		return true
	}
	s.lim.lastSent[k] = now
	return false
}

// selfPingLocked records a ping to the sender's own occupant.
func (s *Server) selfPingLocked() {
	p := &s.lim.st.SelfPings
	if len(*p) >= selfPingMemory {
		*p = append((*p)[:0], (*p)[len(*p)/2:]...)
	}
	*p = append(*p, time.Now())
}
