package natsrelay

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"mellium.im/xmpp/jid"

	"crier/internal/diag"
	"crier/plugins"
)

// Name is the plugin's name.
const Name = "natsrelay"

// SampleConfig is the plugin's annotated sample configuration.
//
//go:embed sample.conf
var SampleConfig string

// Errors of this package.
var (
	// ErrRefused is wrapped by SendRequest's error when crier answered that
	// it could not send the message.
	ErrRefused = errors.New("natsrelay: message not sent")
	// ErrInvalidRequest is wrapped by ParseRequest's errors.
	ErrInvalidRequest = errors.New("natsrelay: invalid request")
	// errStarted is returned by a second Start.
	errStarted = errors.New("natsrelay: already started")
)

// Defaults of the relay keys.
const (
	// DefaultDeadLetter is the dead-letter subject when neither
	// nats.relay.dead_letter nor nats.dead_letter is set.
	DefaultDeadLetter = "crier.deadletter"
	// DefaultMaxAckPending bounds the JetStream messages in flight.
	DefaultMaxAckPending = 256
	// DefaultAckWait is how long JetStream waits for an ack.
	DefaultAckWait = 30 * time.Second
	// DefaultNakDelay is how long JetStream waits to redeliver a message
	// that could not be sent.
	DefaultNakDelay = 5 * time.Second
	// RequestQueue is the queue group of the request subscription: when
	// several crier processes share a NATS account, one of them answers.
	RequestQueue = "crier"
)

// busyLimit bounds how long a JetStream relay waits for a full outbox to
// drain before it gives the message back to JetStream (nak) for later.
const busyLimit = 2 * time.Minute

// eventQueue is how many received messages may wait to be published to
// NATS; more are dropped and counted.
const eventQueue = 1024

func init() {
	plugins.Register(plugins.Spec{
		Name:   Name,
		Table:  "nats",
		Config: func() any { return &Config{} },
		New: func(cfg any, core plugins.Core) (plugins.Plugin, bool, error) {
			return New(*cfg.(*Config), core)
		},
	})
}

// Plugin relays NATS messages to XMPP and, optionally, XMPP messages to
// NATS. Build it with New.
type Plugin struct {
	cfg        Config
	relays     []*relay
	rooms      map[string]bool // bare JIDs known to be rooms
	pubTmpl    *template.Template
	reqSubject string
	// haBucket and haReplicas are [ha]'s: set, the relay shares its work
	// and its seen-window with the other instances.
	haBucket   string
	haReplicas int
	shared     atomic.Pointer[sharedWindow]
	sharedMu   sync.Mutex

	env    plugins.Env
	log    *slog.Logger
	met    *metrics
	nc     *nats.Conn
	cancel context.CancelFunc
	// loops counts the plugin's goroutines; inflight counts JetStream
	// messages not yet acked or nacked. Stop waits for loops first, so
	// that no message is received after it starts waiting for inflight.
	loops    sync.WaitGroup
	inflight sync.WaitGroup
	subs     []*nats.Subscription
	events   chan plugins.Event
	started  atomic.Bool
	// observing is set once events are published: Observe queues them.
	observing atomic.Bool
	stopped   atomic.Bool
	stopOnce  sync.Once
	stopErr   error
}

// New builds the plugin from the [nats] table. It is enabled when nats.url
// is set and there is something to do: a relay, event publishing or a
// request subject. Templates and the keys config does not check are
// validated here; the error is a diag.List.
func New(n Config, core plugins.Core) (plugins.Plugin, bool, error) {
	if n.URL == "" || (len(n.Relay) == 0 && n.Publish == "" && n.Request == "") {
		return nil, false, nil
	}
	p := &Plugin{cfg: n, rooms: map[string]bool{}, reqSubject: n.Request, haBucket: core.HABucket, haReplicas: core.HAReplicas}
	var errs diag.List
	top := func(key, format string, args ...any) {
		errs.Add(diag.Error{File: core.Path, Msg: "nats." + key + ": " + fmt.Sprintf(format, args...)})
	}
	for _, r := range core.Rooms {
		if j, err := jid.Parse(r); err == nil {
			p.rooms[j.Bare().String()] = true
		}
	}
	for _, rc := range n.Relay {
		for _, room := range rc.Rooms {
			j, err := jid.Parse(room)
			if err != nil || room == "" || j.Localpart() == "" {
				errs.Add(rc.Pos.At("rooms", "nats.relay.rooms: %q is not a room JID", room))
				continue
			}
			p.rooms[j.Bare().String()] = true
		}
	}
	if n.DeadLetter != "" && !publishSubject(n.DeadLetter) {
		top("dead_letter", "%q is not a subject to publish to", n.DeadLetter)
	}
	for i, rc := range n.Relay {
		r, rerrs := newRelay(p, i, rc, n.DeadLetter)
		errs.Merge(rerrs)
		p.relays = append(p.relays, r)
	}
	if n.Publish != "" {
		t, err := parseSubjectTemplate(n.Publish)
		if err != nil {
			top("publish", "%v", err)
		}
		p.pubTmpl = t
	}
	if n.Request != "" && !subscribeSubject(n.Request) {
		top("request", "%q is not a valid NATS subject", n.Request)
	}
	if err := errs.Err(); err != nil {
		return nil, true, err
	}
	return p, true, nil
}

// Name returns "natsrelay".
func (p *Plugin) Name() string { return Name }

// Start connects to NATS and starts every relay, event publishing and the
// request subscription. It returns once they run; a NATS server that is
// down is retried in the background and reported by Ready.
func (p *Plugin) Start(ctx context.Context, env plugins.Env) error {
	if !p.started.CompareAndSwap(false, true) {
		return errStarted
	}
	p.env = env
	p.log = env.Logger
	if p.log == nil {
		p.log = slog.Default().With("plugin", Name)
	}
	p.met = newMetrics(env.Registerer)
	opts, err := Options(p.cfg)
	if err != nil {
		return err
	}
	opts = append(opts,
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil && !p.stopped.Load() {
				p.log.Warn("NATS connection lost", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { p.log.Info("NATS connection restored", "url", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			p.log.Warn("NATS error", "subject", subj, "err", err)
		}),
	)
	nc, err := nats.Connect(p.cfg.URL, opts...)
	if err != nil {
		return fmt.Errorf("natsrelay: connect: %w", err)
	}
	p.nc = nc
	// The plugin's goroutines live until Stop, not until ctx ends: ctx
	// only covers starting.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	for _, r := range p.relays {
		if r.stream == "" {
			sub, err := nc.Subscribe(r.cfg.Subject, r.onCore)
			if err != nil {
				p.abort()
				return fmt.Errorf("natsrelay: subscribe %s: %w", r.cfg.Subject, err)
			}
			p.subs = append(p.subs, sub)
			r.ready.Store(true)
			continue
		}
		p.loops.Add(1)
		go r.runJetStream(runCtx)
	}
	if p.pubTmpl != nil {
		p.events = make(chan plugins.Event, eventQueue)
		p.loops.Add(1)
		go p.publishEvents(runCtx)
		p.observing.Store(true)
	}
	if p.reqSubject != "" {
		sub, err := nc.QueueSubscribe(p.reqSubject, RequestQueue, p.onRequest)
		if err != nil {
			p.abort()
			return fmt.Errorf("natsrelay: subscribe %s: %w", p.reqSubject, err)
		}
		p.subs = append(p.subs, sub)
	}
	if nc.IsConnected() {
		// The server knows the subscriptions once the flush returns, so
		// that a message published after Start is not missed.
		_ = nc.FlushTimeout(2 * time.Second)
	}
	return nil
}

// abort undoes a failed Start.
func (p *Plugin) abort() {
	_ = p.Stop(context.Background())
}

// Stop stops receiving, waits (within ctx) for the messages in flight to be
// acked or nacked, then closes the connection. It is safe to call twice.
func (p *Plugin) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(ctx) })
	return p.stopErr
}

func (p *Plugin) stop(ctx context.Context) error {
	p.stopped.Store(true)
	if p.nc == nil {
		return nil
	}
	// Order matters: first no new deliveries (subscriptions, pull loops),
	// then the outcome of the sends already queued, so that their acks
	// still reach the server, then the connection.
	for _, s := range p.subs {
		_ = s.Unsubscribe()
	}
	p.cancel()
	var err error
	if !waitGroup(ctx, &p.loops) {
		err = fmt.Errorf("natsrelay: stop: %w", ctx.Err())
	} else if !waitGroup(ctx, &p.inflight) {
		err = fmt.Errorf("natsrelay: stop with messages in flight (they will be redelivered): %w", ctx.Err())
	}
	if sw := p.shared.Load(); sw != nil {
		sw.close()
	}
	_ = p.nc.FlushTimeout(time.Second)
	p.nc.Close()
	return err
}

// waitGroup waits for wg until ctx ends; it reports whether wg finished.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Ready reports whether NATS is connected and every JetStream consumer is
// set up.
func (p *Plugin) Ready() (bool, string) {
	if p.nc == nil || p.stopped.Load() {
		return false, "natsrelay: not running"
	}
	if !p.nc.IsConnected() {
		return false, "natsrelay: NATS not connected (" + p.nc.Status().String() + ")"
	}
	for _, r := range p.relays {
		if !r.ready.Load() {
			return false, "natsrelay: JetStream consumer for " + r.cfg.Subject + " not ready"
		}
	}
	return true, ""
}

// Publish sends data on subject over the plugin's NATS connection; a
// rule's publish action uses it.
func (p *Plugin) Publish(subject string, data []byte) error {
	if p.nc == nil || p.stopped.Load() {
		return plugins.ErrStopped
	}
	if !publishSubject(subject) {
		return fmt.Errorf("natsrelay: %q is not a subject to publish to", subject)
	}
	return p.nc.Publish(subject, data)
}

// mayPull reports whether the JetStream relays take messages now: always
// without [ha]; with it, while this instance has an XMPP session (leader
// or standby: the work is shared).
func (p *Plugin) mayPull() bool {
	if p.haBucket == "" {
		return true
	}
	return p.env.Host.Status().Connected
}

// openShared opens the shared seen-window once, with [ha].
func (p *Plugin) openShared(ctx context.Context) error {
	if p.haBucket == "" || p.shared.Load() != nil {
		return nil
	}
	p.sharedMu.Lock()
	defer p.sharedMu.Unlock()
	if p.shared.Load() != nil {
		return nil
	}
	js, err := jetstream.New(p.nc)
	if err != nil {
		return err
	}
	bucket := p.haBucket + SeenBucketSuffix
	sw, ttl, err := openSharedWindow(ctx, js, bucket, p.haReplicas)
	if err != nil {
		return err
	}
	if ttl == 0 {
		p.log.Warn("the shared seen-window's bucket has no TTL: its records are never removed", "bucket", bucket)
	}
	p.shared.Store(sw)
	p.log.Info("relay work and seen-window shared with the other [ha] instances", "bucket", bucket, "ttl", ttl)
	return nil
}

// isRoom reports whether to is a room: its bare JID is a [[rooms]] entry or
// listed in a relay's rooms, or its domain starts with "conference.".
func (p *Plugin) isRoom(to string) bool {
	j, err := jid.Parse(to)
	if err != nil {
		return false
	}
	if p.rooms[j.Bare().String()] {
		return true
	}
	return strings.HasPrefix(j.Domainpart(), "conference.")
}

// subjectToken is one token of a subject: no dot, blank or wildcard.
var subjectToken = regexp.MustCompile(`^[^.\s*>]+$`)

// publishSubject reports whether s is a subject one may publish to: dotted
// tokens without blanks or wildcards.
func publishSubject(s string) bool {
	if s == "" {
		return false
	}
	for t := range strings.SplitSeq(s, ".") {
		if !subjectToken.MatchString(t) {
			return false
		}
	}
	return true
}

// subscribeSubject reports whether s is a subject one may subscribe to:
// '*' may stand for a token and '>' for the last ones.
func subscribeSubject(s string) bool {
	if s == "" {
		return false
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "*" || (t == ">" && i == len(toks)-1) {
			continue
		}
		if !subjectToken.MatchString(t) {
			return false
		}
	}
	return true
}

// Interface guards.
var (
	_ plugins.Plugin  = (*Plugin)(nil)
	_ plugins.Starter = (*Plugin)(nil)
	_ plugins.Stopper = (*Plugin)(nil)
	_ plugins.Readier = (*Plugin)(nil)
	_ Publisher       = (*Plugin)(nil)
)

// Publisher is what the bot may look for, by type assertion, to carry out a
// rule's publish action.
type Publisher interface {
	Publish(subject string, data []byte) error
}
