package bot

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/prometheus/client_golang/prometheus"

	"crier/internal/config"
	"crier/internal/state"
	"crier/plugins"
	"crier/rules"
	"crier/transport"
)

// Errors of the bot package.
var (
	ErrReloadRefused = errors.New("bot: reload refused")
	ErrNotModerator  = errors.New("bot: not a moderator in the room")
)

// Options are the knobs a caller (the command line, a test) may turn; the
// zero value is right for production.
type Options struct {
	Logger  *slog.Logger
	Version string
	// RootCAs, when set, is trusted in addition to config's ca_file (the
	// embedded server's certificate in demo mode).
	RootCAs *x509.CertPool
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 500ms
	// and 60s); the first retry comes after about MinBackoff.
	MinBackoff, MaxBackoff time.Duration
	// SelfPing is the interval of XEP-0410 self-pings to each room
	// (default 5m; negative disables).
	SelfPing time.Duration
	// JoinTimeout is how long a room join may go unanswered (default 30s).
	JoinTimeout time.Duration
}

// settings is what the bot derives from a config; it is swapped whole on a
// reload.
type settings struct {
	cfg           *config.Config
	subscriptions string
	maxBody       int
	chain         []string // the chain's links, rules left out
}

// Bot is the daemon: one XMPP identity, its rooms, its rules.
type Bot struct {
	opts    Options
	log     *slog.Logger
	version string
	jid     jid.JID
	bare    string // the bot's bare JID as a string, made once
	met     *metrics
	out     *Outbox
	rooms   *rooms
	engine  atomic.Pointer[rules.Engine]
	cron    *rules.Scheduler
	cronMu  sync.Mutex
	cfg     atomic.Pointer[settings]
	tlsConf *tls.Config

	connMu sync.Mutex
	conn   *transport.Conn
	// resume is the stream-managed session lost last, to be resumed by
	// the next connect (XEP-0198); only the Run goroutine uses it.
	resume *transport.Resume

	plugins *pluginSet
	hm      *hostMetrics
	chain   *chain
	iqr     *iqRouter
	// store is the state store ([bot] state_dir, or in memory); core is
	// the bot's own namespace in it (rooms joined by command).
	store  state.Store
	core   state.Namespace
	doneMu sync.Mutex
	// pluginsStop makes stopping plugins happen once: at the start of a
	// graceful shutdown (no new triggers) or when Run returns.
	pluginsStop sync.Once
	// pending are the plugins built by New, started by Run.
	pending []*runningPlugin
	// started is when New ran; connSince when the session came up.
	started   time.Time
	connSince time.Time
	// cmdRooms are the rooms joined by command (kept in the store), and
	// leftRooms configured rooms left by command until the next restart.
	roomMu    sync.Mutex
	cmdRooms  map[string]RoomConfig
	leftRooms map[string]bool

	reloadMu sync.Mutex
	idPrefix string
	idSeq    atomic.Uint64
	iqs      iqWaiters      // the bot's own iq requests waiting for answers
	lastIn   atomic.Int64   // when an element last came in (Unix nanoseconds)
	online   atomic.Bool    // a session is up (guarded for the scheduler by cronMu)
	wg       sync.WaitGroup // goroutines of the current session
}

// New checks cfg and builds a bot; nothing is started yet.
func New(cfg *config.Config, opts Options) (*Bot, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 60 * time.Second
	}
	if opts.SelfPing == 0 {
		opts.SelfPing = 5 * time.Minute
	}
	if opts.Version == "" {
		opts.Version = "devel"
	}
	b := &Bot{opts: opts, log: opts.Logger, version: opts.Version, jid: cfg.XMPP.Addr(), started: time.Now(),
		iqr: newIQRouter(), cmdRooms: map[string]RoomConfig{}, leftRooms: map[string]bool{}}
	b.plugins = &pluginSet{b: b}
	b.chain = newChain(b)
	b.bare = b.jid.Bare().String()
	var p [4]byte
	_, _ = rand.Read(p[:])
	b.idPrefix = hex.EncodeToString(p[:])

	tc, err := tlsConfig(cfg, opts.RootCAs)
	if err != nil {
		return nil, err
	}
	b.tlsConf = tc

	b.out = newOutbox(outboxConfig{
		Queue:     cfg.Limits.OutboxQueue,
		RoomQueue: cfg.Limits.RoomQueue,
		Rate:      perSecond(cfg.Limits.OutboxRate),
		RoomRate:  perSecond(cfg.Limits.RoomRate),
	}, outboxHooks{
		dropped: func(reason string) {
			b.met.dropped.WithLabelValues(reason).Inc()
			b.log.Warn("outbox dropped a stanza", "reason", reason)
		},
		// A failed or hung write leaves the stream broken (a stanza or a TLS
		// record cut off): drop the connection so that the supervisor
		// reconnects, and the outbox writes the item again.
		failed: func(err error) {
			b.log.Warn("write to the server failed; dropping the connection", "err", err)
			b.dropConn()
		},
		stuck: func() {
			b.log.Warn("a write to the server hung; dropping the connection", "after", writeTimeout)
			b.dropConn()
		},
		reattached: func(settled, resent, stale int) {
			b.met.unacked.WithLabelValues("confirmed").Add(float64(settled))
			b.met.unacked.WithLabelValues("sent_again").Add(float64(resent))
			b.met.unacked.WithLabelValues("dropped_stale").Add(float64(stale))
			if settled+resent+stale > 0 {
				b.log.Info("stanzas of the previous connection not acknowledged before it was lost",
					"confirmed_by_server", settled, "sent_again", resent, "dropped_stale", stale)
			}
		},
	})
	b.met = newMetrics(func() float64 { return float64(b.out.Depth()) }, func() rules.Stats {
		if e := b.engine.Load(); e != nil {
			return e.Stats()
		}
		return rules.Stats{}
	})
	b.hm = newHostMetrics(b.met.reg)
	b.met.gather = prometheus.Gatherers{b.met.gather, b.plugins}
	b.rooms = newRooms(b.out, b.log.With("component", "rooms"), b.met, b.backoff)
	if opts.JoinTimeout > 0 {
		b.rooms.joinTTL = opts.JoinTimeout
	}
	b.rooms.event = b.occupantEvent

	eng, jobs, err := b.compile(cfg)
	if err != nil {
		return nil, err
	}
	if err := b.openStore(cfg); err != nil {
		return nil, err
	}
	b.engine.Store(eng)
	b.cron = b.newScheduler(cfg, jobs)
	b.cfg.Store(newSettings(cfg))
	b.rooms.Set(b.wantedRooms(cfg))
	if b.pending, err = b.plugins.build(cfg); err != nil {
		_ = b.store.Close()
		return nil, err
	}
	return b, nil
}

func newSettings(cfg *config.Config) *settings {
	return &settings{cfg: cfg, subscriptions: cfg.XMPP.Subscriptions, maxBody: cfg.Limits.MaxBodyBytes, chain: chainNames(cfg)}
}

func perSecond(r rules.Rate) rate.Limit {
	if r.IsZero() {
		return 0
	}
	return rate.Limit(float64(r.N) / r.Per.Seconds())
}

// roomJIDs lists the configured rooms' bare JIDs: a rule or cron job that
// sends to one of them sends groupchat.
func roomJIDs(cfg *config.Config) []string {
	out := make([]string, 0, len(cfg.Rooms))
	for _, r := range cfg.Rooms {
		out = append(out, r.Addr().Bare().String())
	}
	return out
}

// newScheduler builds the cron scheduler. It starts in the session's
// state: runs that fall while the bot is disconnected are skipped (or run
// once on reconnect, per job), also before the first connection and after a
// reload.
func (b *Bot) newScheduler(cfg *config.Config, jobs []*rules.CronJob) *rules.Scheduler {
	s := rules.NewScheduler(jobs, b.cronAction, rules.WithRooms(roomJIDs(cfg)...), rules.WithLogger(b.log.With("component", "cron")),
		rules.WithHistory(cronHistory{b}))
	if !b.online.Load() {
		s.Disconnected()
	}
	return s
}

func roomConfigs(cfg *config.Config) []RoomConfig {
	out := make([]RoomConfig, 0, len(cfg.Rooms))
	for _, r := range cfg.Rooms {
		out = append(out, RoomConfig{JID: r.Addr().Bare().String(), Nick: r.Nick, Password: r.Password.Reveal()})
	}
	return out
}

// compile builds the rule engine and cron jobs of cfg.
func (b *Bot) compile(cfg *config.Config) (*rules.Engine, []*rules.CronJob, error) {
	eng, errs := rules.Compile(cfg.Rules, rules.Options{SenderLimit: cfg.Limits.SenderReplies, Rooms: roomJIDs(cfg), Logger: b.log.With("component", "rules")})
	jobs, cerrs := rules.CompileCron(cfg.Cron)
	errs.Merge(cerrs)
	if err := errs.Err(); err != nil {
		return nil, nil, err
	}
	return eng, jobs, nil
}

func tlsConfig(cfg *config.Config, extra *x509.CertPool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.XMPP.InsecureSkipVerify}
	if cfg.XMPP.CAFile == "" && extra == nil {
		return tc, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if extra != nil {
		pool = extra.Clone()
	}
	if cfg.XMPP.CAFile != "" {
		pem, err := os.ReadFile(cfg.XMPP.CAFile)
		if err != nil {
			return nil, fmt.Errorf("bot: ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("bot: ca_file %s: no PEM certificate in it", cfg.XMPP.CAFile)
		}
	}
	tc.RootCAs = pool
	return tc, nil
}

// backoff returns the delay before retry number try (0-based): exponential
// from MinBackoff, capped at MaxBackoff, with full jitter in the upper half
// so that many bots restarted together do not reconnect in lockstep.
func (b *Bot) backoff(try int) time.Duration {
	d := float64(b.opts.MinBackoff) * math.Pow(2, float64(min(try, 30)))
	d = min(d, float64(b.opts.MaxBackoff))
	return time.Duration(d/2 + mrand.Float64()*d/2)
}

// Run connects and keeps the bot connected until ctx ends, then shuts down
// gracefully: no new triggers, the outbox flushed, rooms left with
// unavailable presence, the stream closed. It returns nil after a graceful
// shutdown.
func (b *Bot) Run(ctx context.Context) error {
	if b.cfg.Load().cfg.XMPP.InsecureSkipVerify {
		b.log.Warn("TLS certificate verification is OFF (insecure_skip_verify = true)")
	}
	if !b.cfg.Load().cfg.XMPP.StreamManagement {
		b.log.Info("stream management is off (stream_management = false): deliveries are confirmed by pings, a lost connection is never resumed")
	}
	outCtx, stopOut := context.WithCancel(context.Background())
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		b.out.Run(outCtx)
	}()
	defer func() {
		stopOut()
		<-outDone
	}()
	defer b.closeStore()
	chainCtx, stopChain := context.WithCancel(context.Background())
	chainDone := make(chan struct{})
	go func() {
		defer close(chainDone)
		b.chain.run(chainCtx)
	}()
	defer func() {
		stopChain()
		<-chainDone
		b.chain.wait()
	}()
	if err := b.plugins.startAll(ctx, b.pending); err != nil {
		return fmt.Errorf("bot: %w", err)
	}
	b.pending = nil
	defer b.stopPlugins()
	b.cronMu.Lock()
	b.cron.Start()
	b.cronMu.Unlock()
	defer func() {
		b.cronMu.Lock()
		b.cron.Stop()
		b.cronMu.Unlock()
	}()

	try := 0
	for ctx.Err() == nil {
		up, err := b.session(ctx)
		if ctx.Err() != nil {
			break
		}
		reason := transport.Reason(err)
		b.met.reconnects.WithLabelValues(reason).Inc()
		if up > 30*time.Second {
			try = 0
		}
		d := b.backoff(try)
		try++
		if up > 0 {
			b.log.Warn("session lost; reconnecting", "reason", reason, "err", err, "in", d.Round(time.Millisecond))
		} else {
			b.log.Error("cannot connect; retrying", "reason", reason, "err", err, "in", d.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	return nil
}

// session runs one connection from dial to its end. It returns how long the
// session was up (0 when it never came up) and why it ended.
func (b *Bot) session(ctx context.Context) (time.Duration, error) {
	st := b.cfg.Load()
	x := st.cfg.XMPP
	prev := b.resume
	b.resume = nil
	conn, err := transport.Connect(ctx, transport.Options{
		JID:       b.jid,
		Password:  x.Password.Reveal(),
		Resource:  x.Resource,
		Transport: x.Transport,
		Address:   x.Address,
		TLS:       x.TLS,
		BOSHURL:   x.BOSHURL,
		TLSConfig: b.tlsConf,
		Timeout:   x.ConnectTimeout.Std(),
		Resume:    prev,
		DisableSM: !x.StreamManagement,
		Tap:       transport.TapFunc(b.tap),
		Logger:    b.log.With("component", "transport"),
	})
	if err != nil {
		if prev != nil && !prev.Expired(time.Now()) {
			b.resume = prev // the session may still be waiting on the server
		}
		return 0, err
	}
	started := time.Now()
	resumed := conn.Resumed()
	b.log.Info("connected", "jid", conn.JID.String(), "transport", conn.Transport, "server", conn.Server, "sasl", conn.Mechanism, "resumed", resumed)
	b.met.connects.Inc()
	if resumed {
		b.met.resumed.Inc()
	}
	b.met.connected.Set(1)
	b.connMu.Lock()
	b.conn = conn
	b.connSince = started
	b.connMu.Unlock()

	h := b.newHandler(conn.JID)
	serveErr := make(chan error, 1)
	go func() { serveErr <- conn.Session.Serve(h) }()

	// The session's context ends with the session, not with ctx: a graceful
	// stop still needs acknowledgements while it flushes the outbox.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	acked, ackKnown := conn.ResumeAcked()
	b.out.attach(connSender{sessionWriter{conn.Session}, conn}, b.barrier(sctx, conn), resumeInfo{resumed: resumed, acked: acked, known: ackKnown})
	if resumed {
		// The server kept the session: presence and rooms are as they
		// were, and it resends what this side had not received.
		b.rooms.Resume()
	} else {
		_ = b.out.Enqueue(&Item{Kind: "presence", Priority: High})
		b.rooms.Online()
	}
	b.cronMu.Lock()
	b.online.Store(true)
	b.cron.Reconnected()
	b.cronMu.Unlock()
	b.wg.Add(2)
	go b.keepalive(sctx, conn, x.Keepalive.Std(), x.KeepaliveTimeout.Std())
	go b.selfPing(sctx, conn)

	select {
	case err = <-serveErr:
		if err == nil {
			err = errors.New("bot: server closed the stream")
		}
	case <-ctx.Done():
		b.shutdownSession(conn)
		select {
		case <-serveErr:
		case <-time.After(3 * time.Second):
		}
	}
	cancel()
	b.out.Attach(nil, nil)
	if ctx.Err() == nil && conn.ResumeState() != nil {
		// Resumable: close the socket first (no </stream:stream>, which
		// would end the session on the server), so that no write still
		// under way moves the counts after they are taken.
		conn.Abort()
		b.resume = conn.ResumeState()
	}
	if b.resume != nil {
		b.rooms.Suspend() // until the session is resumed, or not
	} else {
		b.rooms.Offline()
	}
	b.cronMu.Lock()
	b.online.Store(false)
	b.cron.Disconnected()
	b.cronMu.Unlock()
	if b.resume != nil {
		conn.Abort() // no </stream:stream>: that would end the session on the server
	} else {
		_ = conn.Close()
	}
	b.wg.Wait()
	b.connMu.Lock()
	b.conn = nil
	b.connMu.Unlock()
	b.met.connected.Set(0)
	return time.Since(started), err
}

func (b *Bot) barrier(sctx context.Context, conn *transport.Conn) acker {
	domain := b.jid.Domain()
	return func() error {
		ctx, cancel := context.WithTimeout(sctx, time.Minute)
		defer cancel()
		// With stream management (XEP-0198) the barrier is <r/> and the
		// server's <a h="N"/>; transport.ErrNoSM means the server does not
		// offer it (or has not enabled it), and the ping below stands in.
		err := conn.Barrier(ctx)
		if !errors.Is(err, transport.ErrNoSM) {
			return err
		}
		err = b.ping(ctx, conn, domain)
		var se stanza.Error
		if err != nil && !errors.As(err, &se) {
			return err
		}
		return nil
	}
}

// shutdownSession is the lame-duck part of a graceful stop.
func (b *Bot) shutdownSession(conn *transport.Conn) {
	b.stopPlugins()
	b.cronMu.Lock()
	b.cron.Stop()
	b.cronMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := b.out.Flush(ctx); err != nil {
		b.log.Warn("outbox not empty at shutdown", "waiting", b.out.Depth())
	}
	b.rooms.LeaveAll()
	_ = b.out.Enqueue(&Item{Kind: "presence", Type: "unavailable", Priority: High})
	_ = b.out.Flush(ctx)
	b.log.Info("left rooms, closing the stream")
	_ = conn.Close()
}

// keepalive pings the server. A server is taken for deaf, and the
// connection dropped, when a ping goes unanswered for the timeout while
// nothing else shows life: no element came in and the outbox wrote nothing.
// A shaping server that reads slowly keeps taking stanzas from the outbox,
// so its late answer to a ping (queued behind them) is waited for, up to
// ten times the timeout.
func (b *Bot) keepalive(ctx context.Context, conn *transport.Conn, every, timeout time.Duration) {
	defer b.wg.Done()
	if every <= 0 {
		return
	}
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !b.pingAlive(ctx, conn, timeout) {
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("server did not answer a ping and showed no other sign of life; dropping the connection", "timeout", timeout)
			if c := conn.Session.Conn(); c != nil {
				_ = c.Close()
			}
			return
		}
	}
}

// pingAlive sends one ping and reports whether the server is alive.
func (b *Bot) pingAlive(ctx context.Context, conn *transport.Conn, timeout time.Duration) bool {
	pctx, cancel := context.WithTimeout(ctx, 10*timeout)
	defer cancel()
	done := make(chan error, 1)
	sent := time.Now()
	go func() { done <- b.ping(pctx, conn, b.jid.Domain()) }()
	check := time.NewTicker(max(timeout/4, time.Millisecond))
	defer check.Stop()
	for {
		select {
		case err := <-done:
			var se stanza.Error
			return err == nil || errors.As(err, &se) // an error answer is an answer
		case <-check.C:
			last := max(b.lastIn.Load(), b.out.lastWrite.Load())
			if time.Since(sent) > timeout && time.Since(time.Unix(0, last)) > timeout {
				cancel()
				<-done
				return false
			}
		}
	}
}

// selfPing checks every joined room with an XEP-0410 self-ping.
func (b *Bot) selfPing(ctx context.Context, conn *transport.Conn) {
	defer b.wg.Done()
	if b.opts.SelfPing < 0 {
		return
	}
	t := time.NewTicker(b.opts.SelfPing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, tg := range b.rooms.joinedTargets() {
			to, err := jid.Parse(tg.occupant)
			if err != nil {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = b.ping(pctx, conn, to)
			cancel()
			if ctx.Err() != nil {
				return
			}
			var se stanza.Error
			switch {
			case err == nil:
			case errors.As(err, &se):
				switch se.Condition {
				case stanza.ServiceUnavailable, stanza.FeatureNotImplemented:
					// joined; the ping was answered by a client that lacks it
				case stanza.RemoteServerNotFound, stanza.RemoteServerTimeout:
					// indeterminate
				default:
					b.rooms.selfPingResult(tg.room, tg.gen, false, string(se.Condition))
				}
			}
		}
	}
}

// tap counts every top-level element on the stream.
func (b *Bot) tap(dir transport.Direction, name xml.Name, raw []byte) {
	if dir == transport.In {
		b.lastIn.Store(time.Now().UnixNano())
	}
	b.met.countStanza(dir == transport.Out, name.Local)
}

// nextID returns a fresh stanza id.
func (b *Bot) nextID() string {
	var buf [32]byte
	out := append(buf[:0], b.idPrefix...)
	out = append(out, '-')
	return string(strconv.AppendUint(out, b.idSeq.Add(1), 10))
}

func (b *Bot) baseMessage() rules.Message {
	return rules.Message{Kind: "message", BotJID: b.bare}
}

// cronAction carries out an action of a cron job.
func (b *Bot) cronAction(a rules.Action) {
	b.met.ruleHits.WithLabelValues(a.Rule).Inc()
	b.do(a)
}

// do carries out one action.
func (b *Bot) do(a rules.Action) {
	switch a.Kind {
	case rules.ActReply, rules.ActSend, rules.ActHeadline:
		b.sendText(a.To, a.Type, a.Text, a.Subject)
	case rules.ActSubject:
		room := firstNonEmpty(a.Room, a.To)
		_ = b.out.Enqueue(&Item{Kind: "message", To: room, Type: "groupchat", Subject: cleanText(firstNonEmpty(a.Subject, a.Text)), ID: b.nextID(), Room: room})
	case rules.ActKick, rules.ActBan, rules.ActVoice, rules.ActDevoice:
		b.moderate(a)
	case rules.ActInvite:
		room := a.Room
		invitee, reason := a.To, cleanText(a.Text)
		_ = b.out.Enqueue(&Item{Kind: "message", To: room, ID: b.nextID(), Payload: func() xml.TokenReader {
			var inner xml.TokenReader
			if reason != "" {
				inner = textElem("reason", reason)
			}
			inv := xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Local: "invite"}, Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: invitee}}})
			return xmlstream.Wrap(inv, xml.StartElement{Name: xml.Name{Space: nsMUCUser, Local: "x"}})
		}})
	case rules.ActPublish:
		b.publish(a)
	case rules.ActLog:
		b.log.Info("rule", "rule", a.Rule, "text", a.Text)
	default:
		b.log.Warn("unknown action", "rule", a.Rule, "kind", a.Kind)
	}
}

// publish hands a rule's payload to the first plugin that publishes.
func (b *Bot) publish(a rules.Action) {
	for _, rp := range b.plugins.active() {
		if pub, ok := rp.p.(plugins.Publisher); ok {
			if err := pub.Publish(a.To, []byte(a.Text)); err != nil {
				b.log.Warn("publish failed", "rule", a.Rule, "subject", a.To, "err", err)
			}
			return
		}
	}
	b.log.Warn("rule wants to publish, but no plugin publishes (configure [nats])", "rule", a.Rule, "subject", a.To)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// sendText queues a message, split under the body byte limit.
func (b *Bot) sendText(to, typ, text, subject string) {
	if to == "" {
		return
	}
	text = cleanText(text)
	room := ""
	if typ == "groupchat" {
		if j, err := jid.Parse(to); err == nil {
			room = j.Bare().String()
		}
	}
	parts := splitBody(text, b.cfg.Load().maxBody)
	for i, p := range parts {
		it := &Item{Kind: "message", To: to, Type: typ, Body: p, ID: b.nextID(), Room: room}
		if i == 0 {
			it.Subject = cleanText(subject)
		}
		if err := b.out.Enqueue(it); err != nil {
			return // counted by the outbox
		}
	}
}

// moderate sends a muc#admin request for kick, ban, voice or devoice. It
// needs the right role; without it the action is refused with a clear log.
func (b *Bot) moderate(a rules.Action) {
	room := firstNonEmpty(a.Room, a.To)
	role, aff, joined := b.rooms.selfRole(room)
	if !joined || !a.Permitted(role, aff) {
		b.log.Warn("rule action refused: the bot lacks the rights in the room", "rule", a.Rule, "action", a.Kind, "room", room, "role", role, "affiliation", aff, "err", ErrNotModerator)
		b.met.rejected.WithLabelValues("not_moderator").Inc()
		return
	}
	attr := xml.Attr{Name: xml.Name{Local: "role"}}
	switch a.Kind {
	case rules.ActKick:
		attr.Value = "none"
	case rules.ActVoice:
		attr.Value = "participant"
	case rules.ActDevoice:
		attr.Value = "visitor"
	case rules.ActBan:
		attr = xml.Attr{Name: xml.Name{Local: "affiliation"}, Value: "outcast"}
	}
	itemAttrs := []xml.Attr{attr}
	if a.Kind == rules.ActBan {
		occ, ok := b.rooms.occupantOf(room, a.Nick)
		if !ok || occ.realJID == "" {
			b.log.Warn("cannot ban: the occupant's real JID is not known", "rule", a.Rule, "room", room, "nick", a.Nick)
			return
		}
		itemAttrs = append(itemAttrs, xml.Attr{Name: xml.Name{Local: "jid"}, Value: occ.realJID})
	} else {
		itemAttrs = append(itemAttrs, xml.Attr{Name: xml.Name{Local: "nick"}, Value: a.Nick})
	}
	reason := cleanText(a.Text)
	to, err := jid.Parse(room)
	if err != nil {
		return
	}
	b.connMu.Lock()
	conn := b.conn
	b.connMu.Unlock()
	if conn == nil {
		return
	}
	var inner xml.TokenReader
	if reason != "" {
		inner = textElem("reason", reason)
	}
	payload := xmlstream.Wrap(
		xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Local: "item"}, Attr: itemAttrs}),
		xml.StartElement{Name: xml.Name{Space: nsMUCAdmin, Local: "query"}},
	)
	// sendIQ waits for the answer, which the session's reader delivers: it
	// must not run on the handler goroutine.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := b.sendIQ(ctx, conn, to, stanza.SetIQ, payload)
		if err != nil {
			b.log.Warn("moderation request failed", "rule", a.Rule, "action", a.Kind, "room", room, "nick", a.Nick, "err", err)
			return
		}
		b.log.Info("moderation done", "rule", a.Rule, "action", a.Kind, "room", room, "nick", a.Nick)
	}()
}

// dropConn closes the current connection's socket; the session's reader
// then ends and the supervisor reconnects.
func (b *Bot) dropConn() {
	b.connMu.Lock()
	conn := b.conn
	b.connMu.Unlock()
	if conn != nil {
		if c := conn.Session.Conn(); c != nil {
			_ = c.Close()
		}
	}
}

// Ready reports whether the session is bound, every room joined and every
// plugin that reports readiness ready, with a line for each.
func (b *Bot) Ready() (bool, []string) {
	b.connMu.Lock()
	up := b.conn != nil
	b.connMu.Unlock()
	all, lines := b.rooms.status()
	for _, rp := range b.plugins.all() {
		if f := rp.failure(); f != "" {
			lines = append(lines, fmt.Sprintf("plugin %s: failed (%s), disabled", rp.name, f))
			continue
		}
		if r, ok := rp.p.(plugins.Readier); ok && !rp.off.Load() {
			ready, why := r.Ready()
			state := "ready"
			if !ready {
				all, state = false, "not ready"
			}
			if why != "" {
				state += " (" + why + ")"
			}
			lines = append(lines, fmt.Sprintf("plugin %s: %s", rp.name, state))
		}
	}
	if !up {
		return false, append([]string{"session: not connected"}, lines...)
	}
	return all, append([]string{"session: bound"}, lines...)
}

// Reload applies cfg to the running bot: rooms joined or left by the
// difference, rules and cron jobs swapped atomically. A change that needs a
// restart, or a config whose rules do not compile, is refused and the old
// configuration keeps running.
func (b *Bot) Reload(cfg *config.Config) error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	old := b.cfg.Load().cfg
	if err := config.Diff(old, cfg); err != nil {
		b.reloadFailed(err)
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	eng, jobs, err := b.compile(cfg)
	if err != nil {
		b.reloadFailed(err)
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	swapped, err := b.plugins.reload(ctx, cfg)
	if err != nil {
		b.reloadFailed(err)
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	eng.Adopt(b.engine.Load())
	b.engine.Store(eng)
	b.cronMu.Lock()
	b.cron.Stop()
	b.cron = b.newScheduler(cfg, jobs)
	b.cron.Start()
	b.cronMu.Unlock()
	b.cfg.Store(newSettings(cfg))
	b.rooms.Set(b.wantedRooms(cfg))
	b.met.reloads.WithLabelValues("ok").Inc()
	b.met.reloadFailed.Set(0)
	b.log.Info("configuration reloaded", "rules", eng.Len(), "rooms", len(cfg.Rooms), "cron", len(jobs), "plugins_restarted", swapped)
	return nil
}

func (b *Bot) reloadFailed(err error) {
	b.met.reloads.WithLabelValues("refused").Inc()
	b.met.reloadFailed.Set(1)
	b.log.Error("reload refused; the old configuration keeps running", "err", err)
}

// ReloadFile loads the config at path and reloads it.
func (b *Bot) ReloadFile(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		b.reloadFailed(err)
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	return b.Reload(cfg)
}

// Config returns the configuration in force.
func (b *Bot) Config() *config.Config { return b.cfg.Load().cfg }
