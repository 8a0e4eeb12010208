package bot

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"mellium.im/xmpp/jid"

	"crier/bot/outbox"
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
	// msgErrLog is when a message error was last logged (Unix
	// nanoseconds), msgErrQuiet how many were not logged since.
	msgErrLog, msgErrQuiet atomic.Int64
	opts                   Options
	log                    *slog.Logger
	version                string
	jid                    jid.JID
	bare                   string // the bot's bare JID as a string, made once
	met                    *metrics
	out                    *outbox.Outbox
	rooms                  *rooms
	engine                 atomic.Pointer[rules.Engine]
	cron                   *rules.Scheduler
	cronMu                 sync.Mutex
	cfg                    atomic.Pointer[settings]
	tlsConf                *tls.Config

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
	roomMu sync.Mutex
	// lastErr is why the last connection attempt failed or the last
	// session ended, for /-/ready ("" while connected).
	lastErr atomic.Pointer[string]
	// ha is the leader election of [ha], while Run campaigns (nil
	// without [ha]).
	ha atomic.Pointer[haRun]
	// fencedLogged is the last term whose fencing refusal was logged.
	fencedLogged atomic.Uint64
	haNC         *nats.Conn // [ha]'s NATS connection (shared state and lease)
	// shared are the KV stores plugins share with other instances
	// (Host.SharedState), by bucket, on haNC or sharedNC (made from
	// [nats] for them); closed with the store.
	sharedMu  sync.Mutex
	shared    map[string]state.Store
	sharedNC  *nats.Conn
	cmdRooms  map[string]RoomConfig
	leftRooms map[string]bool

	reloadMu sync.Mutex
	idPrefix string
	idSeq    atomic.Uint64
	iqs      iqWaiters      // the bot's own iq requests waiting for answers
	comp     compState      // as a component: who wrote to which address (component.go)
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

	b.out = outbox.New(outbox.Config{
		Queue:     cfg.Limits.OutboxQueue,
		RoomQueue: cfg.Limits.RoomQueue,
		Rate:      perSecond(cfg.Limits.OutboxRate),
		RoomRate:  perSecond(cfg.Limits.RoomRate),
	}, outbox.Hooks{
		Dropped: func(reason string) {
			b.met.dropped.WithLabelValues(reason).Inc()
			b.log.Warn("outbox dropped a stanza", "reason", reason)
		},
		// A failed or hung write leaves the stream broken (a stanza or a TLS
		// record cut off): drop the connection so that the supervisor
		// reconnects, and the outbox writes the item again.
		Failed: func(err error) {
			b.log.Warn("write to the server failed; dropping the connection", "err", err)
			b.dropConn()
		},
		// [ha]: a message goes out only while this instance leads
		// (presence, such as leaving rooms, always; shared work to a
		// user, a relayed push, from a standby too).
		Allow: b.mayWrite,
		Stuck: func() {
			b.log.Warn("a write to the server hung; dropping the connection", "after", writeTimeout)
			b.dropConn()
		},
		RoomBounced: func(room string) { b.rooms.bounced(room) },
		Reattached: func(settled, resent, stale int) {
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
		b.closeStore()
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
	if !b.online.Load() || !b.leader() {
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

// nextID returns a fresh stanza id.
func (b *Bot) nextID() string {
	var buf [32]byte
	out := append(buf[:0], b.idPrefix...)
	out = append(out, '-')
	// An [ha] leader's ids carry its term's fencing token, for audit:
	// the server's logs then tell which term said what.
	if h := b.ha.Load(); h != nil {
		if token, ok := h.lease.Leading(); ok {
			out = append(out, 't')
			out = strconv.AppendUint(out, token, 10)
			out = append(out, '-')
		}
	}
	return string(strconv.AppendUint(out, b.idSeq.Add(1), 10))
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
		line := "session: not connected"
		if why := b.lastError(); why != "" {
			line += " (" + why + ")"
		}
		return false, append(append([]string{line}, b.haLines()...), lines...)
	}
	return all, append(append([]string{"session: bound"}, b.haLines()...), lines...)
}

// Config returns the configuration in force.
func (b *Bot) Config() *config.Config { return b.cfg.Load().cfg }
