package natsrelay

import (
	"container/list"
	"errors"
	"sync"
)

// SeenWindow is how many NATS message ids each relay remembers to recognise
// a redelivered message.
const SeenWindow = 10000

// delivery is one copy of a NATS message handed to the relay. For JetStream
// ack and nak settle it with the server; for core NATS they do nothing.
// Each is called at most once per delivery.
type delivery struct {
	ack func()
	nak func()
	// handover gives the message back at once (after a short pause) for
	// the instance that can send what this one cannot: the leader, in the
	// rooms. Nil means nak.
	handover func()
}

// errHandover settles a recipient this instance does not send to (an [ha]
// standby is in no room): the message goes back to JetStream for the
// leader, and the recipients sent meanwhile are in the shared window.
var errHandover = errors.New("natsrelay: left to the leader")

// entry tracks one NATS message (by id) across its deliveries: which
// recipients already have it and whether sends are in flight.
type entry struct {
	key  string
	sent map[string]bool // recipient -> the XMPP server has it
	// busy is true while a delivery's sends are in flight; deliveries that
	// arrive meanwhile wait in waiters for the same outcome instead of
	// sending a second copy.
	busy     bool
	pending  int
	failed   bool
	handover bool // a failure was errHandover
	current  delivery
	waiters  []delivery
	elem     *list.Element
}

// window is a bounded, least-recently-used set of entries. It is what keeps
// a redelivered message from being sent twice: once a recipient is in
// entry.sent, a new copy of the message is acked without sending.
type window struct {
	mu    sync.Mutex
	max   int
	m     map[string]*entry
	order *list.List // front: most recently used
}

func newWindow(max int) *window {
	return &window{max: max, m: make(map[string]*entry), order: list.New()}
}

// Outcomes of window.begin.
const (
	beginSend    = iota // send to the recipients returned
	beginAcked          // every recipient has it already: ack this copy
	beginWaiting        // an earlier copy is in flight: this one rides on it
)

// begin registers delivery d of the message with id key for recipients.
// It returns the entry and the recipients still to send to. An empty key
// (no id) gives a fresh entry that is not remembered.
//
// known lists recipients another instance already sent the message to (from
// the shared window): they count as sent.
func (w *window) begin(key string, recipients []string, d delivery, known ...string) (*entry, []string, int) {
	if key == "" {
		e := &entry{sent: map[string]bool{}, busy: true, pending: len(recipients), current: d}
		return e, recipients, beginSend
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.m[key]
	if ok {
		w.order.MoveToFront(e.elem)
	} else {
		e = &entry{key: key, sent: map[string]bool{}}
		e.elem = w.order.PushFront(e)
		w.m[key] = e
		w.evict()
	}
	if e.busy {
		e.waiters = append(e.waiters, d)
		return e, nil, beginWaiting
	}
	for _, r := range known {
		e.sent[r] = true
	}
	var todo []string
	for _, r := range recipients {
		if !e.sent[r] {
			todo = append(todo, r)
		}
	}
	if len(todo) == 0 {
		return e, nil, beginAcked
	}
	e.busy, e.pending, e.failed, e.handover, e.current = true, len(todo), false, false, d
	return e, todo, beginSend
}

// evict drops the least recently used entries beyond max. Entries in
// flight are kept: they are bounded by the consumer's max_ack_pending, and
// forgetting one would let its redelivery be sent twice. The loop visits
// each entry at most once.
func (w *window) evict() {
	el := w.order.Back()
	for n := w.order.Len(); n > w.max && el != nil; {
		prev := el.Prev()
		if e := el.Value.(*entry); !e.busy {
			w.order.Remove(el)
			delete(w.m, e.key)
			n--
		}
		el = prev
	}
}

// settled is the outcome of a message's sends, once the last one is known.
type settled struct {
	ds       []delivery // every delivery of the message waiting for it
	ok       bool       // every send succeeded
	handover bool       // some recipient was left to the leader
	sent     []string   // every recipient known to have the message
}

// settle records the outcome of one send of e. When it was the last send
// in flight it returns the deliveries to settle and what happened;
// otherwise its ds is nil.
func (w *window) settle(e *entry, recipient string, err error) settled {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		e.sent[recipient] = true
	case errors.Is(err, errHandover):
		e.failed, e.handover = true, true
	default:
		e.failed = true
	}
	e.pending--
	if e.pending > 0 {
		return settled{}
	}
	out := settled{ds: append([]delivery{e.current}, e.waiters...), ok: !e.failed, handover: e.handover}
	for r := range e.sent {
		out.sent = append(out.sent, r)
	}
	e.busy, e.waiters, e.current = false, nil, delivery{}
	return out
}

// len returns the number of remembered ids.
func (w *window) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}
