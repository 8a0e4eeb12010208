package webhooks

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"

	"crier/internal/diag"
	"crier/internal/state"
	"crier/plugins"
)

// Name is the plugin's name.
const Name = "webhooks"

// Schema is the version of the plugin's state namespace.
const Schema = 1

// SampleConfig is the plugin's annotated sample configuration.
//
//go:embed sample.conf
var SampleConfig string

// Errors of this package.
var (
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("webhooks: already started")
	// ErrNoAlertmanager is returned by the silence commands when no
	// webhook has an alertmanager_url.
	ErrNoAlertmanager = errors.New("webhooks: no alertmanager_url configured")
	// ErrAlertmanager wraps an error answer of Alertmanager's API.
	ErrAlertmanager = errors.New("webhooks: Alertmanager refused")
	// ErrBadMatchers is returned for silence matchers that do not parse.
	ErrBadMatchers = errors.New("webhooks: bad matchers")
	// errBadBody is wrapped by every error that makes a request 400.
	errBadBody = errors.New("bad body")
)

// maxRequests bounds the requests served at once by the plugin; more get
// 503 at once, so that a flood of POSTs cannot pile up goroutines.
const maxRequests = 512

// maxTargets is how many recipients' senders are kept before the idle ones
// are forgotten.
const maxTargets = 1024

func init() {
	plugins.Register(plugins.Spec{
		Name:   Name,
		Table:  "webhooks",
		Schema: Schema,
		Config: func() any { return &Config{} },
		New: func(cfg any, core plugins.Core) (plugins.Plugin, bool, error) {
			return New(*cfg.(*Config), core)
		},
	})
}

// Plugin serves the webhooks. Build it with New.
type Plugin struct {
	hooks []*hook
	// routes are the paths served on the bot's [http] listener; listen
	// groups the others by their own listener's address.
	routes map[string]http.Handler
	listen map[string]*http.ServeMux

	env    plugins.Env
	host   plugins.Host
	log    *slog.Logger
	met    *metrics
	ns     state.Namespace
	ledger *ledger

	tmu     sync.Mutex
	targets map[string]*target

	// mu orders a request's start against Stop: once stopping is set no
	// request joins reqs, so that Stop's wait is for a fixed set.
	mu       sync.Mutex
	stopping bool
	// closed is set once Stop waits for the senders: none may start.
	closed  bool
	reqs    sync.WaitGroup
	slots   chan struct{}
	senders sync.WaitGroup
	// stopCtx ends when the plugin stops: senders end and waiting
	// requests answer 503.
	stopCtx  context.Context
	stop     context.CancelFunc
	servers  []*shared
	conn     atomic.Pointer[connState]
	started  atomic.Bool
	stopOnce sync.Once
	am       *amClient
}

// New builds the plugin from the [[webhooks]] tables; it is enabled when
// there is at least one. Templates and routes are compiled here; the error
// is a diag.List naming the table of each problem.
func New(cfg Config, core plugins.Core) (plugins.Plugin, bool, error) {
	if len(cfg) == 0 {
		return nil, false, nil
	}
	p := &Plugin{routes: map[string]http.Handler{}, listen: map[string]*http.ServeMux{},
		targets: map[string]*target{}, slots: make(chan struct{}, maxRequests)}
	p.stopCtx, p.stop = context.WithCancel(context.Background())
	var errs diag.List
	for i, w := range cfg {
		h, err := newHook(w, core.Rooms)
		if err != nil {
			errs.Add(w.Pos.At("template", "webhooks[%d]: %v", i, err))
			continue
		}
		p.hooks = append(p.hooks, h)
		handler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { p.serve(h, rw, r) })
		if w.Listen == "" {
			p.routes[w.Path] = handler
		} else {
			mux := p.listen[w.Listen]
			if mux == nil {
				mux = http.NewServeMux()
				p.listen[w.Listen] = mux
			}
			mux.Handle(w.Path, handler)
		}
		if w.AlertmanagerURL != "" && p.am == nil {
			p.am = newAMClient(w.AlertmanagerURL)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, true, err
	}
	return p, true, nil
}

// Name returns "webhooks".
func (p *Plugin) Name() string { return Name }

// Start opens the plugin's state (in memory when the bot has no store) and
// the webhooks' own listeners.
func (p *Plugin) Start(ctx context.Context, env plugins.Env) error {
	if !p.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	p.env, p.host, p.log = env, env.Host, env.Logger
	if p.log == nil {
		p.log = slog.Default().With("plugin", Name)
	}
	p.met = newMetrics(env.Registerer)
	ns, err := p.host.State()
	if errors.Is(err, plugins.ErrNoStore) {
		ns, err = state.NewMemory().Namespace(Name, Schema)
	}
	if err != nil {
		return fmt.Errorf("webhooks: state: %w", err)
	}
	// Delivered keys and firing alerts expire; nothing needs telling.
	ns.OnExpire(nil)
	p.ns = ns
	p.ledger = newLedger(ns)
	addrs := make([]string, 0, len(p.listen))
	for a := range p.listen {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		s, err := acquire(a, p, p.listen[a], p.log)
		if err != nil {
			p.releaseServers()
			return err
		}
		p.servers = append(p.servers, s)
	}
	for _, h := range p.hooks {
		where := "the [http] listener"
		if h.cfg.Listen != "" {
			where = h.cfg.Listen
		}
		if len(h.token) == 0 {
			p.log.Warn("webhook without a token: anyone who reaches the listener can post", "path", h.cfg.Path, "listen", where)
		}
		p.log.Info("webhook ready", "path", h.cfg.Path, "format", h.cfg.Format, "listen", where)
	}
	return nil
}

// Stop refuses new requests (503), waits within ctx for the requests in
// flight to get their answer, then stops the senders (what they still
// hold is answered 503, to be retried) and the own listeners. Safe twice.
func (p *Plugin) Stop(ctx context.Context) error {
	var err error
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.stopping = true
		p.mu.Unlock()
		done := make(chan struct{})
		go func() {
			p.reqs.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("webhooks: stop with requests in flight: %w", ctx.Err())
		}
		p.stop()
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.senders.Wait()
		if p.ledger != nil {
			p.ledger.w.close()
		}
		p.releaseServers()
	})
	return err
}

func (p *Plugin) releaseServers() {
	for _, s := range p.servers {
		s.release(p)
	}
	p.servers = nil
}

// Routes returns the paths served on the bot's [http] listener.
func (p *Plugin) Routes() map[string]http.Handler { return p.routes }

// Status reports the receivers and the notifications in flight.
func (p *Plugin) Status() []string {
	n := 0
	if p.ledger != nil {
		n = p.ledger.pending()
	}
	return []string{fmt.Sprintf("webhooks: %d receivers, %d notifications in flight", len(p.hooks), n)}
}

// addSender counts a sender goroutine about to start; false once Stop
// waits for them.
func (p *Plugin) addSender() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.senders.Add(1)
	return true
}

// target returns the sender of one recipient of h.
func (p *Plugin) target(h *hook, to string) *target {
	key := h.cfg.Listen + h.cfg.Path + "\x00" + to
	p.tmu.Lock()
	defer p.tmu.Unlock()
	t := p.targets[key]
	if t == nil {
		if len(p.targets) >= maxTargets {
			// JSON payloads may name any recipient: forget the idle
			// ones rather than grow without bound.
			for k, old := range p.targets {
				old.mu.Lock()
				idle := !old.running && len(old.items) == 0
				old.mu.Unlock()
				if idle {
					delete(p.targets, k)
				}
			}
		}
		t = &target{p: p, h: h, key: key, wake: make(chan struct{}, 1), bucket: newBucket(h.cfg.Rate)}
		p.targets[key] = t
	}
	return t
}

// Interface guards.
var (
	_ plugins.Plugin         = (*Plugin)(nil)
	_ plugins.Starter        = (*Plugin)(nil)
	_ plugins.Stopper        = (*Plugin)(nil)
	_ plugins.HTTPServer     = (*Plugin)(nil)
	_ plugins.Commander      = (*Plugin)(nil)
	_ plugins.StatusReporter = (*Plugin)(nil)
)
