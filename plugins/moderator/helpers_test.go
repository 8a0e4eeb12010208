package moderator

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"crier/internal/config"
	"crier/plugins"
	"crier/plugins/pluginstest"
)

const (
	lobby  = "lobby@conference.example.org"
	mods   = "mods@conference.example.org"
	botJID = "crier@example.org"
)

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a started moderator on a fake host, the bot an owner and
// moderator of the lobby.
type fixture struct {
	t   testing.TB
	cfg *Config
	p   *Plugin
	h   *pluginstest.Host
	clk *clock
	reg *prometheus.Registry
}

const minimal = "[xmpp]\njid = \"crier@example.org\"\npassword = \"x\"\n\n"

// loadConfig loads a [moderator] table through the config loader, as
// crier does.
func loadConfig(t testing.TB, table string) *Config {
	t.Helper()
	t.Setenv(config.PasswordEnv, "")
	cfg, err := config.LoadBytes("test.toml", []byte(minimal+table))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg.Plugins[Name].(*Config)
}

func newFixture(t testing.TB, table string) *fixture {
	t.Helper()
	f := &fixture{t: t, cfg: loadConfig(t, table), h: pluginstest.New(), clk: &clock{t: time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)}}
	f.h.AddRoom(plugins.RoomInfo{JID: lobby, Nick: "crier", State: "joined", Role: "moderator", Affiliation: "owner", Configured: true})
	f.h.AddRoom(plugins.RoomInfo{JID: mods, Nick: "crier", State: "joined", Role: "moderator", Affiliation: "owner", Configured: true})
	f.start()
	return f
}

// start builds and starts a new instance on the fixture's host (and so
// on the same state namespace): a restart.
func (f *fixture) start() {
	f.t.Helper()
	p, err := New(f.cfg, plugins.Core{BotJID: botJID})
	if err != nil {
		f.t.Fatal(err)
	}
	p.now = f.clk.Now
	p.roomsEvery = time.Hour // tests call enteredRooms themselves
	f.reg = prometheus.NewRegistry()
	if err := p.Start(context.Background(), plugins.Env{Logger: slog.New(slog.DiscardHandler), Registerer: f.reg, Host: f.h}); err != nil {
		f.t.Fatal(err)
	}
	f.p = p
	f.t.Cleanup(func() { _ = p.Stop(context.Background()) })
}

// restart stops the plugin and starts a new instance.
func (f *fixture) restart() {
	f.t.Helper()
	if err := f.p.Stop(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.start()
}

// occupant is someone in the lobby.
type occupant struct {
	nick, jid, oid, role, aff string
}

func (f *fixture) join(o occupant) plugins.Verdict {
	f.h.AddOccupant(plugins.Occupant{Room: lobby, Nick: o.nick, RealJID: o.jid, OccupantID: o.oid, Role: orDefault(o.role, "participant"), Affiliation: orDefault(o.aff, "none"), Joined: f.clk.Now()})
	return f.p.Handle(context.Background(), &plugins.Event{Kind: plugins.EventJoin, Type: "groupchat", Room: lobby, Nick: o.nick,
		RealJID: o.jid, OccupantID: o.oid, Role: orDefault(o.role, "participant"), Affiliation: orDefault(o.aff, "none"), BotNick: "crier", Time: f.clk.Now()})
}

var stanzaN int

func (f *fixture) say(o occupant, body string) plugins.Verdict {
	stanzaN++
	ev := &plugins.Event{Kind: plugins.EventMessage, Type: "groupchat", Room: lobby, From: lobby + "/" + o.nick, Nick: o.nick, Body: body,
		RealJID: o.jid, OccupantID: o.oid, Role: orDefault(o.role, "participant"), Affiliation: orDefault(o.aff, "none"), BotNick: "crier",
		StanzaID: "sid-" + itoa(stanzaN), Time: f.clk.Now()}
	v := f.p.Handle(context.Background(), ev)
	f.p.flush()
	return v
}

// actions returns the actions done so far, as "kind nick jid".
func (f *fixture) actions() []string {
	var out []string
	for _, a := range f.h.Actions() {
		s := a.Kind.String()
		if a.Nick != "" {
			s += " " + a.Nick
		}
		if a.JID != "" {
			s += " " + a.JID
		}
		if a.StanzaID != "" {
			s += " " + a.StanzaID
		}
		for k, v := range a.Fields {
			s += " " + k + "=" + v
		}
		out = append(out, s)
	}
	return out
}

// waitCase waits for a case's result to be written.
func (f *fixture) waitCase(id int64, want string) Case {
	f.t.Helper()
	return f.waitCaseFn(id, want, func(*Case) bool { return true })
}

// waitCaseFn waits for a case's result to be written and ok to accept
// the case.
func (f *fixture) waitCaseFn(id int64, want string, ok func(*Case) bool) Case {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.p.flush()
		c, err := f.p.getCase(id)
		if err == nil && strings.HasPrefix(c.Result, want) && ok(&c) {
			return c
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("case %d: %+v, %v; want result %q", id, c, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counter reads a counter of the fixture's registry.
func (f *fixture) counter(name string, labels map[string]string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// waitCounter waits up to 5s for a counter to reach want: the fake host
// answers actions on goroutines of its own.
func (f *fixture) waitCounter(name string, labels map[string]string, want float64) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := f.counter(name, labels)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// run calls one of the plugin's commands as a lobby moderator.
func (f *fixture) run(name string, args map[string]string) (plugins.Reply, error) {
	f.t.Helper()
	for _, c := range f.p.Commands() {
		if c.Name == name {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return c.Run(ctx, &plugins.Call{Command: name, Surface: plugins.SurfaceChat, From: lobby + "/mod", RealJID: "mod@example.org",
				Room: lobby, Nick: "mod", Level: plugins.Moderator, Args: args, Time: f.clk.Now()})
		}
	}
	f.t.Fatalf("no command %q", name)
	return plugins.Reply{}, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
