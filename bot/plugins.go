package bot

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"crier/internal/config"
	"crier/internal/diag"
	"crier/plugins"
)

// runningPlugin is one plugin instance the bot built.
type runningPlugin struct {
	name string
	p    plugins.Plugin
	cfg  any
	host *pluginHost

	// reg holds the instance's metrics: a rebuilt instance registers the
	// same names, so each has a registry of its own, gathered while it is
	// in the set.
	reg *prometheus.Registry

	started atomic.Bool
	// off is set when the plugin is disabled: by command, or after a
	// failure (failed then says why).
	off    atomic.Bool
	mu     sync.Mutex
	failed string
}

func (rp *runningPlugin) failure() string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.failed
}

// pluginSet holds the plugins the bot runs. The chain reads the snapshot
// without a lock; changes (start, reload, enable, disable) are serialised
// by mu.
type pluginSet struct {
	b    *Bot
	mu   sync.Mutex
	list atomic.Pointer[[]*runningPlugin]
	// cmds caches the running plugins' commands; nil after any change.
	cmds atomic.Pointer[[]plugins.Command]
}

// changed drops what is derived from the running set.
func (s *pluginSet) changed() { s.cmds.Store(nil) }

// commands lists the commands of every running Commander.
func (s *pluginSet) commands() []plugins.Command {
	if c := s.cmds.Load(); c != nil {
		return *c
	}
	var out []plugins.Command
	for _, rp := range s.active() {
		if c, ok := rp.p.(plugins.Commander); ok {
			out = append(out, c.Commands()...)
		}
	}
	s.cmds.Store(&out)
	return out
}

func (s *pluginSet) all() []*runningPlugin {
	if l := s.list.Load(); l != nil {
		return *l
	}
	return nil
}

// get returns the running instance of name.
func (s *pluginSet) get(name string) *runningPlugin {
	for _, rp := range s.all() {
		if rp.name == name {
			return rp
		}
	}
	return nil
}

// links returns the chain's links in order: those of names that run.
func (s *pluginSet) links(names []string) []*runningPlugin {
	all := s.all()
	out := make([]*runningPlugin, 0, len(names))
	for _, n := range names {
		for _, rp := range all {
			if rp.name == n && rp.started.Load() && !rp.off.Load() {
				out = append(out, rp)
			}
		}
	}
	return out
}

// active returns the plugins that run (started, not disabled).
func (s *pluginSet) active() []*runningPlugin {
	var out []*runningPlugin
	for _, rp := range s.all() {
		if rp.started.Load() && !rp.off.Load() {
			out = append(out, rp)
		}
	}
	return out
}

// build makes instances for cfg, one per enabled plugin. The error is a
// diag.List when the plugins report positioned problems.
func (s *pluginSet) build(cfg *config.Config) ([]*runningPlugin, error) {
	core := coreOf(cfg)
	var out []*runningPlugin
	var errs diag.List
	var other []error
	for _, n := range plugins.Names() {
		p, ok, err := plugins.BuildOne(n, cfg.Plugins[n], core)
		if err != nil {
			var l diag.List
			if errors.As(err, &l) {
				errs.Merge(l)
			} else {
				other = append(other, fmt.Errorf("plugin %s: %w", n, err))
			}
			continue
		}
		if ok {
			out = append(out, s.wrap(n, p, cfg.Plugins[n]))
		}
	}
	if len(other) > 0 {
		return nil, errors.Join(append(other, errs.Err())...)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *pluginSet) wrap(name string, p plugins.Plugin, cfg any) *runningPlugin {
	rp := &runningPlugin{name: name, p: p, cfg: cfg, reg: prometheus.NewRegistry()}
	rp.host = &pluginHost{b: s.b, rp: rp}
	return rp
}

// coreOf is what plugins read of the core config.
func coreOf(cfg *config.Config) plugins.Core { return cfg.PluginCore() }

// start starts one instance: Start, when it has one, with its Env.
func (s *pluginSet) start(ctx context.Context, rp *runningPlugin) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("plugin %s panicked while starting: %v", rp.name, p)
		}
	}()
	if st, ok := rp.p.(plugins.Starter); ok {
		env := plugins.Env{Logger: s.b.log.With("plugin", rp.name), Registerer: rp.reg, Host: rp.host}
		if err := st.Start(ctx, env); err != nil {
			rp.host.unregister()
			return fmt.Errorf("plugin %s: %w", rp.name, err)
		}
	}
	rp.started.Store(true)
	s.changed()
	s.b.hm.pluginRunning.WithLabelValues(rp.name).Set(1)
	s.b.log.Info("plugin started", "plugin", rp.name)
	return nil
}

// stop stops one instance within 5 seconds; its iq handlers go with it.
func (s *pluginSet) stop(rp *runningPlugin) {
	if !rp.started.CompareAndSwap(true, false) {
		return
	}
	s.changed()
	rp.host.unregister()
	if st, ok := rp.p.(plugins.Stopper); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		func() {
			defer func() {
				if p := recover(); p != nil {
					s.b.log.Error("plugin panicked while stopping", "plugin", rp.name, "panic", p)
				}
			}()
			if err := st.Stop(ctx); err != nil {
				s.b.log.Warn("plugin did not stop cleanly", "plugin", rp.name, "err", err)
			}
		}()
	}
}

// startAll starts list and makes it the running set; a plugin that fails
// to start stops the ones started before it.
func (s *pluginSet) startAll(ctx context.Context, list []*runningPlugin) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, rp := range list {
		if err := s.start(ctx, rp); err != nil {
			for j := i - 1; j >= 0; j-- {
				s.stop(list[j])
			}
			return err
		}
	}
	s.list.Store(&list)
	s.changed()
	return nil
}

// stopAll stops every plugin in reverse order.
func (s *pluginSet) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.all()
	for i := len(all) - 1; i >= 0; i-- {
		s.stop(all[i])
	}
}

// fail disables a plugin after a failure; the daemon goes on without it.
func (s *pluginSet) fail(rp *runningPlugin, why string) {
	rp.mu.Lock()
	rp.failed = why
	rp.mu.Unlock()
	if rp.off.Swap(true) {
		return
	}
	s.changed()
	s.b.hm.pluginRunning.WithLabelValues(rp.name).Set(0)
	s.b.log.Error("plugin disabled after a failure; the bot goes on without it", "plugin", rp.name, "why", why)
	rp.host.unregister()
	// Stopping may block on the plugin itself: not on the caller's
	// goroutine (the chain's watchdog, a handler).
	go s.stop(rp)
}

// setEnabled starts or stops a configured plugin at run time.
func (s *pluginSet) setEnabled(ctx context.Context, name string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.get(name)
	if rp == nil {
		if _, ok := plugins.Lookup(name); !ok {
			return fmt.Errorf("%w %q", plugins.ErrUnknownPlugin, name)
		}
		return fmt.Errorf("plugin %s is not configured (its table does not enable it)", name)
	}
	if !on {
		if rp.off.Swap(true) {
			return nil
		}
		s.changed()
		s.b.hm.pluginRunning.WithLabelValues(name).Set(0)
		s.stop(rp)
		s.b.log.Info("plugin disabled by command", "plugin", name)
		return nil
	}
	if !rp.off.Load() && rp.started.Load() {
		return nil
	}
	// A stopped instance may not start again: build a fresh one.
	cfg := s.b.cfg.Load().cfg
	p, ok, err := plugins.BuildOne(name, cfg.Plugins[name], coreOf(cfg))
	if err != nil || !ok {
		return fmt.Errorf("plugin %s cannot be built: %v", name, err)
	}
	fresh := s.wrap(name, p, cfg.Plugins[name])
	if err := s.start(ctx, fresh); err != nil {
		s.b.hm.pluginFailures.WithLabelValues(name, "start").Inc()
		return err
	}
	list := slices.Clone(s.all())
	for i := range list {
		if list[i] == rp {
			list[i] = fresh
		}
	}
	s.list.Store(&list)
	s.changed()
	s.b.log.Info("plugin enabled by command", "plugin", name)
	return nil
}

// reload swaps in the plugins of cfg: a plugin whose config is unchanged
// keeps running; a changed one is built, started, and swapped in before
// the old instance stops; one no longer enabled stops. A plugin that
// cannot be built or started refuses the whole reload, and nothing
// changes. It returns the names of the plugins it replaced, started and
// stopped.
func (s *pluginSet) reload(ctx context.Context, cfg *config.Config) (changed []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.all()
	byName := map[string]*runningPlugin{}
	for _, rp := range old {
		byName[rp.name] = rp
	}
	built, err := s.build(cfg)
	if err != nil {
		return nil, err
	}
	var next, fresh []*runningPlugin
	keep := map[*runningPlugin]bool{}
	for _, nb := range built {
		if o := byName[nb.name]; o != nil && sameConfig(o.cfg, nb.cfg) && !o.off.Load() {
			next = append(next, o)
			keep[o] = true
			// Stop releases what New took, if anything; the unused
			// instance was never started.
			continue
		}
		next = append(next, nb)
		fresh = append(fresh, nb)
	}
	for i, rp := range fresh {
		if err := s.start(ctx, rp); err != nil {
			for j := i - 1; j >= 0; j-- {
				s.stop(fresh[j])
			}
			return nil, err
		}
		changed = append(changed, rp.name)
	}
	s.list.Store(&next)
	s.changed()
	for _, o := range old {
		if !keep[o] {
			s.stop(o)
			if !slices.Contains(changed, o.name) {
				changed = append(changed, o.name)
			}
		}
	}
	return changed, nil
}

// sameConfig compares two plugin configs, ignoring where in the file they
// were written (diag.Pos), so that a change elsewhere does not restart a
// plugin.
func sameConfig(a, b any) bool {
	return equalIgnoringPos(reflect.ValueOf(a), reflect.ValueOf(b))
}

var posType = reflect.TypeFor[diag.Pos]()

func equalIgnoringPos(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalIgnoringPos(a.Elem(), b.Elem())
	case reflect.Struct:
		if a.Type() == posType {
			return true
		}
		for i := range a.NumField() {
			if !equalIgnoringPos(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalIgnoringPos(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			if !equalIgnoringPos(a.MapIndex(k), b.MapIndex(k)) {
				return false
			}
		}
		return true
	case reflect.Func:
		return a.IsNil() && b.IsNil()
	}
	if a.CanInterface() && b.CanInterface() {
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
	// Unexported fields: compare what can be read.
	switch a.Kind() {
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return a.Float() == b.Float()
	}
	return false
}

// Gather collects the metrics of the plugins in the set (prometheus.Gatherer).
func (s *pluginSet) Gather() ([]*dto.MetricFamily, error) {
	var gs prometheus.Gatherers
	for _, rp := range s.all() {
		gs = append(gs, rp.reg)
	}
	return gs.Gather()
}
