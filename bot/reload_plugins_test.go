package bot

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"crier/internal/config"
	"crier/internal/state"
	"crier/plugins"
)

// swapPlugin is registered under [swaptest]: each instance counts its
// starts and stops; tag "bad" makes New refuse the config, tag "nostart"
// makes Start fail.
type swapPlugin struct {
	tag              string
	started, stopped atomic.Int32
}

type swapConfig struct {
	Tag string `toml:"tag"`
}

var swaps struct {
	built atomic.Int32
	last  atomic.Pointer[swapPlugin]
}

func init() {
	plugins.Register(plugins.Spec{
		Name: "swaptest", Table: "swaptest",
		Config: func() any { return &swapConfig{} },
		New: func(cfg any, _ plugins.Core) (plugins.Plugin, bool, error) {
			c := cfg.(*swapConfig)
			if c.Tag == "" {
				return nil, false, nil
			}
			if c.Tag == "bad" {
				return nil, true, errors.New("swaptest: tag bad is refused")
			}
			p := &swapPlugin{tag: c.Tag}
			swaps.built.Add(1)
			swaps.last.Store(p)
			return p, true, nil
		},
	})
}

func (p *swapPlugin) Name() string { return "swaptest" }

func (p *swapPlugin) Start(context.Context, plugins.Env) error {
	if p.tag == "nostart" {
		return errors.New("swaptest: cannot start")
	}
	p.started.Add(1)
	return nil
}

func (p *swapPlugin) Stop(context.Context) error { p.stopped.Add(1); return nil }

// TestReloadSwapsChangedPlugin: a reload that changes a plugin's table
// starts a new instance before the old one stops; an unchanged table keeps
// the instance (even when lines moved); a table the plugin refuses, or an
// instance that cannot start, refuses the reload and the old one keeps
// running.
func TestReloadSwapsChangedPlugin(t *testing.T) {
	srv := startServer(t)
	h := startBot(t, srv, botConfig(t, srv, "[swaptest]\ntag = \"one\"\n"), Options{})
	h.waitReady(5 * time.Second)
	first := swaps.last.Load()
	if first == nil || first.tag != "one" || first.started.Load() != 1 {
		t.Fatalf("first instance: %+v", first)
	}
	reload := func(extra string) error {
		t.Helper()
		return h.bot.Reload(botConfig(t, srv, extra))
	}
	// Unchanged, but written further down: the same instance runs on.
	if err := reload("\n\n# moved\n[swaptest]\ntag = \"one\"\n"); err != nil {
		t.Fatal(err)
	}
	if rp := h.bot.plugins.get("swaptest"); rp == nil || rp.p != first || first.stopped.Load() != 0 {
		t.Fatal("an unchanged plugin table restarted the plugin")
	}
	if err := reload("[swaptest]\ntag = \"two\"\n"); err != nil {
		t.Fatal(err)
	}
	second := swaps.last.Load()
	if second == first || second.tag != "two" || second.started.Load() != 1 || first.stopped.Load() != 1 {
		t.Fatalf("changed table: second %+v, first stopped %d", second, first.stopped.Load())
	}
	if rp := h.bot.plugins.get("swaptest"); rp == nil || rp.p != second {
		t.Fatal("the running set does not hold the new instance")
	}
	for _, bad := range []string{"bad", "nostart"} {
		err := reload("[swaptest]\ntag = \"" + bad + "\"\n")
		if !errors.Is(err, ErrReloadRefused) || !strings.Contains(err.Error(), "swaptest") {
			t.Fatalf("reload with tag %s: %v, want refused naming the plugin", bad, err)
		}
		if rp := h.bot.plugins.get("swaptest"); rp == nil || rp.p != second || second.stopped.Load() != 0 {
			t.Fatalf("a refused reload (%s) changed the running plugin", bad)
		}
	}
	if got := counter(t, h.bot, "crier_reloads_total"); got < 3 {
		t.Errorf("crier_reloads_total = %v", got)
	}
	// Removed from the config: stopped.
	if err := reload(""); err != nil {
		t.Fatal(err)
	}
	if second.stopped.Load() != 1 || h.bot.plugins.get("swaptest") != nil {
		t.Fatal("a plugin no longer configured still runs")
	}
}

// TestStoreLockedByAnother: a second crier on the same state_dir is
// refused at start with a message that says so; the first runs on.
func TestStoreLockedByAnother(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, StoreFile), state.Options{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg, err := config.LoadBytes("t.toml", []byte("[xmpp]\njid = \"crier@localhost\"\npassword = \"x\"\naddress = \"127.0.0.1:1\"\ntls = \"none\"\n[bot]\nstate_dir = \""+dir+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Options{})
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), "another crier") {
		t.Fatalf("New on a locked store: %v", err)
	}
}
