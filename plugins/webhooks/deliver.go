package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"crier/internal/state"
	"crier/plugins"
	"crier/rules"
)

// Limits of the delivery machinery.
const (
	// maxBatch bounds the notifications one message carries when the
	// rate limit made them wait together.
	maxBatch = 50
	// maxBatchBytes bounds the body of such a message.
	maxBatchBytes = 32 << 10
	// idleTarget is how long a recipient's sender waits for work before
	// it ends (a new notification starts it again).
	idleTarget = time.Minute
)

// outMsg is one message of a request for one recipient.
type outMsg struct {
	to, typ, body, subject string
}

// flight is the delivery of one notification to one recipient. Requests
// that carry the same notification (retries) wait on the same flight
// instead of sending it again.
type flight struct {
	key, to string
	// done is closed once err holds the outcome.
	done chan struct{}
	err  error
}

// ledger knows which notifications each recipient has (in the state
// store, until the webhook's dedupe expires) and which are in flight (in
// memory).
type ledger struct {
	mu       sync.Mutex
	ns       state.Namespace
	w        *writer
	inflight map[string]*flight
	// recent and older are keys delivered lately, to when their dedupe
	// ends (see begin).
	recent, older map[string]time.Time
}

func newLedger(ns state.Namespace) *ledger {
	return &ledger{ns: ns, w: newWriter(ns), inflight: map[string]*flight{}, recent: map[string]time.Time{}}
}

// unitKey is the state key of a notification's delivery to one
// recipient: "d/" and a hash, well under the store's key limit.
func unitKey(key, to string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + to))
	return "d/" + hex.EncodeToString(sum[:])
}

// Outcomes of ledger.begin.
const (
	unitSend      = iota // a new flight: send it
	unitDelivered        // the recipient has it already
	unitWaiting          // an earlier copy is in flight: wait for it
)

// begin returns the flight of key to to and what to do with it. An empty
// key is never remembered: every request with it sends.
//
// The store is read without the ledger's lock (it would serialise every
// request on it). A flight that finishes in between is caught by the
// second look under the lock: finish commits the key first and only then
// moves it from inflight to recent, so the key is in one of the three
// places whenever it was delivered.
func (l *ledger) begin(key, to string) (*flight, int) {
	f := &flight{key: key, to: to, done: make(chan struct{})}
	if key == "" {
		return f, unitSend
	}
	uk := unitKey(key, to)
	l.mu.Lock()
	old, busy := l.inflight[uk]
	recent := l.isRecent(uk)
	l.mu.Unlock()
	switch {
	case busy:
		return old, unitWaiting
	case recent:
		return nil, unitDelivered
	}
	delivered := false
	_ = l.ns.View(func(tx state.Tx) error {
		_, delivered = tx.Get(uk)
		return nil
	})
	if delivered {
		return nil, unitDelivered
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.inflight[uk]; ok {
		return old, unitWaiting
	}
	if l.isRecent(uk) {
		return nil, unitDelivered
	}
	l.inflight[uk] = f
	return f, unitSend
}

// recentMax is how many delivered keys each generation of recent holds.
const recentMax = 4096

// isRecent reports whether uk was delivered lately; l.mu is held.
func (l *ledger) isRecent(uk string) bool {
	now := time.Now()
	return now.Before(l.recent[uk]) || now.Before(l.older[uk])
}

// addRecent records a delivered key; l.mu is held. Two generations keep
// between recentMax and twice as many of the last keys.
func (l *ledger) addRecent(uk string, until time.Time) {
	if len(l.recent) >= recentMax {
		l.older, l.recent = l.recent, make(map[string]time.Time, recentMax)
	}
	l.recent[uk] = until
}

// finish records the outcome of flights (one stanza's): delivered ones
// are remembered for dedupe in one transaction, before they leave the
// in-flight set so that a concurrent begin sees one or the other; then
// every waiter is released.
func (l *ledger) finish(flights []*flight, err error, dedupe time.Duration) {
	until := time.Now().Add(dedupe)
	if err == nil {
		_ = l.w.do(func(tx state.Tx) error {
			for _, f := range flights {
				if f.key != "" {
					if err := tx.PutExpiring(unitKey(f.key, f.to), []byte{1}, until); err != nil {
						return err
					}
				}
			}
			return nil
		}, true)
	}
	l.mu.Lock()
	for _, f := range flights {
		if f.key != "" {
			uk := unitKey(f.key, f.to)
			if l.inflight[uk] == f {
				delete(l.inflight, uk)
			}
			if err == nil {
				l.addRecent(uk, until)
			}
		}
	}
	l.mu.Unlock()
	for _, f := range flights {
		f.err = err
		close(f.done)
	}
}

// pending is the number of flights in the ledger.
func (l *ledger) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.inflight)
}

// queued is a message waiting for its recipient's sender.
type queued struct {
	m outMsg
	f *flight
}

// target is one recipient of one webhook: its queue, its token bucket and
// the goroutine that sends (started on demand, ending when idle).
type target struct {
	p       *Plugin
	h       *hook
	key     string
	mu      sync.Mutex
	items   []queued
	running bool
	wake    chan struct{}
	bucket  *bucket
}

// submit queues q for the recipient, starting the sender when it is not
// running.
func (t *target) submit(q queued) error {
	t.mu.Lock()
	if len(t.items) >= t.h.queue {
		t.mu.Unlock()
		return plugins.ErrBusy
	}
	t.items = append(t.items, q)
	start := !t.running
	t.running = true
	t.mu.Unlock()
	if start {
		if !t.p.addSender() {
			t.drain(plugins.ErrStopped)
			return nil
		}
		go t.run()
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
	return nil
}

// run sends the queue's messages: it waits for a token, then takes every
// message that waited meanwhile (of one type, within the batch limits)
// and sends them as one. It ends when the plugin stops or after idleTarget
// without work.
func (t *target) run() {
	defer t.p.senders.Done()
	idle := time.NewTimer(idleTarget)
	defer idle.Stop()
	for {
		t.mu.Lock()
		empty := len(t.items) == 0
		t.mu.Unlock()
		if empty {
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(idleTarget)
			select {
			case <-t.wake:
				continue
			case <-t.p.stopCtx.Done():
				t.drain(plugins.ErrStopped)
				return
			case <-idle.C:
				t.mu.Lock()
				if len(t.items) == 0 {
					t.running = false
					t.mu.Unlock()
					return
				}
				t.mu.Unlock()
				continue
			}
		}
		if !t.bucket.wait(t.p.stopCtx) {
			t.drain(plugins.ErrStopped)
			return
		}
		t.mu.Lock()
		batch := takeBatch(&t.items)
		t.mu.Unlock()
		t.send(batch)
	}
}

// takeBatch removes the first message and those after it of the same type
// that fit in one message.
func takeBatch(items *[]queued) []queued {
	q := *items
	n, size := 1, len(q[0].m.body)
	for n < len(q) && n < maxBatch && q[n].m.typ == q[0].m.typ && size+len(q[n].m.body) <= maxBatchBytes {
		size += len(q[n].m.body)
		n++
	}
	batch := append([]queued(nil), q[:n]...)
	*items = append(q[:0], q[n:]...)
	return batch
}

// send hands a batch to the bot as one message; every flight in it
// settles with the outcome.
func (t *target) send(batch []queued) {
	m := plugins.Message{To: batch[0].m.to, From: t.h.cfg.From, Type: batch[0].m.typ}
	// A notification to a user is work any [ha] instance delivers, the one
	// the webhook reached; a room's is the leader's.
	m.Work = m.Type != "groupchat"
	if len(batch) == 1 {
		m.Body, m.Subject = batch[0].m.body, batch[0].m.subject
	} else {
		bodies := make([]string, len(batch))
		for i, q := range batch {
			bodies[i] = q.m.body
		}
		m.Body = strings.Join(bodies, "\n\n")
		if m.Type == "headline" || m.Type == "normal" {
			m.Subject = itoa(len(batch)) + " notifications"
		}
		t.p.met.batched.WithLabelValues(t.h.cfg.Path).Add(float64(len(batch)))
	}
	m.OriginID = batchOriginID(batch)
	flights := make([]*flight, len(batch))
	for i, q := range batch {
		flights[i] = q.f
	}
	var once sync.Once
	done := func(err error) {
		once.Do(func() {
			// The bot calls done on its own goroutines; recording the
			// outcome writes to the store, so it runs on one of ours.
			go t.p.settle(t.h, flights, err)
		})
	}
	if err := t.p.host.Send(m, done); err != nil {
		t.p.settle(t.h, flights, err)
	}
}

// drain settles every queued message with err.
func (t *target) drain(err error) {
	t.mu.Lock()
	items := t.items
	t.items = nil
	t.running = false
	t.mu.Unlock()
	if len(items) == 0 {
		return
	}
	flights := make([]*flight, len(items))
	for i, q := range items {
		flights[i] = q.f
	}
	t.p.settle(t.h, flights, err)
}

// batchOriginID derives the XEP-0359 origin-id of a message from the
// notifications it carries, so that a resent copy has the same one.
func batchOriginID(batch []queued) string {
	h := sha256.New()
	for _, q := range batch {
		if q.f.key == "" {
			return ""
		}
		h.Write([]byte(q.f.key + "\x00" + q.f.to + "\x00"))
	}
	return "crier-wh-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// bucket is a token bucket: at most N messages at once, refilled at N per
// Per. A nil bucket never waits.
type bucket struct {
	mu     sync.Mutex
	cap    float64
	tokens float64
	per    time.Duration // time to earn one token
	last   time.Time
}

func newBucket(r rules.Rate) *bucket {
	if r.IsZero() {
		return nil
	}
	return &bucket{cap: float64(r.N), tokens: float64(r.N), per: r.Per / time.Duration(r.N), last: time.Now()}
}

// wait takes a token, waiting for one until ctx ends; it reports whether
// it got one.
func (b *bucket) wait(ctx context.Context) bool {
	if b == nil {
		return ctx.Err() == nil
	}
	for {
		b.mu.Lock()
		now := time.Now()
		b.tokens = min(b.cap, b.tokens+float64(now.Sub(b.last))/float64(b.per))
		b.last = now
		if b.tokens >= 1 {
			b.tokens--
			b.mu.Unlock()
			return true
		}
		wait := time.Duration((1 - b.tokens) * float64(b.per))
		b.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
