package detect

import (
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// Repeat flags a sender who keeps sending the same or nearly the same
// message. Messages are compared on their matching copy, so invisible
// suffixes, look-alike letters, stretched letters and changed spacing do not
// make a message new.
type Repeat struct {
	// Max is the number of similar messages in Window, this one included,
	// that is flagged (default 3).
	Max int
	// Window is how far back messages are compared (default 60s).
	Window time.Duration
	// Similarity is the bigram overlap, 0..1, at which two messages count as
	// the same (default 0.8).
	Similarity float64
	// MinLength is the fewest letters a message needs to be compared by
	// similarity; shorter ones must be equal (default 8).
	MinLength int
	// History is how many messages are kept per sender (default 8).
	History int
	// Points is the weight of a finding.
	Points int
	// MaxSenders bounds the senders kept (default DefaultMaxSenders).
	MaxSenders int
	// Clock tells the time (default time.Now).
	Clock Clock

	once  sync.Once
	mu    sync.Mutex
	state *lru[[]seen]
}

type seen struct {
	at  time.Time
	sk  sketch
	who uint64
}

func (r *Repeat) init() {
	r.Max = orInt(r.Max, 3)
	r.Window = orDur(r.Window, time.Minute)
	if r.Similarity <= 0 {
		r.Similarity = 0.8
	}
	r.MinLength = orInt(r.MinLength, 8)
	r.History = orInt(r.History, 8)
	r.state = newLRU[[]seen](orInt(r.MaxSenders, DefaultMaxSenders))
}

// Name implements Detector.
func (r *Repeat) Name() string { return "repeat" }

// Check implements Detector. A message without a sender key is not
// compared: it cannot be told whose it is.
func (r *Repeat) Check(in *Input, out []Verdict) []Verdict {
	if in.Msg.Sender == "" {
		return out
	}
	r.once.Do(r.init)
	sk := in.sketch()
	if sk.n == 0 {
		return out
	}
	now := r.Clock.now()
	r.mu.Lock()
	r.state.expire(now.Add(-r.Window), expireBatch)
	hist, fresh := r.state.get(stateKey{in.Msg.Room, in.Msg.Sender}, now)
	if fresh {
		*hist = (*hist)[:0]
	}
	since := now.Add(-r.Window)
	same, best := 1, 0.0
	for i := range *hist {
		h := &(*hist)[i]
		if h.at.Before(since) {
			continue
		}
		if sk.similar(&h.sk, r.Similarity, r.MinLength) {
			same++
			best = max(best, sk.similarity(&h.sk))
		}
	}
	if len(*hist) >= r.History {
		*hist = (*hist)[:copy(*hist, (*hist)[1:])]
	}
	*hist = append(*hist, seen{at: now, sk: *sk})
	r.mu.Unlock()
	if same < r.Max {
		return out
	}
	return append(out, Verdict{Detector: "repeat", Rule: "repeat", Points: r.Points,
		Norm:   string(in.Text.Bytes()),
		Detail: fmt.Sprintf("%d similar messages in %s (limit %d, closest %.0f%%)", same, r.Window, r.Max, best*100)})
}

// Copypasta flags the same text sent by many occupants of a room.
type Copypasta struct {
	// Senders is the number of distinct senders of similar messages in
	// Window, this one included, that is flagged (default 3).
	Senders int
	// Window is how far back messages are compared (default 60s).
	Window time.Duration
	// Similarity is the bigram overlap, 0..1, at which two messages count as
	// the same (default 0.8).
	Similarity float64
	// MinLength is the fewest letters a message needs to be checked at all,
	// so "gg" and "lol" from everyone pass (default 12).
	MinLength int
	// History is how many messages are kept per room (default 50).
	History int
	// Points is the weight of a finding.
	Points int
	// MaxRooms bounds the rooms kept (default DefaultMaxSenders).
	MaxRooms int
	// Clock tells the time (default time.Now).
	Clock Clock

	once  sync.Once
	mu    sync.Mutex
	state *lru[[]seen]
}

func (c *Copypasta) init() {
	c.Senders = orInt(c.Senders, 3)
	c.Window = orDur(c.Window, time.Minute)
	if c.Similarity <= 0 {
		c.Similarity = 0.8
	}
	c.MinLength = orInt(c.MinLength, 12)
	c.History = orInt(c.History, 50)
	c.state = newLRU[[]seen](orInt(c.MaxRooms, DefaultMaxSenders))
}

// Name implements Detector.
func (c *Copypasta) Name() string { return "copypasta" }

// Check implements Detector. A message without a sender key is not
// compared: distinct senders cannot be counted.
func (c *Copypasta) Check(in *Input, out []Verdict) []Verdict {
	if in.Msg.Sender == "" {
		return out
	}
	c.once.Do(c.init)
	sk := in.sketch()
	if sk.n < c.MinLength {
		return out
	}
	now := c.Clock.now()
	who := maphash.String(senderSeed, in.Msg.Sender)
	c.mu.Lock()
	c.state.expire(now.Add(-c.Window), expireBatch)
	hist, fresh := c.state.get(stateKey{room: in.Msg.Room}, now)
	if fresh {
		*hist = (*hist)[:0]
	}
	since := now.Add(-c.Window)
	var others [16]uint64
	n := 0
outer:
	for i := len(*hist) - 1; i >= 0; i-- {
		h := &(*hist)[i]
		if h.at.Before(since) {
			break // older ones are older still
		}
		if h.who == who || !sk.similar(&h.sk, c.Similarity, c.MinLength) {
			continue
		}
		for _, o := range others[:min(n, len(others))] {
			if o == h.who {
				continue outer
			}
		}
		if n < len(others) {
			others[n] = h.who
		}
		n++
	}
	if len(*hist) >= c.History {
		*hist = (*hist)[:copy(*hist, (*hist)[1:])]
	}
	*hist = append(*hist, seen{at: now, sk: *sk, who: who})
	c.mu.Unlock()
	if n+1 < c.Senders {
		return out
	}
	return append(out, Verdict{Detector: "copypasta", Rule: "copypasta", Points: c.Points,
		Norm:   string(in.Text.Bytes()),
		Detail: fmt.Sprintf("sent by %d senders in %s (limit %d)", n+1, c.Window, c.Senders)})
}

// Mentions flags messages that mention many current occupants.
type Mentions struct {
	// Max is the most distinct occupants one message may mention
	// (default 5).
	Max int
	// Points is the weight of a finding.
	Points int
}

// Name implements Detector.
func (m *Mentions) Name() string { return "mentions" }

// Check implements Detector. A mention is a word that is an occupant's nick,
// with an optional "@" before it and punctuation after it.
func (m *Mentions) Check(in *Input, out []Verdict) []Verdict {
	occ := in.Msg.Occupants
	if occ == nil {
		return out
	}
	limit := orInt(m.Max, 5)
	var found [32]string
	n, first := 0, ""
	forWords(in.Msg.Body, func(w string) {
		nick := mentionNick(w)
		if nick == "" || !occ.IsOccupant(nick) {
			return
		}
		for _, f := range found[:min(n, len(found))] {
			if equalFoldASCII(f, nick) {
				return
			}
		}
		if n < len(found) {
			found[n] = nick
		}
		if n == 0 {
			first = nick
		}
		n++
	})
	if n <= limit {
		return out
	}
	return append(out, Verdict{Detector: "mentions", Rule: "mentions", Points: m.Points, Raw: first,
		Detail: fmt.Sprintf("%d occupants mentioned (limit %d)", n, limit)})
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
