package commands

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"crier/internal/state"
	"crier/plugins"
)

//go:embed sample.conf
var sampleConf string

// SampleConfig returns the documented sample of the [commands] table.
func SampleConfig() string { return sampleConf }

// Errors of the commands package.
var (
	// ErrNoHost is returned by Start when the Env has no Host.
	ErrNoHost = errors.New("commands: started without a host")

	// errNoName is the answer of plugins enable/disable without a name.
	errNoName = errors.New("name the plugin")
)

func init() {
	plugins.Register(plugins.Spec{
		Name:   "commands",
		Table:  "commands",
		Config: func() any { return defaultConfig() },
		New:    newPlugin,
		Schema: 1,
	})
}

func newPlugin(cfg any, core plugins.Core) (plugins.Plugin, bool, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, false, fmt.Errorf("commands: config is %T, not *commands.Config", cfg)
	}
	p := New(*c, core)
	return p, c.Enabled, nil
}

// Limits that are not configurable.
const (
	// runTimeout bounds one command's run.
	runTimeout = 30 * time.Second
	// maxRunning bounds commands running at once; more are refused busy.
	maxRunning = 64
	// maxLineBytesFactor times max_arg_bytes bounds the whole chat line,
	// whatever the arguments.
	maxLineBytesFactor = 8
	// auditKeep is how many audit records the store keeps.
	auditKeep = 1000
	// auditSubject is the NATS subject of audit events.
	auditSubject = "crier.audit"
)

// Plugin is the commands plugin: chat commands, XEP-0050 ad-hoc commands
// and help from one definition each.
type Plugin struct {
	cfg    Config
	core   plugins.Core
	admins map[string]bool
	now    func() time.Time
	m      *metrics
	// runTimeout bounds one command's run (tests shorten it).
	runTimeout time.Duration

	builtins []plugins.Command

	// Set by Start.
	log     *slog.Logger
	host    plugins.Host
	ns      state.Namespace // nil without a store
	ctx     context.Context
	cancel  context.CancelFunc
	started time.Time
	sem     chan struct{}
	wg      sync.WaitGroup
	// stopped makes Handle, Unhandled and the iq handler step aside once
	// Stop began (a reload's new instance already serves).
	stopped atomic.Bool

	limiter  *limiter
	confirms *confirms
	sessions *sessions
	hints    *hintGuard
	acl      *acl
	audit    *auditor

	nodesMu sync.Mutex
	nodes   map[string]bool // command nodes registered with HandleDisco
}

// New builds the plugin from its checked config.
func New(cfg Config, core plugins.Core) *Plugin {
	p := &Plugin{
		cfg:        cfg,
		core:       core,
		admins:     map[string]bool{},
		now:        time.Now,
		runTimeout: runTimeout,
		m:          newMetrics(),
		log:        slog.New(slog.DiscardHandler),
		sem:        make(chan struct{}, maxRunning),
		nodes:      map[string]bool{},
	}
	for _, a := range cfg.Admins {
		p.admins[a] = true
	}
	p.limiter = newLimiter(cfg.Rate, maxBuckets)
	p.confirms = newConfirms(maxPending)
	p.sessions = newSessions(maxSessions)
	p.hints = newHintGuard(maxBuckets)
	p.acl = newACL()
	p.audit = &auditor{p: p}
	p.builtins = p.builtinCommands()
	return p
}

// Name returns "commands".
func (p *Plugin) Name() string { return "commands" }

// Commands returns the built-in commands.
func (p *Plugin) Commands() []plugins.Command { return p.builtins }

// Start registers the metrics, loads the grants, and registers the
// XEP-0050 iq handler and disco nodes.
func (p *Plugin) Start(_ context.Context, env plugins.Env) error {
	if env.Logger != nil {
		p.log = env.Logger
	}
	if env.Host == nil {
		return ErrNoHost
	}
	if env.Registerer != nil {
		if err := p.m.register(env.Registerer); err != nil {
			return fmt.Errorf("commands: metrics: %w", err)
		}
	}
	p.host = env.Host
	p.started = p.now()
	p.ctx, p.cancel = context.WithCancel(context.Background())
	ns, err := env.Host.State()
	switch {
	case errors.Is(err, plugins.ErrNoStore):
		p.log.Info("no state store: acl grants and the audit trail are kept in memory only")
	case err != nil:
		return fmt.Errorf("commands: state: %w", err)
	default:
		p.ns = ns
		if err := p.acl.load(ns); err != nil {
			return fmt.Errorf("commands: loading acl grants: %w", err)
		}
	}
	env.Host.HandleIQ("set", cmdName, nsCommands, p.handleIQ)
	env.Host.HandleDisco(nsCommands, listNode{p}, nsCommands)
	p.registerNodes(p.commands())
	return nil
}

// Stop ends the sessions and waits (until ctx ends) for running commands.
func (p *Plugin) Stop(ctx context.Context) error {
	if p.cancel == nil {
		return nil
	}
	p.stopped.Store(true)
	p.cancel()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("commands: stopping: %w", ctx.Err())
	}
}

// commands returns every command: the built-ins, then the other
// plugins' (Host.Commands lists this plugin's too; a name is taken once).
func (p *Plugin) commands() []plugins.Command {
	var hc []plugins.Command
	if p.host != nil {
		hc = p.host.Commands()
	}
	out := make([]plugins.Command, 0, len(p.builtins)+len(hc))
	out = append(out, p.builtins...)
	for _, c := range hc {
		if c.Run != nil && p.builtin(c.Name) == nil && !hasCommand(out[len(p.builtins):], c.Name) {
			out = append(out, c)
		}
	}
	return out
}

func hasCommand(list []plugins.Command, name string) bool {
	for i := range list {
		if list[i].Name == name {
			return true
		}
	}
	return false
}

func (p *Plugin) builtin(name string) *plugins.Command {
	for i := range p.builtins {
		if p.builtins[i].Name == name {
			return &p.builtins[i]
		}
	}
	return nil
}

// lookup finds a command by name without building the whole list: the
// chain calls it for every message that starts with the prefix.
func (p *Plugin) lookup(name string) (plugins.Command, bool) {
	if c := p.builtin(name); c != nil {
		return *c, true
	}
	if p.host == nil {
		return plugins.Command{}, false
	}
	for _, c := range p.host.Commands() {
		if c.Name == name && c.Run != nil {
			return c, true
		}
	}
	return plugins.Command{}, false
}

// splitCommand cuts "!name rest" into name and rest; ok is false when body
// does not start with the prefix and a name.
func (p *Plugin) splitCommand(body string) (name, rest string, ok bool) {
	if !strings.HasPrefix(body, p.cfg.Prefix) {
		return "", "", false
	}
	s := body[len(p.cfg.Prefix):]
	i := strings.IndexAny(s, " \t\n\r")
	if i < 0 {
		name = s
	} else {
		name, rest = s[:i], s[i+1:]
	}
	if name == "" {
		return "", "", false
	}
	return name, rest, true
}

// fromBot reports whether an event is the bot's own message or not a
// message a person typed to it (headline, error).
func (p *Plugin) fromBot(ev *plugins.Event) bool {
	switch ev.Type {
	case "headline", "error":
		return true
	}
	if ev.Room != "" && ev.Nick != "" && ev.Nick == ev.BotNick {
		return true
	}
	if p.core.BotJID != "" && (ev.RealJID == p.core.BotJID || bareOf(ev.From) == p.core.BotJID) {
		return true
	}
	return false
}

// Handle runs a message that names a known command (on a goroutine of its
// own) and stops the chain; anything else continues.
func (p *Plugin) Handle(_ context.Context, ev *plugins.Event) plugins.Verdict {
	if ev.Kind != plugins.EventMessage || p.host == nil || p.stopped.Load() {
		return plugins.Continue
	}
	name, rest, ok := p.splitCommand(ev.Body)
	if !ok || p.fromBot(ev) {
		return plugins.Continue
	}
	if name == confirmWord {
		p.chatConfirm(ev)
		return plugins.Stop
	}
	cmd, ok := p.lookup(name)
	if !ok {
		return plugins.Continue
	}
	p.chatCommand(ev, cmd, rest)
	return plugins.Stop
}

// Unhandled answers an unknown command with one short hint, at most once
// per window per sender and place, never to another bot.
func (p *Plugin) Unhandled(_ context.Context, ev *plugins.Event) {
	if !p.cfg.UnknownReply || ev.Kind != plugins.EventMessage || p.host == nil || p.stopped.Load() {
		return
	}
	name, _, ok := p.splitCommand(ev.Body)
	if !ok || p.fromBot(ev) || !looksLikeCommand(name) || looksLikeHint(ev.Body) {
		return
	}
	who := p.chatWho(ev)
	p.m.rejected.WithLabelValues(reasonUnknown).Inc()
	if !p.hints.allow(who.key()+"\x00"+who.place(), p.now(), hintWindow) {
		return
	}
	if ok, _ := p.rateAllow(who); !ok {
		return
	}
	line := fmt.Sprintf("unknown command %q — try %shelp", clip(p.cfg.Prefix+name, 40), p.cfg.Prefix)
	if m := p.closest(name, who); m != "" {
		line = fmt.Sprintf("unknown command %q — did you mean %s%s? (%shelp lists them)", clip(p.cfg.Prefix+name, 40), p.cfg.Prefix, m, p.cfg.Prefix)
	}
	p.reply(ev, line)
}

// Compile-time guards.
var (
	_ plugins.Plugin    = (*Plugin)(nil)
	_ plugins.Link      = (*Plugin)(nil)
	_ plugins.Fallback  = (*Plugin)(nil)
	_ plugins.Starter   = (*Plugin)(nil)
	_ plugins.Stopper   = (*Plugin)(nil)
	_ plugins.Commander = (*Plugin)(nil)
	_ plugins.Checked   = (*Config)(nil)
)

// metrics are the plugin's Prometheus series.
type metrics struct {
	total    *prometheus.CounterVec
	rejected *prometheus.CounterVec
}

// Results and reasons, the label values of the metrics.
const (
	resultOK       = "ok"
	resultError    = "error"
	resultRefused  = "refused"
	resultPending  = "pending"
	resultCanceled = "canceled"
	resultPanic    = "panic"
	resultTimeout  = "timeout"

	reasonUnknown     = "unknown"
	reasonForbidden   = "forbidden"
	reasonRateLimited = "rate_limited"
	reasonBadArgs     = "bad_args"
	reasonTooBig      = "too_big"
	reasonPanic       = "panic"
	reasonTimeout     = "timeout"
	reasonBusy        = "busy"
	reasonBadSession  = "bad_session"
	reasonExpired     = "expired"
	reasonBadForm     = "bad_form"
	reasonBadAction   = "bad_action"
	reasonNotFound    = "not_found"
	reasonNoPending   = "no_pending"
)

func newMetrics() *metrics {
	return &metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_commands_total",
			Help: "Commands run, by command, surface (chat, adhoc) and result.",
		}, []string{"command", "surface", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_commands_rejected_total",
			Help: "Command requests refused before or while running, by reason.",
		}, []string{"reason"}),
	}
}

// register registers the series; a reload's new plugin takes over the
// running one's.
func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []**prometheus.CounterVec{&m.total, &m.rejected} {
		if err := r.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return err
			}
			*c = existing
		}
	}
	return nil
}

func surfaceName(s plugins.Surface) string {
	if s == plugins.SurfaceAdHoc {
		return "adhoc"
	}
	return "chat"
}
