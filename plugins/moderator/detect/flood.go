package detect

import (
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// DefaultMaxSenders bounds the senders (or rooms) a stateful detector keeps
// state for when its MaxSenders is 0.
const DefaultMaxSenders = 10000

// expireBatch is how many idle entries one call may drop, so the cost of a
// call stays bounded.
const expireBatch = 8

type event struct {
	at   time.Time
	size int
	who  uint64
}

// trim drops the events older than since from the front of evs.
func trim(evs []event, since time.Time) []event {
	i := 0
	for i < len(evs) && evs[i].at.Before(since) {
		i++
	}
	if i == 0 {
		return evs
	}
	return evs[:copy(evs, evs[i:])]
}

// Flood flags a sender who sends too many messages or bytes in a window.
type Flood struct {
	// Messages is the most messages one sender may send in Window
	// (default 5).
	Messages int
	// Bytes is the most bytes of text one sender may send in Window
	// (default 2000).
	Bytes int
	// Window is the sliding window (default 5s).
	Window time.Duration
	// Points is the weight of a finding.
	Points int
	// MaxSenders bounds the senders kept (default DefaultMaxSenders).
	MaxSenders int
	// Clock tells the time (default time.Now).
	Clock Clock

	once  sync.Once
	mu    sync.Mutex
	state *lru[[]event]
}

func (f *Flood) init() {
	f.Messages = orInt(f.Messages, 5)
	f.Bytes = orInt(f.Bytes, 2000)
	f.Window = orDur(f.Window, 5*time.Second)
	f.state = newLRU[[]event](orInt(f.MaxSenders, DefaultMaxSenders))
}

// Name implements Detector.
func (f *Flood) Name() string { return "flood" }

// Check implements Detector. A message without a sender key is not
// counted: it cannot be told whose it is.
func (f *Flood) Check(in *Input, out []Verdict) []Verdict {
	if in.Msg.Sender == "" {
		return out
	}
	f.once.Do(f.init)
	now := f.Clock.now()
	f.mu.Lock()
	f.state.expire(now.Add(-f.Window), expireBatch)
	evs, fresh := f.state.get(stateKey{in.Msg.Room, in.Msg.Sender}, now)
	if fresh {
		*evs = (*evs)[:0]
	}
	*evs = trim(*evs, now.Add(-f.Window))
	if len(*evs) > f.Messages {
		*evs = (*evs)[:copy(*evs, (*evs)[1:])]
	}
	*evs = append(*evs, event{at: now, size: len(in.Msg.Body)})
	n, total := len(*evs), 0
	for _, e := range *evs {
		total += e.size
	}
	f.mu.Unlock()
	switch {
	case n > f.Messages:
		return append(out, Verdict{Detector: "flood", Rule: "messages", Points: f.Points,
			Detail: fmt.Sprintf("%d messages in %s (limit %d)", n, f.Window, f.Messages)})
	case total > f.Bytes:
		return append(out, Verdict{Detector: "flood", Rule: "bytes", Points: f.Points,
			Detail: fmt.Sprintf("%d bytes in %s (limit %d)", total, f.Window, f.Bytes)})
	}
	return out
}

// Senders returns how many senders the detector holds state for.
func (f *Flood) Senders() int {
	f.once.Do(f.init)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.len()
}

// Raid flags a room flooded by many senders at once.
type Raid struct {
	// Messages is the number of messages in Window that makes a raid
	// (default 20).
	Messages int
	// Senders is the fewest distinct senders among them (default 5).
	Senders int
	// Window is the sliding window (default 10s).
	Window time.Duration
	// Points is the weight of a finding (a room finding: the moderator
	// acts on the room).
	Points int
	// MaxRooms bounds the rooms kept (default DefaultMaxSenders).
	MaxRooms int
	// Clock tells the time (default time.Now).
	Clock Clock

	once  sync.Once
	mu    sync.Mutex
	state *lru[[]event]
}

var senderSeed = maphash.MakeSeed()

func (r *Raid) init() {
	r.Messages = orInt(r.Messages, 20)
	r.Senders = orInt(r.Senders, 5)
	r.Window = orDur(r.Window, 10*time.Second)
	r.state = newLRU[[]event](orInt(r.MaxRooms, DefaultMaxSenders))
}

// Name implements Detector.
func (r *Raid) Name() string { return "raid" }

// Check implements Detector.
func (r *Raid) Check(in *Input, out []Verdict) []Verdict {
	r.once.Do(r.init)
	now := r.Clock.now()
	who := maphash.String(senderSeed, in.Msg.Sender)
	r.mu.Lock()
	r.state.expire(now.Add(-r.Window), expireBatch)
	evs, fresh := r.state.get(stateKey{room: in.Msg.Room}, now)
	if fresh {
		*evs = (*evs)[:0]
	}
	*evs = trim(*evs, now.Add(-r.Window))
	if len(*evs) >= r.Messages {
		*evs = (*evs)[:copy(*evs, (*evs)[1:])]
	}
	*evs = append(*evs, event{at: now, who: who})
	n := len(*evs)
	distinct := 0
	if n >= r.Messages {
		distinct = countDistinct(*evs, r.Senders)
	}
	r.mu.Unlock()
	if n < r.Messages || distinct < r.Senders {
		return out
	}
	return append(out, Verdict{Detector: "raid", Rule: "raid", Points: r.Points, Room: true,
		Detail: fmt.Sprintf("%d messages from %d or more senders in %s", n, distinct, r.Window)})
}

// countDistinct counts distinct senders, stopping at enough.
func countDistinct(evs []event, enough int) int {
	var seen [64]uint64
	n := 0
outer:
	for _, e := range evs {
		for _, s := range seen[:min(n, len(seen))] {
			if s == e.who {
				continue outer
			}
		}
		if n < len(seen) {
			seen[n] = e.who
		}
		n++
		if n >= enough {
			return n
		}
	}
	return n
}

// JoinWave flags many joins to a room in a short time. It is fed joins, not
// messages: give it to a Set and call Set.Join, or call Join directly.
type JoinWave struct {
	// Joins is the number of joins in Window that makes a wave (default 10).
	Joins int
	// Window is the sliding window (default 10s); a wave is reported at
	// most once per Window while it lasts.
	Window time.Duration
	// Points is the weight of a finding (a room finding).
	Points int
	// MaxRooms bounds the rooms kept (default DefaultMaxSenders).
	MaxRooms int
	// Clock tells the time (default time.Now).
	Clock Clock

	once  sync.Once
	mu    sync.Mutex
	state *lru[joinState]
}

type joinState struct {
	times    []time.Time
	reported time.Time
}

func (j *JoinWave) init() {
	j.Joins = orInt(j.Joins, 10)
	j.Window = orDur(j.Window, 10*time.Second)
	j.state = newLRU[joinState](orInt(j.MaxRooms, DefaultMaxSenders))
}

// Name returns the detector's name.
func (j *JoinWave) Name() string { return "joinwave" }

// Check implements Detector; joins come through Join, so it adds nothing.
func (j *JoinWave) Check(_ *Input, out []Verdict) []Verdict { return out }

// Join records that sender joined room and reports a wave when the joins in
// the window reach the limit.
func (j *JoinWave) Join(room, sender string) (Verdict, bool) {
	j.once.Do(j.init)
	now := j.Clock.now()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.state.expire(now.Add(-j.Window), expireBatch)
	st, fresh := j.state.get(stateKey{room: room}, now)
	if fresh {
		st.times, st.reported = st.times[:0], time.Time{}
	}
	since := now.Add(-j.Window)
	i := 0
	for i < len(st.times) && st.times[i].Before(since) {
		i++
	}
	st.times = st.times[:copy(st.times, st.times[i:])]
	if len(st.times) >= j.Joins {
		st.times = st.times[:copy(st.times, st.times[1:])]
	}
	st.times = append(st.times, now)
	if len(st.times) < j.Joins || !st.reported.IsZero() && now.Sub(st.reported) < j.Window {
		return Verdict{}, false
	}
	st.reported = now
	return Verdict{Detector: "joinwave", Rule: "joinwave", Points: j.Points, Room: true,
		Detail: fmt.Sprintf("%d joins in %s (limit %d), the last by %s", len(st.times), j.Window, j.Joins, sender)}, true
}

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}
