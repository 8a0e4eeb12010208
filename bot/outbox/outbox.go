package outbox

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

// Priority orders the outbox: High items (presence, room joins) always go
// first, then Interactive items (answers to someone: rule and command
// replies), then Bulk items (relayed events, webhooks, cron posts). Within
// Interactive and Bulk, targets are served round-robin (see fairQueue).
type Priority int

// Priorities.
const (
	// Bulk is traffic nobody waits for in a conversation: fan-out of
	// relayed events and webhooks, cron posts.
	Bulk Priority = iota
	// Interactive is an answer to someone who is waiting for it: a rule's
	// or a command's reply. It goes ahead of Bulk, has a queue of its own
	// (a full bulk queue does not refuse it) and a reserve in the ack
	// window, but waits for its room and its rate limits like Bulk.
	Interactive
	// High is the session's own control traffic (presence, room joins):
	// it goes first and waits for no room gate and no rate limit.
	High
)

// Kind is the stanza an Item becomes.
type Kind int

// Kinds of Item.
const (
	// Message is a <message/>.
	Message Kind = iota
	// Presence is a <presence/>.
	Presence
)

// String returns the stanza's element name.
func (k Kind) String() string {
	if k == Presence {
		return "presence"
	}
	return "message"
}

// Item is one stanza waiting in the outbox. The outbox builds the XML when it
// sends, so an item costs a few strings while it waits.
type Item struct {
	Kind     Kind
	To       string // full or bare JID
	From     string // the address sent from; empty is the session's own
	Type     string // message or presence type ("" = normal / available)
	Body     string
	Subject  string
	ID       string
	Room     string // bare room JID: a groupchat item waits until the bot is in the room
	Priority Priority
	// Work marks shared work (a relayed push to a user) that Hooks.Allow
	// may let through where it refuses speech.
	Work bool
	// Payload adds child elements (a MUC join <x/>, an invite, an origin-id).
	Payload func() xml.TokenReader
	// Done, when set, is called once: with nil after the stanza was written,
	// or with the reason it was dropped.
	Done func(error)
	// Received, when set, is when the message this item answers came in:
	// its acknowledgement is observed in crier_reply_seconds.
	Received time.Time

	attempts  int
	queued    time.Time // when Enqueue took it, for crier_delivery_seconds
	notBefore time.Time
	seq       uint64      // position in the session's written stanzas, for acks
	wrote     time.Time   // when it was written to the current session
	sentAt    time.Time   // when it was last written (bounces, pace.go)
	ended     atomic.Bool // Done was called
	smSeq     uint32      // stream management count after this item was written (at most)
	smOK      bool        // smSeq is known
}

// Outbox errors.
var (
	ErrQueueFull = errors.New("outbox: queue full")
	ErrRoomQueue = errors.New("outbox: room queue full")
	ErrGaveUp    = errors.New("outbox: server kept refusing the stanza")
	ErrClosed    = errors.New("outbox: closed")
	// ErrFenced is the error of an item Hooks.Allow refused.
	ErrFenced = errors.New("outbox: not allowed to speak now")
)

// Sender is what the outbox writes to: the current session.
type Sender interface {
	Send(ctx context.Context, r xml.TokenReader) error
}

// Acker is an acknowledgement barrier: it returns nil once the server has
// processed every stanza written before it was called. The bot's Acker is
// an XMPP ping, which a server answers after the stanzas before it on the
// same stream; with stream management it becomes <r/> and <a h="N"/>.
type Acker func() error

// DefaultAckWindow is how many stanzas may be written and not yet
// acknowledged. It keeps a slow or shaping server from piling data up in
// socket buffers, where a dying connection would lose it unseen, and where
// a keepalive ping would wait behind all of it.
const DefaultAckWindow = 32

// Config holds the outbox's limits.
type Config struct {
	Queue     int        // bulk items waiting at most (and, apart, interactive ones)
	RoomQueue int        // items waiting for one room to be joined
	Rate      rate.Limit // stanzas/s to the server, 0 = unlimited
	RoomRate  rate.Limit // stanzas/s into one room, 0 = unlimited
	Burst     int
	Write     time.Duration // write timeout for one stanza
	Window    int           // stanzas written and not yet acknowledged at most
	// AckDelay is how long written stanzas nobody waits for (no Done:
	// rule replies, cron posts) may go unconfirmed before the outbox asks
	// the server for an acknowledgement, when fewer than half a window
	// were written; AckUrgent the same for stanzas someone waits for
	// (Done set: a relayed event, a webhook). Zero means
	// DefaultAckDelay and DefaultAckUrgent; negative asks at once, as
	// soon as the writer is idle. A quiet chat then costs one ack request
	// per AckDelay rather than one per reply (XEP-0198 <r/> and <a/>, or
	// a ping), and what was written is still confirmed, or written again
	// after a loss, within a bounded time.
	AckDelay  time.Duration
	AckUrgent time.Duration
}

// Defaults of Config.AckDelay and Config.AckUrgent.
const (
	DefaultAckDelay  = 200 * time.Millisecond
	DefaultAckUrgent = 5 * time.Millisecond
)

// Hooks reports what happens to items, for metrics and logs.
type Hooks struct {
	Dropped func(reason string)
	Sent    func(it *Item)
	Failed  func(err error) // a write failed: the connection is broken
	Stuck   func()          // a write hung longer than the write timeout
	// Allow, when set, is asked for each item just before it is written
	// (the last step before the transport): false drops it with
	// ErrFenced. A leader that lost its lease ([ha]) says nothing more.
	Allow func(it *Item) bool
	// RoomBounced, when set, is told that a room answered a message with
	// "not an occupant" or "no such room": the bot should join it again.
	// The message waits for that (SetRoomJoined).
	RoomBounced func(room string)
	// reattached reports, for each new session, the unacknowledged items
	// of the previous one that the server confirmed, that go out again,
	// and that were dropped as stale.
	Reattached func(settled, resent, stale int)
}

// current reports whether gen is still the attached session.
func (o *Outbox) current(gen uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return gen == o.gen && o.s != nil
}

// Outbox is the one send path for everything the bot says: rule replies,
// cron posts, relayed events, presence. It is a set of bounded queues
// drained by one goroutine: High items first, then Interactive, then Bulk,
// the targets of each class in turn (fair.go); the stanzas to one target
// leave in order, and a slow server (TCP pushback, a shaper) makes items
// wait instead of being lost. Answers to iq requests are
// the one exception: mellium requires them to be written by the handler that
// read the request, inline on the stream, which also gives them priority over
// everything queued here.
type Outbox struct {
	cfg   Config
	hooks Hooks

	mu       sync.Mutex
	wake     chan struct{} // poked (non-blocking) whenever something changes
	high     []*Item
	inter    fairQueue            // Interactive items
	bulk     fairQueue            // Bulk items
	rooms    map[string]*roomGate // pending items per room
	slow     map[string]*slowdown // per-target backoff after resource-constraint
	sent     map[string]*Item     // recently sent messages by id, for error replies
	sentFIFO []string
	s        Sender
	ack      Acker
	gen      uint64 // changes with each attached session
	// Acknowledgements of the current session: unacked holds the written
	// items in order; written counts them, asked is the count a barrier was
	// last started for, acked the count the server confirmed.
	unacked               []*Item
	written, asked, acked uint64
	// firstUnasked is when the first stanza after the last barrier was
	// written; urgent says one of those has a Done callback; ackNow that
	// Flush wants the barrier at once.
	firstUnasked   time.Time
	urgent, ackNow bool
	barriers       sync.WaitGroup
	closed         bool
	inflight       int // items taken by the writer and not yet settled

	global *rate.Limiter
	perRm  map[string]*rate.Limiter

	resent  int  // unacknowledged items written again after a reconnect
	resumed bool // the attached session resumed the previous one

	// lastWrite is when a stanza was last written (Unix nanoseconds): the
	// keepalive reads it to tell a slow, shaping server from a deaf one.
	lastWrite atomic.Int64

	// delivery observes each settled item's time from Enqueue to the
	// server's acknowledgement; reply, for replies, from the message they
	// answer coming in.
	delivery prometheus.Histogram
	reply    prometheus.Histogram
}

type roomGate struct {
	joined  bool
	pending []*Item
}

type slowdown struct {
	until time.Time
	// gap spaces messages to the target, raised is when it last grew,
	// clean counts messages taken since (pace.go).
	gap    time.Duration
	raised time.Time
	clean  int
}

const (
	sentMemory   = 2048 // message ids remembered for error replies
	maxAttempts  = 6    // resends after resource-constraint before giving up
	firstSlow    = time.Second
	maxSlow      = 30 * time.Second
	highQueueCap = 4096
)

func New(cfg Config, hooks Hooks) *Outbox {
	if cfg.Queue <= 0 {
		cfg.Queue = 1000
	}
	if cfg.RoomQueue <= 0 {
		cfg.RoomQueue = 100
	}
	if cfg.Write <= 0 {
		cfg.Write = 30 * time.Second
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultAckWindow
	}
	if cfg.AckDelay == 0 {
		cfg.AckDelay = DefaultAckDelay
	}
	if cfg.AckUrgent == 0 {
		cfg.AckUrgent = DefaultAckUrgent
	}
	o := &Outbox{
		cfg:   cfg,
		hooks: hooks,
		wake:  make(chan struct{}, 1),
		rooms: make(map[string]*roomGate),
		slow:  make(map[string]*slowdown),
		sent:  make(map[string]*Item),
		perRm: make(map[string]*rate.Limiter),

		delivery: newDeliveryHistogram(),
		reply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crier_reply_seconds",
			Help:    "Time from a message coming in to the server acknowledging the bot's reply to it.",
			Buckets: deliveryBuckets,
		}),
	}
	if cfg.Rate > 0 {
		o.global = rate.NewLimiter(cfg.Rate, cfg.Burst)
	}
	return o
}

func (o *Outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Enqueue adds it to the outbox without blocking. It fails (and counts a
// drop) only when the queue is full.
func (o *Outbox) Enqueue(it *Item) error {
	if it.queued.IsZero() {
		it.queued = time.Now()
	}
	o.mu.Lock()
	err := o.enqueueLocked(it)
	o.mu.Unlock()
	if err != nil {
		o.drop(it, err, reasonOf(err))
		return err
	}
	o.poke()
	return nil
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrRoomQueue):
		return "room_queue_full"
	case errors.Is(err, ErrQueueFull):
		return "queue_full"
	case errors.Is(err, ErrGaveUp):
		return "refused"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, ErrFenced):
		return "fenced"
	}
	return "other"
}

func (o *Outbox) enqueueLocked(it *Item) error {
	if o.closed {
		return ErrClosed
	}
	if it.Priority == High {
		if len(o.high) >= highQueueCap {
			return ErrQueueFull
		}
		o.high = append(o.high, it)
		return nil
	}
	if it.Room != "" {
		g := o.gate(it.Room)
		if !g.joined {
			if len(g.pending) >= o.cfg.RoomQueue {
				return ErrRoomQueue
			}
			g.pending = append(g.pending, it)
			return nil
		}
	}
	q := o.queueOf(it)
	if q.n >= o.cfg.Queue {
		return ErrQueueFull
	}
	q.push(it)
	return nil
}

// queueOf is the queue of a non-High item.
func (o *Outbox) queueOf(it *Item) *fairQueue {
	if it.Priority == Interactive {
		return &o.inter
	}
	return &o.bulk
}

// queued is the number of items in the writer's queues (not behind room
// gates). The caller holds mu.
func (o *Outbox) queuedLocked() int { return len(o.high) + o.inter.n + o.bulk.n }

func (o *Outbox) gate(room string) *roomGate {
	g := o.rooms[room]
	if g == nil {
		g = &roomGate{}
		o.rooms[room] = g
	}
	return g
}

// SetRoomJoined opens (joined) or closes the gate of a room. Items that
// waited for the room move to the front of the bulk queue in their order;
// closing it moves the room's queued items back behind the gate.
func (o *Outbox) SetRoomJoined(room string, joined bool) {
	o.mu.Lock()
	g := o.gate(room)
	g.joined = joined
	switch {
	case joined && len(g.pending) > 0:
		o.pushFrontLocked(g.pending)
		g.pending = nil
	case !joined:
		// Out of the room (kicked, shut down): what is queued for it
		// waits for the rejoin too.
		o.gateBulkLocked()
	}
	o.mu.Unlock()
	o.poke()
}

// ForgetRoom drops a room the bot left for good, with its waiting items.
func (o *Outbox) ForgetRoom(room string) {
	o.mu.Lock()
	g := o.rooms[room]
	delete(o.rooms, room)
	delete(o.perRm, room)
	o.mu.Unlock()
	if g != nil {
		for _, it := range g.pending {
			o.drop(it, ErrClosed, "room_left")
		}
	}
}

// Attach gives the outbox a session to write to (and its acknowledgement
// barrier; nil means a write counts as delivered); nil detaches.
//
// Items written to the previous session and never acknowledged go back to
// the front of their queue, in order, to be written again: delivery is at
// least once, never silently lost with a dead connection's socket buffers.
// High items of a previous session (presence, joins) are dropped instead:
// the bot sends fresh ones after each connect.
func (o *Outbox) Attach(s Sender, ack Acker) { o.AttachResumed(s, ack, ResumeInfo{}) }

// ResumeInfo tells attach how the new session relates to the old one
// (XEP-0198 resumption).
type ResumeInfo struct {
	// Resumed: the server kept the session, so presence and joins
	// written to it still hold and are resent rather than dropped.
	Resumed bool
	// Acked, when Known, is how many stanzas of the old session the
	// server confirmed: the unacknowledged items it covers are settled
	// instead of being sent again.
	Acked uint32
	Known bool
}

// SMSender is a Sender that tells the stream management count of the
// stanzas written so far (transport.Conn.SMSent).
type SMSender interface {
	SMSent() (uint32, bool)
}

func (o *Outbox) AttachResumed(s Sender, ack Acker, ri ResumeInfo) {
	o.mu.Lock()
	o.s = s
	o.ack = ack
	o.gen++
	// Read only while a session is attached (o.s != nil), so a detach
	// needs no value of its own here.
	o.resumed = ri.Resumed
	o.written, o.asked, o.acked = 0, 0, 0
	if s == nil {
		// Detached: the rooms wait for the next session to say where the
		// bot stands, and the unacknowledged items stay untouched, with
		// their stream management counts, for that session to settle or
		// write again. (Queueing them here too wrote room replies twice
		// more after a resumption, and clearing smOK kept what the server
		// confirmed from being settled.)
		for _, g := range o.rooms {
			g.joined = false
		}
		// Room messages queued and not written yet wait for their room
		// too: written before the bot is back in it, the room would
		// refuse them.
		o.gateBulkLocked()
		o.mu.Unlock()
		o.poke()
		return
	}
	var stale []*Item
	if !ri.Resumed {
		stale = o.high
		o.high = nil
	}
	// Unacknowledged items: settle what the server confirmed, resend the
	// rest (bulk ones; session-bound ones only into a resumed session).
	var resend, settled []*Item
	for _, it := range o.unacked {
		if ri.Known && it.smOK && int32(it.smSeq-ri.Acked) <= 0 {
			settled = append(settled, it)
			continue
		}
		if it.Priority == High && !ri.Resumed {
			stale = append(stale, it)
			continue
		}
		it.smOK = false
		resend = append(resend, it)
	}
	o.unacked = nil
	o.resent += len(resend)
	o.requeueLocked(resend) // written before anything queued since: first
	o.mu.Unlock()
	if o.hooks.Reattached != nil {
		o.hooks.Reattached(len(settled), len(resend), len(stale))
	}
	for _, it := range stale {
		o.drop(it, ErrClosed, "stale")
	}
	for _, it := range settled {
		o.settle(it)
	}
	o.poke()
}

// Depth is the number of items waiting (all queues).
func (o *Outbox) Depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.queuedLocked()
	for _, g := range o.rooms {
		n += len(g.pending)
	}
	return n
}

// HandleError is called with the id and condition of an error reply to a
// message the bot sent. resource-constraint and policy-violation (a room or
// server saying "too fast") slow that target down and send the message again;
// it reports whether the error was taken care of that way.
func (o *Outbox) HandleError(id string, cond stanza.Condition) bool {
	if id == "" {
		return false
	}
	o.mu.Lock()
	it := o.sent[id]
	delete(o.sent, id)
	if it != nil && it.Room != "" && (cond == stanza.NotAcceptable || cond == stanza.ItemNotFound) {
		return o.roomBouncedLocked(it) // unlocks
	}
	if it == nil || (cond != stanza.ResourceConstraint && cond != stanza.PolicyViolation) {
		o.mu.Unlock()
		return false
	}
	// Bounced: not delivered, whatever the acknowledgement says.
	o.unackedRemoveLocked(it)
	sd := o.slow[it.To]
	if sd == nil {
		sd = &slowdown{}
		o.slow[it.To] = sd
	}
	now := time.Now()
	sd.bounced(it.sentAt, now)
	it.attempts++
	if until := now.Add(resendDelay(it.attempts)); until.After(sd.until) {
		sd.until = until
	}
	if it.attempts > maxAttempts {
		o.mu.Unlock()
		o.drop(it, ErrGaveUp, "refused")
		return true
	}
	it.notBefore = sd.until
	o.requeueBouncedLocked(it)
	o.gateBulkLocked()
	o.mu.Unlock()
	o.poke()
	return true
}

// roomBouncedLocked handles a room's answer that the bot is not in it
// (not-acceptable: not an occupant; item-not-found: no such room) to a
// message it sent there, as after a server restart or a membership the
// server lost: the message was not delivered, so it is not settled by the
// acknowledgement that covers it but waits, ahead of the room's later
// ones, behind the room's closed gate for the rejoin that
// Hooks.RoomBounced asks for. The caller holds mu; it is released.
func (o *Outbox) roomBouncedLocked(it *Item) bool {
	o.unackedRemoveLocked(it)
	it.attempts++
	if it.attempts > maxAttempts {
		o.mu.Unlock()
		o.drop(it, ErrGaveUp, "refused")
		return true
	}
	o.gate(it.Room).joined = false
	o.requeueBouncedLocked(it)
	o.gateBulkLocked()
	o.mu.Unlock()
	if o.hooks.RoomBounced != nil {
		o.hooks.RoomBounced(it.Room)
	}
	o.poke()
	return true
}

// unackedRemoveLocked takes it out of the items waiting for an
// acknowledgement, if it is there. The caller holds mu.
func (o *Outbox) unackedRemoveLocked(it *Item) {
	for i, u := range o.unacked {
		if u == it {
			o.unacked = append(o.unacked[:i], o.unacked[i+1:]...)
			return
		}
	}
}

// Close stops accepting items; Run returns once the queue is empty or its
// context ends.
func (o *Outbox) Close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.poke()
}

// Flush waits until every queued item was written and acknowledged (or ctx
// ends). Items waiting for a room that is not joined do not count.
func (o *Outbox) Flush(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		o.mu.Lock()
		n := o.queuedLocked() + o.inflight + len(o.unacked)
		hurry := n > 0 && !o.ackNow && o.written > o.asked
		if hurry {
			o.ackNow = true // no batching of acknowledgements now
		}
		o.mu.Unlock()
		if hurry {
			o.poke()
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// maxBatch is how many ready stanzas the writer puts into one write (one
// TLS record and one system call when they fit) when no rate limit is set.
const maxBatch = 16

// next takes the stanzas to write now: the first ready one and, when no
// rate limit applies, up to maxBatch-1 more that are ready as well, so that
// a burst of replies leaves in one write instead of one each. With nothing
// ready it returns how long to wait (-1: until poked).
func (o *Outbox) next(now time.Time, batch []*Item) (items []*Item, s Sender, gen uint64, wait time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.s == nil {
		return batch, nil, 0, -1
	}
	limit := maxBatch
	if o.global != nil || o.cfg.RoomRate > 0 {
		limit = 1 // each stanza waits for its token on its own
	}
	wait = -1
	for len(batch) < limit {
		it, w := o.takeLocked(now)
		if it == nil {
			if len(batch) == 0 {
				wait = w
			}
			break
		}
		batch = append(batch, it)
	}
	return batch, o.s, o.gen, wait
}

// takeLocked takes the next ready item, or says how long until one is
// ready. The caller holds mu.
func (o *Outbox) takeLocked(now time.Time) (*Item, time.Duration) {
	if len(o.high) > 0 {
		it := o.high[0]
		o.high = o.high[1:]
		o.inflight++
		return it, 0
	}
	out := uint64(0)
	if o.ack != nil {
		out = o.written + uint64(o.inflight) - o.acked
	}
	// Interactive items may use a reserve above the window, so that a
	// window filled by a fan-out does not hold a reply for a round trip.
	wait := time.Duration(-1)
	if o.inter.n > 0 && (o.ack == nil || out < uint64(o.cfg.Window+interactiveReserve(o.cfg.Window))) {
		it, w := o.inter.take(now, o.readyAt)
		if it != nil {
			o.inflight++
			o.tookLocked(it, now)
			return it, 0
		}
		wait = w
	}
	if o.ack != nil && out >= uint64(o.cfg.Window) {
		return nil, -1 // the window is full: an acknowledgement pokes us
	}
	it, w := o.bulk.take(now, o.readyAt)
	if it != nil {
		o.inflight++
		o.tookLocked(it, now)
		return it, 0
	}
	if w >= 0 && (wait < 0 || w < wait) {
		wait = w
	}
	return nil, wait
}

// tookLocked spaces the target's next message by its learned gap (pace.go)
// once it is taken to be written at now. The caller holds mu.
func (o *Outbox) tookLocked(it *Item, now time.Time) {
	if sd := o.slow[it.To]; sd != nil {
		sd.took(now)
	}
}

// interactiveReserve is how many stanzas above the ack window interactive
// items may have unacknowledged.
func interactiveReserve(window int) int { return max(4, window/4) }

// readyAt is when it may be written: after its own retry time and its
// target's slowdown. The caller holds mu.
func (o *Outbox) readyAt(it *Item) time.Time {
	ready := it.notBefore
	if sd := o.slow[it.To]; sd != nil && sd.until.After(ready) {
		ready = sd.until
	}
	return ready
}

// Run drains the outbox until ctx ends, or until Close was called and the
// queue is empty.
func (o *Outbox) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer o.barriers.Wait()
	var buf []*Item
	for {
		items, s, gen, wait := o.next(time.Now(), buf[:0])
		if len(items) == 0 {
			o.mu.Lock()
			ackIn := time.Duration(-1)
			if o.ack != nil && o.written > o.asked {
				// Nothing more to write now: ask for the acknowledgement of
				// what was written once it waited AckDelay (AckUrgent when
				// someone waits for it), so that Done callbacks come in
				// bounded time without an ack request per stanza.
				d := o.cfg.AckDelay
				if o.urgent {
					d = o.cfg.AckUrgent
				}
				if since := time.Since(o.firstUnasked); o.ackNow || since >= d {
					o.barrierLocked()
				} else {
					ackIn = d - since
				}
			}
			done := o.closed && o.queuedLocked() == 0
			o.mu.Unlock()
			if done {
				return
			}
			if ackIn >= 0 && (wait < 0 || ackIn < wait) {
				wait = ackIn
			}
			if wait < 0 {
				wait = time.Hour
			}
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-o.wake:
			case <-timer.C:
			}
			continue
		}
		o.send(ctx, items, s, gen)
		clear(items) // the items belong to the queues again, not to buf
		buf = items
	}
}

func (o *Outbox) limiterFor(room string) *rate.Limiter {
	if o.cfg.RoomRate <= 0 || room == "" {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.perRm[room]
	if l == nil {
		l = rate.NewLimiter(o.cfg.RoomRate, o.cfg.Burst)
		o.perRm[room] = l
	}
	return l
}

// send writes items (one, or a batch when no rate limit is set) in one
// write and settles them.
func (o *Outbox) send(ctx context.Context, items []*Item, s Sender, gen uint64) {
	if o.hooks.Allow != nil {
		kept := make([]*Item, 0, len(items))
		for _, it := range items {
			if o.hooks.Allow(it) {
				kept = append(kept, it)
				continue
			}
			o.mu.Lock()
			o.inflight--
			o.mu.Unlock()
			o.drop(it, ErrFenced, "fenced")
		}
		if len(kept) == 0 {
			return
		}
		items = kept
	}
	if it := items[0]; len(items) == 1 && it.Priority != High {
		if o.global != nil {
			if err := o.global.Wait(ctx); err != nil {
				o.requeueFront(items, gen)
				return
			}
		}
		if l := o.limiterFor(it.Room); l != nil {
			if err := l.Wait(ctx); err != nil {
				o.requeueFront(items, gen)
				return
			}
		}
	}
	// The write gets a context that never ends: mellium moves the write
	// deadline into the past when a write's context ends, and if that
	// happens just as the write finishes it breaks the next one (see
	// iq.go). A watchdog enforces the write timeout instead.
	stuck := time.AfterFunc(o.cfg.Write, func() {
		if o.hooks.Stuck != nil && o.current(gen) {
			o.hooks.Stuck()
		}
	})
	// Messages are remembered by id before they are written: the server's
	// error answer to one (HandleError) may come back before this
	// goroutine is done with the write.
	o.mu.Lock()
	sending := time.Now()
	for _, it := range items {
		it.sentAt = sending
		if it.Kind == Message && it.ID != "" {
			o.rememberLocked(it)
		}
	}
	o.mu.Unlock()
	var r xml.TokenReader
	if len(items) == 1 {
		r = items[0].Tokens()
	} else {
		rs := make([]xml.TokenReader, len(items))
		for i, it := range items {
			rs[i] = it.Tokens()
		}
		r = xmlstream.MultiReader(rs...)
	}
	err := s.Send(context.Background(), r)
	stuck.Stop()
	if err != nil {
		o.requeueFront(items, gen)
		if o.hooks.Failed != nil && o.current(gen) {
			o.hooks.Failed(err)
		}
		return
	}
	wrote := time.Now()
	o.lastWrite.Store(wrote.UnixNano())
	// The stream management count after the write bounds each item's own
	// position from above (others may have written in between), which is
	// the safe side for deciding after a resumption what the server has.
	smCount, smOn := uint32(0), false
	if c, ok := s.(SMSender); ok {
		smCount, smOn = c.SMSent()
	}
	var settled, stale, late []*Item
	o.mu.Lock()
	for i, it := range items {
		it.smSeq, it.smOK = smCount-uint32(len(items)-1-i), smOn
		o.inflight--
		switch {
		case gen == o.gen && o.ack != nil:
			if o.written == o.asked {
				o.firstUnasked = wrote
			}
			o.written++
			it.seq = o.written
			it.wrote = wrote
			o.urgent = o.urgent || it.Done != nil
			o.unacked = append(o.unacked, it)
			if o.written-o.asked >= uint64(max(1, o.cfg.Window/2)) {
				o.barrierLocked()
			}
		case gen == o.gen:
			settled = append(settled, it) // no barrier: written is delivered
		case o.s == nil:
			// The session was detached while this write went on: nothing
			// says the server read it. Like the session's other
			// unacknowledged items, the next session decides. Its stream
			// management count means something only if the next session
			// can resume the one it was written to (the one just
			// detached), not an older one.
			if gen+1 != o.gen {
				it.smOK = false
			}
			o.unacked = append(o.unacked, it)
		case it.Priority == High && !o.resumed:
			stale = append(stale, it)
		default:
			// A later session is attached already: write it again.
			it.smOK = false
			late = append(late, it)
		}
	}
	o.requeueLocked(late)
	o.mu.Unlock()
	for _, it := range stale {
		o.drop(it, ErrClosed, "stale")
	}
	for _, it := range items {
		if o.hooks.Sent != nil {
			o.hooks.Sent(it)
		}
	}
	for _, it := range settled {
		o.settle(it)
	}
}

// barrierLocked starts an acknowledgement barrier for everything written so
// far in this session. Several may be outstanding: the writer goes on while
// they travel, until the window is full.
func (o *Outbox) barrierLocked() {
	target, gen, ack := o.written, o.gen, o.ack
	o.asked = target
	o.urgent, o.ackNow = false, false
	o.barriers.Add(1)
	go func() {
		defer o.barriers.Done()
		asked := time.Now()
		err := ack()
		o.acknowledged(gen, target, asked, err)
	}()
}

// acknowledged settles the items up to target once a barrier came back.
func (o *Outbox) acknowledged(gen, target uint64, asked time.Time, err error) {
	o.mu.Lock()
	if gen != o.gen || err != nil {
		// The session changed or is dying: Attach requeues what is left.
		o.mu.Unlock()
		return
	}
	var done []*Item
	for len(o.unacked) > 0 && o.unacked[0].seq <= target {
		done = append(done, o.unacked[0])
		o.unacked = o.unacked[1:]
	}
	o.acked = max(o.acked, target)
	o.mu.Unlock()
	now := time.Now()
	for _, it := range done {
		o.settleAcked(it, asked, now)
	}
	o.poke()
}

// requeueFront puts items that could not be written back at the head of
// their queues, in order, except High items of a session that is gone.
func (o *Outbox) requeueFront(items []*Item, gen uint64) {
	var stale []*Item
	o.mu.Lock()
	o.inflight -= len(items)
	for _, it := range items {
		it.smOK = false // not known to be written
	}
	switch {
	case gen == o.gen:
		// The session they were taken for is still attached (the
		// failure hook is about to drop it): back to the front.
		o.requeueLocked(items)
	case o.s == nil:
		// Detached meanwhile: like the session's unacknowledged items,
		// the next session decides (presence and joins hold only if it
		// resumes this one).
		o.unacked = append(o.unacked, items...)
	default:
		// A later session is attached already.
		var keep []*Item
		for _, it := range items {
			if it.Priority == High && !o.resumed {
				stale = append(stale, it)
				continue
			}
			keep = append(keep, it)
		}
		o.requeueLocked(keep)
	}
	o.mu.Unlock()
	for _, it := range stale {
		o.drop(it, ErrClosed, "stale")
	}
	// Wait for the supervisor to attach a new session: the writer spins
	// otherwise on a dead one.
	time.Sleep(50 * time.Millisecond)
}

// gateBulkLocked moves the room items of the bulk queue into their rooms'
// gates when those are closed, ahead of what waits there already (they
// were queued earlier). The caller holds mu.
func (o *Outbox) gateBulkLocked() {
	for _, q := range []*fairQueue{&o.inter, &o.bulk} {
		q.rooms(func(room string) {
			if g := o.gate(room); !g.joined {
				g.pending = append(q.takeRoom(room), g.pending...)
			}
		})
	}
}

// pushFrontLocked puts non-High items back at the head of their lanes,
// in order. The caller holds mu.
func (o *Outbox) pushFrontLocked(items []*Item) {
	var inter, bulk []*Item
	for _, it := range items {
		if it.Priority == Interactive {
			inter = append(inter, it)
		} else {
			bulk = append(bulk, it)
		}
	}
	o.inter.pushFront(inter)
	o.bulk.pushFront(bulk)
}

// requeueLocked puts items written to a session that is gone back at the
// head of their queues, in order; a room's items then wait behind its gate
// when the bot is not in the room. The caller holds mu.
func (o *Outbox) requeueLocked(items []*Item) {
	if len(items) == 0 {
		return
	}
	var high, bulk []*Item
	for _, it := range items {
		it.seq = 0
		if it.Priority == High {
			high = append(high, it)
		} else {
			bulk = append(bulk, it)
		}
	}
	o.high = append(high, o.high...)
	o.pushFrontLocked(bulk)
	o.gateBulkLocked()
}

func (o *Outbox) rememberLocked(it *Item) {
	o.sent[it.ID] = it
	o.sentFIFO = append(o.sentFIFO, it.ID)
	if len(o.sentFIFO) > sentMemory {
		old := o.sentFIFO[0]
		o.sentFIFO = o.sentFIFO[1:]
		delete(o.sent, old)
	}
}

// settle ends an item the server acknowledged (or that needs no
// acknowledgement): its delivery time is observed and Done called.
func (o *Outbox) settle(it *Item) { o.settleAcked(it, time.Time{}, time.Now()) }

// settleAcked settles an item a barrier asked at asked confirmed at now.
// The times observed leave out how long the item waited for the barrier
// to be asked (the batching of acknowledgements): they are the time to
// the write plus the barrier's round trip.
func (o *Outbox) settleAcked(it *Item, asked, now time.Time) {
	took := func(from time.Time) float64 {
		if !it.wrote.IsZero() && asked.After(it.wrote) {
			return (it.wrote.Sub(from) + now.Sub(asked)).Seconds()
		}
		return now.Sub(from).Seconds()
	}
	if !it.queued.IsZero() {
		o.delivery.Observe(took(it.queued))
	}
	if !it.Received.IsZero() {
		o.reply.Observe(took(it.Received))
	}
	if it.Done != nil && it.ended.CompareAndSwap(false, true) {
		it.Done(nil)
	}
}

func (o *Outbox) drop(it *Item, err error, reason string) {
	if o.hooks.Dropped != nil {
		o.hooks.Dropped(reason)
	}
	if it.Done != nil && it.ended.CompareAndSwap(false, true) {
		it.Done(err)
	}
}

// Tokens renders the item as a stanza. Text goes through the XML encoder
// as character data, so it is escaped and never spliced into markup. The
// common case (no payload) is one slice of tokens: this runs for every
// stanza the bot sends.
func (it *Item) Tokens() xml.TokenReader {
	attrs := make([]xml.Attr, 0, 4)
	if it.From != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: it.From})
	}
	if it.To != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "to"}, Value: it.To})
	}
	if it.Type != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: it.Type})
	}
	if it.ID != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "id"}, Value: it.ID})
	}
	start := xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: it.Kind.String()}, Attr: attrs}
	toks := make([]xml.Token, 0, 8)
	toks = append(toks, start)
	text := func(name, v string) {
		if v != "" {
			el := xml.StartElement{Name: xml.Name{Local: name}}
			toks = append(toks, el, xml.CharData(v), el.End())
		}
	}
	text("subject", it.Subject)
	text("body", it.Body)
	if it.Payload == nil {
		return &tokenSlice{toks: append(toks, start.End())}
	}
	return xmlstream.MultiReader(&tokenSlice{toks: toks}, it.Payload(), xmlstream.Token(start.End()))
}

// tokenSlice reads a fixed list of tokens.
type tokenSlice struct {
	toks []xml.Token
	i    int
}

// Token returns the next token, then io.EOF.
func (r *tokenSlice) Token() (xml.Token, error) {
	if r.i >= len(r.toks) {
		return nil, io.EOF
	}
	t := r.toks[r.i]
	r.i++
	return t, nil
}

func TextElem(name, v string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(v)), xml.StartElement{Name: xml.Name{Local: name}})
}

// LastWrite is when a stanza was last written (Unix nanoseconds; 0 before
// the first): the keepalive reads it to tell a slow, shaping server from a
// deaf one.
func (o *Outbox) LastWrite() int64 { return o.lastWrite.Load() }

// Delivery is the histogram of each settled item's time from Enqueue to
// the server's acknowledgement (crier_delivery_seconds), for the bot to
// serve.
func (o *Outbox) Delivery() prometheus.Histogram { return o.delivery }

// Reply is the histogram of replies' time from the message they answer
// coming in to the server's acknowledgement (crier_reply_seconds).
func (o *Outbox) Reply() prometheus.Histogram { return o.reply }

// deliveryBuckets are the bounds of crier_delivery_seconds: from a few
// milliseconds on loopback to the minutes a message may wait for a
// reconnect or a room.
var deliveryBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// newDeliveryHistogram is the outbox's latency histogram. The outbox owns
// it (as it owns its depth) and observes each item it settles; the
// operations endpoint serves it.
func newDeliveryHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "crier_delivery_seconds",
		Help:    "Time from a stanza entering the outbox to the server acknowledging it.",
		Buckets: deliveryBuckets,
	})
}

// Drain writes what is queued now on the calling goroutine, as Run's
// writer would, and returns how many stanzas it wrote. Benchmarks use it to
// measure the send path without the writer goroutine's hand-off; the bot
// uses Run.
func (o *Outbox) Drain(ctx context.Context) int {
	var buf []*Item
	n := 0
	for {
		items, s, gen, _ := o.next(time.Now(), buf[:0])
		if len(items) == 0 {
			return n
		}
		o.send(ctx, items, s, gen)
		n += len(items)
		buf = items
	}
}

// Stats are the outbox's counts for the session attached now.
type Stats struct {
	// Written is how many stanzas this session wrote; Unacked how many of
	// them the server has not confirmed yet.
	Written uint64
	Unacked int
	// Resent is how many unacknowledged stanzas of lost connections were
	// written again, in all.
	Resent int
}

// Stats returns the outbox's counts.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return Stats{Written: o.written, Unacked: len(o.unacked), Resent: o.resent}
}
