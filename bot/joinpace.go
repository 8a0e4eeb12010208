package bot

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmpp/stanza"
)

// Join pacing. A bot in a thousand rooms must not send a thousand join
// presences at once after every reconnect: a server protects itself from
// that (Prosody's room creation, ejabberd's shapers and per-user limits)
// and answers with errors, or takes so long that joins time out. So joins
// are paced by what the server answers, as TCP paces segments by acks: at
// most window joins are outstanding (sent and not yet answered). Each join
// answered widens the window: by one below the threshold (the window
// doubles every round trip) and by 1/window above it. A refusal saying
// "too much" (an error of type wait, resource-constraint, policy-violation,
// service-unavailable) halves the window and holds back every new join for
// a backoff that grows with refusals in a row; a join left unanswered
// halves it too. A refusal also sets a ceiling: the refused join went out
// with k joins outstanding, so the server takes at most k-1, and the window
// stays below that (a rejoin of every room after a server restart does not
// trip the limit again). The ceiling is forgotten after joinCeilingMemory
// without a refusal, in case the limit was raised. The threshold and the
// ceiling are kept across sessions, the window starts small again with
// each.
const (
	joinWindowStart = 8
	joinWindowMax   = 256
	// joinCeilingMemory is how long a ceiling learned from a refusal holds.
	joinCeilingMemory = time.Hour
)

// joinPacer is the rooms' join window. It is guarded by rooms.mu.
type joinPacer struct {
	window    float64   // joins that may be outstanding
	thresh    float64   // above it the window grows by 1/window per answer
	ceiling   float64   // the window never grows beyond it
	refused   time.Time // the last slow-down refusal
	inflight  int       // joins sent and not answered
	queue     []string
	hold      time.Time // no new join before this (after a refusal)
	holdTimer *time.Timer
	refusals  int // slow-down refusals in a row, for the hold's backoff
	// peak is the most joins outstanding at once since the session began.
	peak int

	windowG, inflightG prometheus.Gauge
	failures           *prometheus.CounterVec
}

// Reasons of crier_room_join_failures_total.
var joinFailureReasons = []string{"slow_down", "timeout", "refused"}

func newJoinPacer(reg *prometheus.Registry) *joinPacer {
	p := &joinPacer{
		window:  joinWindowStart,
		thresh:  joinWindowMax,
		ceiling: joinWindowMax,
		windowG: prometheus.NewGauge(prometheus.GaugeOpts{Name: "crier_room_join_window",
			Help: "Room joins that may be outstanding now; it grows as the server answers joins and halves when it refuses one as too much or leaves it unanswered."}),
		inflightG: prometheus.NewGauge(prometheus.GaugeOpts{Name: "crier_room_joins_outstanding",
			Help: "Room joins sent and not answered yet."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_room_join_failures_total",
			Help: "Room joins that failed, by reason: slow_down (the server said too much: every join waits), timeout (no answer), refused (any other error)."}, []string{"reason"}),
	}
	for _, r := range joinFailureReasons {
		p.failures.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(p.windowG, p.inflightG, p.failures)
	}
	p.gauges()
	return p
}

func (p *joinPacer) gauges() {
	p.windowG.Set(float64(int(p.window)))
	p.inflightG.Set(float64(p.inflight))
}

// answered widens the window after a join the server answered.
func (p *joinPacer) answered() {
	p.refusals = 0
	if p.ceiling < joinWindowMax && time.Since(p.refused) > joinCeilingMemory {
		p.ceiling = joinWindowMax
	}
	if p.window < p.thresh {
		p.window++
	} else {
		p.window += 1 / p.window
	}
	p.window = min(p.window, p.ceiling)
}

// shrink halves the window.
func (p *joinPacer) shrink() {
	p.thresh = max(p.window/2, 1)
	p.window = p.thresh
}

// reset starts a new session: nothing is outstanding or queued, the window
// starts small again (below what the server showed it takes).
func (p *joinPacer) reset() {
	p.inflight, p.peak, p.refusals = 0, 0, 0
	clear(p.queue)
	p.queue = p.queue[:0]
	p.hold = time.Time{}
	if p.holdTimer != nil {
		p.holdTimer.Stop()
		p.holdTimer = nil
	}
	p.window = min(joinWindowStart, p.thresh, p.ceiling)
	p.gauges()
}

// slowDown reports whether a join error means "too much, later": the
// server protects itself rather than refusing this room.
func slowDown(e *stanzaError) bool {
	if e == nil {
		return false
	}
	switch stanza.Condition(e.Condition) {
	case stanza.ResourceConstraint, stanza.PolicyViolation, stanza.ServiceUnavailable:
		return true
	}
	return e.Type == "wait"
}

// requestJoinLocked queues a join of rm behind the window; it goes out at
// once when a slot is free.
func (r *rooms) requestJoinLocked(rm *mucRoom) {
	r.releaseLocked(rm)
	r.stopTimerLocked(rm)
	rm.gen++
	rm.state = roomIdle
	rm.why = "waiting to join"
	if rm.lastErr != "" {
		rm.why += " (last try: " + rm.lastErr + ")"
	}
	if !rm.queued {
		rm.queued = true
		r.pace.queue = append(r.pace.queue, rm.cfg.JID)
	}
	r.pumpLocked()
}

// pumpLocked sends queued joins while the window has room.
func (r *rooms) pumpLocked() {
	p := r.pace
	if !r.online {
		return
	}
	if now := time.Now(); now.Before(p.hold) {
		if p.holdTimer == nil {
			p.holdTimer = time.AfterFunc(p.hold.Sub(now), func() {
				r.mu.Lock()
				defer r.mu.Unlock()
				r.pace.holdTimer = nil
				r.pumpLocked()
			})
		}
		return
	}
	// Joins go out in groups of an eighth of the window: several in one
	// write, not one small write per answer.
	if free := int(p.window) - p.inflight; free < max(1, int(p.window)/8) && p.inflight > 0 {
		p.gauges()
		return
	}
	for p.inflight < int(p.window) && len(p.queue) > 0 {
		key := p.queue[0]
		p.queue[0] = ""
		p.queue = p.queue[1:]
		rm := r.m[key]
		if rm == nil || !rm.queued {
			continue // left, or requested again and sent meanwhile
		}
		rm.queued = false
		r.sendJoinLocked(rm)
	}
	if len(p.queue) == 0 {
		p.queue = nil // let a drained queue's array go
	}
	p.gauges()
}

// releaseLocked gives back rm's slot when its join is outstanding, and
// takes it out of the queue.
func (r *rooms) releaseLocked(rm *mucRoom) {
	rm.queued = false
	if !rm.inflight {
		return
	}
	rm.inflight = false
	r.pace.inflight--
	r.pumpLocked()
}

// joinRefusedLocked applies an error answering rm's join to the window: a
// slow-down halves it, lowers the ceiling below the joins outstanding when
// rm's went out, and holds every join back for a while.
func (r *rooms) joinRefusedLocked(rm *mucRoom, e *stanzaError) {
	p := r.pace
	if !slowDown(e) {
		p.failures.WithLabelValues("refused").Inc()
		return
	}
	p.failures.WithLabelValues("slow_down").Inc()
	p.refused = time.Now()
	p.ceiling = max(1, min(p.ceiling, float64(rm.slot-1)))
	p.shrink()
	p.window = min(p.window, p.ceiling)
	hold := r.backoff(p.refusals)
	p.refusals++
	if until := time.Now().Add(hold); until.After(p.hold) {
		p.hold = until
	}
	r.log.Warn("server refused a room join as too much; joins slowed down", "room", rm.cfg.JID, "condition", e.Condition, "window", int(p.window), "ceiling", int(p.ceiling), "hold", hold.Round(time.Millisecond))
}

// JoinStats are the join window's counts, for tests and benchmarks.
type JoinStats struct {
	Window, Ceiling, Outstanding, Queued, Peak int
}

// joinStats returns the join window's counts now.
func (r *rooms) joinStats() JoinStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := 0
	for _, rm := range r.m {
		if rm.queued {
			q++
		}
	}
	return JoinStats{Window: int(r.pace.window), Ceiling: int(r.pace.ceiling), Outstanding: r.pace.inflight, Queued: q, Peak: r.pace.peak}
}
