package commands

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"crier/plugins"
	"crier/plugins/pluginstest"
)

const (
	lobby    = "lobby@conference.example.org"
	ops      = "ops@conference.example.org"
	admin    = "admin@example.org"
	stranger = "eve@example.org"
	botJID   = "crier@example.org"
)

// clock is a settable time for sessions, confirmations and rate limits.
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

// fixture is a started plugin on a fake host.
type fixture struct {
	t   testing.TB
	p   *Plugin
	h   *pluginstest.Host
	clk *clock
	reg *prometheus.Registry
}

// newFixture starts the plugin with admins = [admin@example.org], the
// lobby joined, and extra commands from another plugin.
func newFixture(t testing.TB, mod func(*Config), extra ...plugins.Command) *fixture {
	t.Helper()
	cfg := *defaultConfig()
	cfg.Admins = []string{admin}
	if mod != nil {
		mod(&cfg)
	}
	f := &fixture{t: t, p: New(cfg, plugins.Core{BotJID: botJID}), h: pluginstest.New(),
		clk: &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}, reg: prometheus.NewRegistry()}
	f.p.now = f.clk.Now
	f.h.AddRoom(plugins.RoomInfo{JID: lobby, Nick: "crier", State: "joined", Role: "moderator", Affiliation: "owner", Configured: true, Occupants: 3})
	f.h.StatusValue = plugins.Status{Connected: true, Transport: "tcp", Server: "example.org", StreamManagement: true, Resumable: true,
		Version: "1.2.3", Started: f.clk.Now().Add(-2 * time.Hour), ConnectedSince: f.clk.Now().Add(-time.Hour), OutboxDepth: 2,
		Plugins: []string{"nats: connected, relay lag 0"}, HA: []string{"ha: leading as crier@example.org/a@h:1; standing by: none"}}
	f.h.PluginList = []plugins.PluginInfo{
		{Name: "commands", Configured: true, Running: true, InChain: true},
		{Name: "natsrelay", Configured: true, Running: true},
	}
	f.h.ReloadDiff = "rules: + greet\n"
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := f.p.Start(context.Background(), plugins.Env{Logger: log, Registerer: f.reg, Host: f.h}); err != nil {
		t.Fatal(err)
	}
	f.h.SetCommands(append(f.p.Commands(), extra...))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.p.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return f
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	if _, fuzz := w.t.(*testing.F); fuzz {
		return len(b), nil // the fuzz target may not log through f
	}
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// dm is a one-to-one message from a bare JID's phone.
func dm(from, body string) plugins.Event {
	return plugins.Event{Kind: plugins.EventMessage, Type: "chat", From: from + "/phone", RealJID: from, Body: body}
}

// occupant describes a room sender.
type occupant struct {
	room, nick, role, aff, real string
}

// inRoom is a groupchat message in a room.
func inRoom(o occupant, body string) plugins.Event {
	room := o.room
	if room == "" {
		room = lobby
	}
	return plugins.Event{Kind: plugins.EventMessage, Type: "groupchat", From: room + "/" + o.nick, Room: room, Nick: o.nick,
		Role: o.role, Affiliation: o.aff, RealJID: o.real, Body: body, BotNick: "crier"}
}

// chat hands ev to the chain link and the fallback (as the bot does when
// no link stopped it and no rule matched), waits for the command to
// finish and returns the replies' bodies.
func (f *fixture) chat(ev plugins.Event) []string {
	f.t.Helper()
	f.h.Reset()
	if f.p.Handle(context.Background(), &ev) == plugins.Continue {
		f.p.Unhandled(context.Background(), &ev)
	}
	f.p.wg.Wait()
	var out []string
	for _, m := range f.h.Sent() {
		out = append(out, m.Body)
	}
	return out
}

// chat1 expects exactly one reply.
func (f *fixture) chat1(ev plugins.Event) string {
	f.t.Helper()
	r := f.chat(ev)
	if len(r) != 1 {
		f.t.Fatalf("%q: want 1 reply, got %d: %q", ev.Body, len(r), r)
	}
	return r[0]
}

func (f *fixture) rejected(reason string) float64 {
	return counterValue(f.p.m.rejected.WithLabelValues(reason))
}

func (f *fixture) total(cmd, surface, result string) float64 {
	return counterValue(f.p.m.total.WithLabelValues(cmd, surface, result))
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// adhoc sends an XEP-0050 request and decodes the answer.
func (f *fixture) adhoc(from string, req xCommand) (xCommand, *plugins.IQError) {
	f.t.Helper()
	out, err := f.h.IQ(context.Background(), "set", from, marshal(req))
	if err != nil {
		var ie *plugins.IQError
		if !errors.As(err, &ie) {
			f.t.Fatalf("iq error is %T %v, not *plugins.IQError", err, err)
		}
		return xCommand{}, ie
	}
	var res xCommand
	if err := xml.Unmarshal(out, &res); err != nil {
		f.t.Fatalf("answer %s: %v", out, err)
	}
	return res, nil
}

// mustAdhoc expects an answer, not an error.
func (f *fixture) mustAdhoc(from string, req xCommand) xCommand {
	f.t.Helper()
	res, ie := f.adhoc(from, req)
	if ie != nil {
		f.t.Fatalf("%s %s: %v", req.Node, req.Action, ie)
	}
	return res
}

// submit is a submitted form.
func submit(kv ...string) *xForm {
	f := &xForm{Type: "submit"}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Fields = append(f.Fields, xField{Var: kv[i], Values: []string{kv[i+1]}})
	}
	return f
}

// expectIQError checks the condition and the application condition.
func expectIQError(t testing.TB, ie *plugins.IQError, cond, app string) {
	t.Helper()
	if ie == nil {
		t.Fatalf("want %s error, got an answer", cond)
	}
	if ie.Condition != cond {
		t.Fatalf("condition %q, want %q (%v)", ie.Condition, cond, ie)
	}
	if app != "" && !strings.Contains(string(ie.App), "<"+app+" ") {
		t.Fatalf("app condition %q, want %s", ie.App, app)
	}
}

func notes(c xCommand) string {
	var s []string
	for _, n := range c.Notes {
		s = append(s, n.Type+": "+n.Text)
	}
	return strings.Join(s, "\n")
}

func fieldVars(f *xForm) string {
	if f == nil {
		return "<no form>"
	}
	var s []string
	for _, x := range f.Fields {
		s = append(s, fmt.Sprintf("%s:%s", x.Var, x.Type))
	}
	return strings.Join(s, ",")
}

func newHostNoStore() *pluginstest.Host {
	h := pluginstest.New()
	h.Store = nil
	return h
}
