package natsrelay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"mellium.im/xmpp/jid"

	"crier/internal/diag"
	"crier/plugins"
)

// Header names crier sets on dead letters.
const (
	// HeaderReason is the Reason constant saying why a message is dead.
	HeaderReason = "Crier-Reason"
	// HeaderError is the detail of the reason.
	HeaderError = "Crier-Error"
	// HeaderSubject is the subject the message was published on.
	HeaderSubject = "Crier-Subject"
	// HeaderRelay is the subject of the relay that refused it.
	HeaderRelay = "Crier-Relay"
	// HeaderMsgID is the message's Nats-Msg-Id, which is not kept under its
	// own name so that a stream on the dead-letter subject keeps every copy.
	HeaderMsgID = "Crier-Msg-Id"
	// HeaderTruncated is "true" when the payload was cut to max_bytes.
	HeaderTruncated = "Crier-Truncated"
)

// relay is one [[nats.relay]]: a subscription (core NATS) or a durable
// pull consumer (JetStream) whose messages become stanzas.
type relay struct {
	p             *Plugin
	cfg           Relay
	tmpl          *template.Template
	format        string
	stream        string
	durable       string
	deadLetter    string
	maxBytes      int
	maxAckPending int
	ackWait       time.Duration
	nakDelay      time.Duration
	win           *window
	ready         atomic.Bool
}

// newRelay checks rc and fills in its defaults.
func newRelay(p *Plugin, i int, rc Relay, deadLetter string) (*relay, diag.List) {
	var errs diag.List
	bad := func(key, format string, args ...any) {
		errs.Add(rc.Pos.At(key, "nats.relay."+key+": "+format, args...))
	}
	r := &relay{
		p: p, cfg: rc, format: rc.Format, stream: rc.Stream, durable: rc.Durable,
		deadLetter: rc.DeadLetter, maxBytes: rc.MaxBytes, maxAckPending: rc.MaxAckPending,
		ackWait: rc.AckWait.Std(), nakDelay: rc.NakDelay.Std(), win: newWindow(SeenWindow),
	}
	switch r.format {
	case "":
		r.format = FormatText
	case FormatText, FormatJSON:
	default:
		bad("format", `must be "text" or "json", not %q`, rc.Format)
	}
	t, err := parseTemplate(fmt.Sprintf("nats.relay[%d]", i), rc.Template, r.format)
	if err != nil {
		bad("template", "%v", err)
	}
	r.tmpl = t
	if r.deadLetter == "" {
		r.deadLetter = deadLetter
	}
	if r.deadLetter == "" {
		r.deadLetter = DefaultDeadLetter
	}
	if !publishSubject(r.deadLetter) {
		bad("dead_letter", "%q is not a subject to publish to", r.deadLetter)
	}
	switch {
	case r.maxBytes < 0:
		bad("max_bytes", "must not be negative")
	case r.maxBytes == 0:
		r.maxBytes = DefaultMaxBytes
	}
	switch {
	case r.maxAckPending < 0:
		bad("max_ack_pending", "must not be negative")
	case r.maxAckPending == 0:
		r.maxAckPending = DefaultMaxAckPending
	}
	switch {
	case r.ackWait < 0:
		bad("ack_wait", "must not be negative")
	case r.ackWait == 0:
		r.ackWait = DefaultAckWait
	}
	switch {
	case r.nakDelay < 0:
		bad("nak_delay", "must not be negative")
	case r.nakDelay == 0:
		r.nakDelay = DefaultNakDelay
	}
	if r.stream != "" {
		if strings.ContainsAny(r.stream, ".*> \t\r\n") {
			bad("stream", "%q is not a valid stream name", r.stream)
		}
		if r.durable == "" {
			r.durable = "crier_" + SanitizeToken(strings.NewReplacer("*", "any", ">", "all").Replace(rc.Subject))
		}
		if strings.ContainsAny(r.durable, ".*> \t\r\n") {
			bad("durable", "%q is not a valid consumer name", r.durable)
		}
	}
	return r, errs
}

// inMsg is one delivery of a NATS message to a relay.
type inMsg struct {
	subject string
	header  nats.Header
	data    []byte
	key     string // the message id for the seen-window; "" for none
	time    time.Time
	d       delivery
	js      bool
	// redelivered is set for a JetStream message delivered before (here
	// or to another instance): only those are looked up in the shared
	// seen-window.
	redelivered bool
	inProgress  func()
}

// onCore handles a core NATS message: at most once, dropped when the
// outbox is full.
func (r *relay) onCore(msg *nats.Msg) {
	if r.p.haBucket != "" && !r.p.env.Host.Speaking() {
		// Every instance hears a core NATS message: the leader sends it.
		return
	}
	key := ""
	if id := msg.Header.Get(nats.MsgIdHdr); id != "" {
		key = "id:" + id
	}
	noop := func() {}
	r.handle(context.Background(), inMsg{
		subject: msg.Subject, header: msg.Header, data: msg.Data, key: key, time: time.Now(),
		d: delivery{ack: noop, nak: noop}, inProgress: noop,
	})
}

// standbyPoll is how often a relay that may not pull asks again.
const standbyPoll = 200 * time.Millisecond

// runJetStream consumes the relay's durable consumer until ctx ends. Each
// round sets the consumer up (retrying with a growing pause) and reads from
// it until the iterator breaks, for example because the consumer was
// deleted.
//
// With [ha] every instance with an XMPP session pulls from the one durable
// consumer, so JetStream spreads the messages over them (each goes to one
// puller at a time, and what an instance took and never acked is
// redelivered to another after ack_wait). A standby sends to users itself
// and hands a message with a room among its recipients back to JetStream
// (after the users' sends are recorded in the shared window), for the
// leader, the one instance in the rooms.
func (r *relay) runJetStream(ctx context.Context) {
	defer r.p.loops.Done()
	log := r.p.log.With("relay", r.cfg.Subject)
	pause := 250 * time.Millisecond
	for ctx.Err() == nil {
		if !r.p.mayPull() {
			// Without an XMPP session what this instance took could only
			// wait: leave it to the others.
			r.ready.Store(true) // standing by is ready
			sleep(ctx, standbyPoll)
			continue
		}
		cons, err := r.consumer(ctx)
		if err == nil {
			err = r.p.openShared(ctx)
		}
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("JetStream consumer not ready, retrying", "stream", r.stream, "durable", r.durable, "err", err)
			}
			sleep(ctx, pause)
			pause = min(pause*2, 10*time.Second)
			continue
		}
		pause = 250 * time.Millisecond
		r.ready.Store(true)
		err = r.consume(ctx, cons)
		r.ready.Store(false)
		if err != nil && ctx.Err() == nil {
			log.Warn("JetStream consumer stopped, setting it up again", "err", err)
			sleep(ctx, pause)
		}
	}
}

// consumer creates or updates the durable pull consumer; a missing stream
// is created on the relay's subject.
func (r *relay) consumer(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	js, err := jetstream.New(r.p.nc)
	if err != nil {
		return nil, err
	}
	if _, err := js.Stream(ctx, r.stream); errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: r.stream, Subjects: []string{r.cfg.Subject}})
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", r.stream, err)
		}
		r.p.log.Info("created JetStream stream", "stream", r.stream, "subject", r.cfg.Subject)
	} else if err != nil {
		return nil, err
	}
	cc := jetstream.ConsumerConfig{
		Durable:       r.durable,
		FilterSubject: r.cfg.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.ackWait,
		MaxAckPending: r.maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, r.stream, cc)
	if err != nil {
		// A consumer made elsewhere may refuse an update (its deliver
		// policy cannot change); use it as it is.
		if c, err2 := js.Consumer(ctx, r.stream, r.durable); err2 == nil {
			r.p.log.Warn("using the existing JetStream consumer unchanged", "durable", r.durable, "err", err)
			return c, nil
		}
		return nil, fmt.Errorf("consumer %s: %w", r.durable, err)
	}
	return cons, nil
}

// consume reads messages one at a time until ctx ends or the iterator
// breaks. A message whose send must wait (full outbox) holds the loop:
// that is the pause. The consumer's max_ack_pending bounds the messages in
// flight, so nothing more is delivered while they wait.
func (r *relay) consume(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(min(r.maxAckPending, 100)))
	if err != nil {
		return err
	}
	defer it.Stop()
	checked := time.Now()
	for ctx.Err() == nil {
		if time.Since(checked) > standbyPoll {
			checked = time.Now()
			if !r.p.mayPull() {
				// XMPP session lost: stop pulling; what this consumer
				// holds unacknowledged goes to the others after ack_wait.
				return nil
			}
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, jetstream.ErrConsumerNotFound) {
				return err
			}
			// Missed heartbeats and the like while NATS reconnects: the
			// iterator recovers by itself.
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		r.onJetStream(ctx, msg)
	}
	return nil
}

// onJetStream handles one JetStream message; its ack or nak happens once
// every send has an outcome.
func (r *relay) onJetStream(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	label := r.cfg.Subject
	m := r.p.met
	m.pending.WithLabelValues(label).Set(float64(meta.NumPending))
	if meta.NumDelivered > 1 {
		m.redeliveries.WithLabelValues(label).Inc()
	}
	m.unacked.WithLabelValues(label).Inc()
	r.p.inflight.Add(1)
	keep := r.keepInProgress(msg)
	var once sync.Once
	finish := func(settle func() error, what string) {
		once.Do(func() {
			keep()
			if err := settle(); err != nil && !r.p.stopped.Load() {
				r.p.log.Warn("JetStream "+what+" failed", "relay", label, "seq", meta.Sequence.Stream, "err", err)
			}
			m.unacked.WithLabelValues(label).Dec()
			r.p.inflight.Done()
		})
	}
	d := delivery{
		ack: func() {
			finish(msg.Ack, "ack")
			m.lag.WithLabelValues(label).Set(time.Since(meta.Timestamp).Seconds())
		},
		nak: func() { finish(func() error { return msg.NakWithDelay(r.nakDelay) }, "nak") },
		handover: func() {
			finish(func() error { return msg.NakWithDelay(handoverDelay(meta.NumDelivered)) }, "nak")
		},
	}
	key := fmt.Sprintf("seq:%s:%d", meta.Stream, meta.Sequence.Stream)
	if id := msg.Headers().Get(nats.MsgIdHdr); id != "" {
		key = "id:" + id
	}
	r.handle(ctx, inMsg{
		subject: msg.Subject(), header: msg.Headers(), data: msg.Data(), key: key, time: meta.Timestamp,
		d: d, js: true, redelivered: meta.NumDelivered > 1, inProgress: func() { _ = msg.InProgress() },
	})
}

// maxInProgress bounds how long a message taken by this instance is kept
// from redelivery while its stanzas wait in the outbox.
const maxInProgress = 5 * time.Minute

// keepInProgress tells JetStream every third of ack_wait that msg is being
// worked on, until the returned function is called (or maxInProgress
// passed): a message accepted by the outbox but slow to be acknowledged
// (a long queue, a reconnect) is not redelivered meanwhile, to this or
// another instance, which would send it a second time. A dead instance
// stops telling, and its messages are redelivered after ack_wait.
func (r *relay) keepInProgress(msg jetstream.Msg) (stop func()) {
	var mu sync.Mutex
	stopped := false
	every := r.ackWait / 3
	until := time.Now().Add(maxInProgress)
	var t *time.Timer
	mu.Lock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped || time.Now().After(until) {
			return
		}
		_ = msg.InProgress()
		t.Reset(every)
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

// handoverDelay is how long a message a standby handed back waits before
// JetStream delivers it again: short, since the leader is there to take
// it, and longer each time, since another standby may take it first (or
// no instance leads, during a failover).
func handoverDelay(delivered uint64) time.Duration {
	d := 20 * time.Millisecond
	for n := uint64(1); n < delivered && d < time.Second; n++ {
		d *= 2
	}
	return min(d, time.Second)
}

// handle turns one delivery into stanzas and sends those the seen-window
// does not know as sent.
func (r *relay) handle(ctx context.Context, in inMsg) {
	pl, err := ParsePayload(in.data, r.format, r.maxBytes)
	var msgs []plugins.Message
	if err == nil {
		msgs, err = r.messages(in, pl)
	}
	if err != nil {
		r.deadLetterOf(in, err)
		in.d.ack()
		return
	}
	byTo := make(map[string]plugins.Message, len(msgs))
	tos := make([]string, 0, len(msgs))
	for _, m := range msgs {
		byTo[m.To] = m
		tos = append(tos, m.To)
	}
	var known []string
	sw := r.p.shared.Load()
	if in.redelivered && sw != nil && in.key != "" {
		// Another instance may have sent it before it died or lost its
		// ack: ask the shared window.
		known, err = sw.lookup(ctx, r.durable, in.key)
		if err != nil {
			r.p.met.shared.WithLabelValues(r.cfg.Subject, "error").Inc()
			r.p.log.Warn("shared seen-window unreadable; the message waits for a later delivery", "relay", r.cfg.Subject, "err", err)
			in.d.nak()
			return
		}
		if len(known) > 0 {
			r.p.met.shared.WithLabelValues(r.cfg.Subject, "hit").Inc()
		} else {
			r.p.met.shared.WithLabelValues(r.cfg.Subject, "miss").Inc()
		}
	}
	e, todo, state := r.win.begin(in.key, tos, in.d, known...)
	switch state {
	case beginAcked:
		r.p.met.duplicates.WithLabelValues(r.cfg.Subject).Inc()
		in.d.ack()
		return
	case beginWaiting:
		// An earlier copy is still being sent; this one is settled with it.
		r.p.met.duplicates.WithLabelValues(r.cfg.Subject).Inc()
		return
	}
	if in.js && r.p.haBucket != "" && !r.p.env.Host.Speaking() {
		// A standby is in no room: the rooms are the leader's.
		mine := todo[:0:0]
		left := 0
		for _, to := range todo {
			if byTo[to].Type == "groupchat" {
				left++
				continue
			}
			mine = append(mine, to)
		}
		if left > 0 {
			r.p.met.handovers.WithLabelValues(r.cfg.Subject).Inc()
			for _, to := range todo {
				if byTo[to].Type == "groupchat" {
					r.settle(e, to, errHandover)
				}
			}
		}
		todo = mine
	}
	oid := originID(in.key)
	for i, to := range todo {
		m := byTo[to]
		m.OriginID = oid
		// Any instance may deliver a push to a user (shared work); the
		// rooms stay the leader's.
		m.Work = in.js && m.Type != "groupchat"
		if err := r.send(ctx, in, m, e); err != nil {
			for _, rest := range todo[i:] {
				r.settle(e, rest, err)
			}
			return
		}
	}
}

// messages renders a payload into one stanza per recipient.
func (r *relay) messages(in inMsg, pl Payload) ([]plugins.Message, error) {
	data := Data{
		NATSSubject: in.subject, Header: in.header, Time: in.time, Text: pl.Text,
		Title: pl.Title, Subject: pl.Title, Body: pl.Body, Type: pl.Type, Severity: pl.Severity,
		URL: pl.URL, ID: pl.ID, To: pl.To, Fields: pl.Fields,
	}
	body, err := render(r.tmpl, data)
	if err != nil {
		return nil, &PayloadError{Reason: ReasonTemplate, Err: err}
	}
	if body == "" {
		return nil, &PayloadError{Reason: ReasonEmpty, Err: errors.New("the message renders to an empty body")}
	}
	tos := pl.To
	if len(tos) == 0 {
		tos = r.cfg.To
	}
	seen := map[string]bool{}
	var out []plugins.Message
	for _, to := range tos {
		j, err := jid.Parse(to)
		if err != nil || j.Domainpart() == "" {
			return nil, &PayloadError{Reason: ReasonInvalidField, Err: fmt.Errorf("to %q is not a JID", to)}
		}
		to = j.String()
		if seen[to] {
			continue
		}
		seen[to] = true
		typ := r.typeFor(to, pl.Type)
		m := plugins.Message{To: to, From: r.cfg.From, Type: typ, Body: body}
		if typ == "headline" || typ == "normal" {
			m.Subject = pl.Title
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, &PayloadError{Reason: ReasonEmpty, Err: errors.New("no recipient")}
	}
	return out, nil
}

// typeFor picks the message type for one recipient: the payload's type if
// it has one; groupchat for a room or when the relay's type is groupchat;
// else the relay's type, headline by default.
func (r *relay) typeFor(to, payloadType string) string {
	switch {
	case payloadType != "":
		return payloadType
	case r.cfg.Type == "groupchat" || r.p.isRoom(to):
		return "groupchat"
	case r.cfg.Type != "":
		return r.cfg.Type
	default:
		return "headline"
	}
}

// send hands one stanza to the bot. For JetStream a full outbox (ErrBusy)
// makes it wait and retry, with a growing pause, for at most busyLimit,
// telling JetStream the message is in progress so that it is not
// redelivered meanwhile. For core NATS a full outbox drops the stanza.
func (r *relay) send(ctx context.Context, in inMsg, m plugins.Message, e *entry) error {
	to := m.To
	settle := func(err error) { r.settle(e, to, err) }
	label := r.cfg.Subject
	if !in.js {
		err := trySend(r.p.env.Host.Send, m, settle)
		switch {
		case errors.Is(err, plugins.ErrBusy):
			r.p.met.busy.WithLabelValues(label).Inc()
			r.p.met.drops.WithLabelValues(label, "busy").Inc()
		case err != nil:
			r.p.met.drops.WithLabelValues(label, "error").Inc()
		}
		return err
	}
	const maxPause = 250 * time.Millisecond
	const maxAttempts = int(busyLimit/maxPause) + 16
	pause := 5 * time.Millisecond
	start := time.Now()
	lastProgress := start
	for attempt := range maxAttempts {
		err := trySend(r.p.env.Host.Send, m, settle)
		if !errors.Is(err, plugins.ErrBusy) {
			return err
		}
		r.p.met.busy.WithLabelValues(label).Inc()
		if attempt == 0 {
			r.p.log.Debug("outbox full, JetStream relay paused", "relay", label)
		}
		if time.Since(start) > busyLimit {
			return err
		}
		if time.Since(lastProgress) > r.ackWait/3 {
			in.inProgress()
			lastProgress = time.Now()
		}
		if !sleep(ctx, pause) {
			return plugins.ErrStopped
		}
		pause = min(pause*2, maxPause)
	}
	return plugins.ErrBusy
}

// settle records the outcome of one send and, when it was the last of its
// message, acks (all sent) or naks (some failed) every delivery of it. With
// the shared seen-window the recipients that have it are recorded first,
// so that no instance sends it to them again whatever becomes of the ack.
func (r *relay) settle(e *entry, to string, err error) {
	switch {
	case err == nil:
		r.p.met.relayed.WithLabelValues(r.cfg.Subject).Inc()
	case errors.Is(err, plugins.ErrBusy), errors.Is(err, errHandover):
	default:
		r.p.log.Warn("relayed message not delivered", "relay", r.cfg.Subject, "to", to, "err", err)
	}
	res := r.win.settle(e, to, err)
	if res.ds == nil {
		return
	}
	finish := func() {
		for _, d := range res.ds {
			switch {
			case res.ok:
				d.ack()
			case res.handover && d.handover != nil:
				d.handover()
			default:
				d.nak()
			}
		}
	}
	sw := r.p.shared.Load()
	if sw == nil || r.stream == "" || e.key == "" || len(res.sent) == 0 {
		finish()
		return
	}
	// Not on the caller's goroutine: settle runs on the bot's, which must
	// not wait for NATS.
	sw.recordAsync(r.durable, e.key, res.sent, func(err error) {
		if err != nil {
			r.p.met.shared.WithLabelValues(r.cfg.Subject, "error").Inc()
			r.p.log.Warn("shared seen-window not written; a redelivery elsewhere could be sent twice", "relay", r.cfg.Subject, "err", err)
		} else {
			r.p.met.shared.WithLabelValues(r.cfg.Subject, "recorded").Inc()
		}
		finish()
	})
}

// trySend calls send with a done callback that forwards the outcome to
// settle exactly once, and only when send accepted the message: a refused
// send (an error returned) is the caller's to handle, whatever done says.
func trySend(send func(plugins.Message, func(error)) error, m plugins.Message, settle func(error)) error {
	var (
		mu       sync.Mutex
		state    int // 0: send running, 1: accepted, 2: refused
		early    error
		hasEarly bool
		once     sync.Once
	)
	done := func(err error) {
		mu.Lock()
		switch state {
		case 0:
			if !hasEarly {
				early, hasEarly = err, true
			}
			mu.Unlock()
		case 1:
			mu.Unlock()
			once.Do(func() { settle(err) })
		default:
			mu.Unlock()
		}
	}
	if err := send(m, done); err != nil {
		mu.Lock()
		state = 2
		mu.Unlock()
		return err
	}
	mu.Lock()
	state = 1
	fire, ferr := hasEarly, early
	mu.Unlock()
	if fire {
		once.Do(func() { settle(ferr) })
	}
	return nil
}

// deadLetterOf publishes a malformed message to the dead-letter subject
// with headers saying why, and counts it. The caller acks it.
func (r *relay) deadLetterOf(in inMsg, perr error) {
	reason := ReasonTemplate
	var pe *PayloadError
	if errors.As(perr, &pe) {
		reason = pe.Reason
	}
	h := nats.Header{}
	for k, v := range in.header {
		// Nats-* headers steer the server (dedup, expectations); they
		// must not act on the dead-letter copy.
		if !strings.HasPrefix(strings.ToLower(k), "nats-") {
			h[k] = v
		}
	}
	h.Set(HeaderReason, reason)
	h.Set(HeaderError, perr.Error())
	h.Set(HeaderSubject, in.subject)
	h.Set(HeaderRelay, r.cfg.Subject)
	if id := in.header.Get(nats.MsgIdHdr); id != "" {
		h.Set(HeaderMsgID, id)
	}
	data := in.data
	if len(data) > r.maxBytes {
		data = data[:r.maxBytes]
		h.Set(HeaderTruncated, "true")
	}
	r.p.met.deadLetters.WithLabelValues(r.cfg.Subject, reason).Inc()
	err := r.p.nc.PublishMsg(&nats.Msg{Subject: r.deadLetter, Header: h, Data: data})
	if err != nil {
		r.p.log.Error("dead letter not published", "relay", r.cfg.Subject, "reason", reason, "err", err)
		return
	}
	r.p.log.Warn("malformed message sent to the dead-letter subject", "relay", r.cfg.Subject,
		"subject", in.subject, "dead_letter", r.deadLetter, "reason", reason, "err", perr)
}

// originID derives the XEP-0359 origin-id of a message's stanzas from its
// NATS id, so that every copy of one message carries the same origin-id.
// A message without an id gets a unique one.
func originID(key string) string {
	if key == "" {
		return "crier-" + nuid.Next()
	}
	sum := sha256.Sum256([]byte(key))
	return "crier-" + hex.EncodeToString(sum[:16])
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
