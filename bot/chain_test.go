package bot

import (
	"context"
	"encoding/xml"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"crier/plugins"
)

// testLink is a chain link registered for these tests under [testlink]:
// it stops messages whose body starts with "stop", panics on "panic",
// blocks on "block" until released, and answers the iq urn:test:echo.
type testLink struct {
	mu      sync.Mutex
	seen    []plugins.Event
	host    plugins.Host
	release chan struct{}
	handled atomic.Int32
}

type testLinkConfig struct {
	On bool `toml:"on"`
}

var links struct {
	mu   sync.Mutex
	last *testLink
}

func init() {
	plugins.Register(plugins.Spec{
		Name: "testlink", Table: "testlink", Schema: 1,
		Config: func() any { return &testLinkConfig{} },
		New: func(cfg any, _ plugins.Core) (plugins.Plugin, bool, error) {
			if !cfg.(*testLinkConfig).On {
				return nil, false, nil
			}
			l := &testLink{release: make(chan struct{})}
			links.mu.Lock()
			links.last = l
			links.mu.Unlock()
			return l, true, nil
		},
	})
}

func lastLink(t *testing.T) *testLink {
	t.Helper()
	links.mu.Lock()
	defer links.mu.Unlock()
	if links.last == nil {
		t.Fatal("testlink was not built")
	}
	return links.last
}

func (l *testLink) Name() string { return "testlink" }

func (l *testLink) Start(_ context.Context, env plugins.Env) error {
	l.host = env.Host
	env.Host.HandleIQ("get", xml.Name{Space: "urn:test:echo", Local: "echo"}, "urn:test:echo", func(_ context.Context, iq plugins.IQ) ([]byte, error) {
		if strings.Contains(string(iq.Payload), "refuse") {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed}
		}
		return []byte(`<echo xmlns="urn:test:echo">` + iq.From + `</echo>`), nil
	})
	return nil
}

func (l *testLink) Handle(_ context.Context, ev *plugins.Event) plugins.Verdict {
	l.mu.Lock()
	l.seen = append(l.seen, *ev)
	l.mu.Unlock()
	l.handled.Add(1)
	switch {
	case strings.HasPrefix(ev.Body, "stop"):
		return plugins.Stop
	case strings.HasPrefix(ev.Body, "panic"):
		panic("test link told to panic")
	case strings.HasPrefix(ev.Body, "block"):
		<-l.release
	}
	return plugins.Continue
}

func (l *testLink) events() []plugins.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]plugins.Event(nil), l.seen...)
}

const chainConf = `
[bot]
chain = ["testlink", "rules"]
[testlink]
on = true
[[rules]]
name = "any"
match = "^(stop|go|panic|block)"
reply = "rule saw {{.Body}}"
`

// TestChainStopsBeforeRules: a link that stops an event keeps it from the
// rules; one that passes it on lets them answer; joins reach the link too.
func TestChainStopsBeforeRules(t *testing.T) {
	h := readyBot(t, chainConf)
	l := lastLink(t)
	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "stop this")
	_ = alice.SendMessage(room, "groupchat", "go on")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "rule saw go on"))
	time.Sleep(200 * time.Millisecond)
	for _, s := range alice.Drain() {
		if s.Name == "message" && s.From == room+"/crier" && strings.Contains(s.Body, "stop this") {
			t.Fatalf("the rules saw a message the chain stopped: %s", s.Raw)
		}
	}
	var kinds []string
	for _, ev := range l.events() {
		kinds = append(kinds, ev.Kind.String()+":"+ev.Nick+":"+ev.Body)
	}
	want := []string{"join:alice:", "message:alice:stop this", "message:alice:go on"}
	if strings.Join(kinds, "|") != strings.Join(want, "|") {
		t.Fatalf("the link saw %q, want %q (in order)", kinds, want)
	}
	if got := labelled(t, h.bot, "crier_chain_stopped_total", "link", "testlink"); got != 1 {
		t.Errorf("crier_chain_stopped_total{link=testlink} = %v, want 1", got)
	}
}

// TestChainPanicDisablesPlugin: a link that panics is recovered, counted
// and disabled; the rules go on answering.
func TestChainPanicDisablesPlugin(t *testing.T) {
	h := readyBot(t, chainConf)
	l := lastLink(t)
	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "panic now")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "rule saw panic now"))
	_ = alice.SendMessage(room, "groupchat", "stop, the link is gone")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "rule saw stop, the link is gone"))
	if n := l.handled.Load(); n != 2 { // the join and the panic
		t.Errorf("the disabled link still saw events: %d", n)
	}
	if got := labelledN(t, h.bot, "crier_plugin_failures_total", "plugin", "testlink", "reason", "panic"); got != 1 {
		t.Errorf("crier_plugin_failures_total{reason=panic} = %v, want 1", got)
	}
	ok, lines := h.bot.Ready()
	if !strings.Contains(strings.Join(lines, "\n"), "plugin testlink: failed (panicked)") {
		t.Errorf("ready lines do not name the failed plugin (ready %v): %q", ok, lines)
	}
}

// TestChainBlockedLinkDoesNotStallTheBot: while a link blocks, iq requests
// are still answered (the reader does not wait for the chain); after the
// link timeout the link is disabled and the chain goes on.
func TestChainBlockedLinkDoesNotStallTheBot(t *testing.T) {
	h := readyBot(t, chainConf)
	l := lastLink(t)
	defer close(l.release)
	h.bot.chain.timeout.Store(int64(300 * time.Millisecond))
	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "block the chain")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := alice.IQ(ctx, "crier@localhost/crier", "get", `<ping xmlns="urn:xmpp:ping"/>`); err != nil {
		t.Fatalf("ping while a link blocks: %v", err)
	}
	_ = alice.SendMessage(room, "groupchat", "go after the block")
	alice.Expect(t, 10*time.Second, isBody(room+"/crier", "rule saw go after the block"))
	if got := labelledN(t, h.bot, "crier_plugin_failures_total", "plugin", "testlink", "reason", "blocked"); got != 1 {
		t.Errorf("crier_plugin_failures_total{reason=blocked} = %v, want 1", got)
	}
}

// TestPluginIQ: a plugin's iq handler answers off the reader, its feature
// is in the bot's disco#info, and a stanza error is passed on.
func TestPluginIQ(t *testing.T) {
	h := readyBot(t, chainConf)
	alice := h.user("alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := alice.IQ(ctx, "crier@localhost/crier", "get", `<echo xmlns="urn:test:echo"/>`)
	if err != nil {
		t.Fatal(err)
	}
	if e := res.Find("urn:test:echo", "echo"); e == nil || !strings.HasPrefix(e.Text, "alice@localhost/") {
		t.Fatalf("echo answer: %s", res.Raw)
	}
	res, err = alice.IQ(ctx, "crier@localhost/crier", "get", `<echo xmlns="urn:test:echo">refuse</echo>`)
	if err == nil || !strings.Contains(res.Raw+err.Error(), "not-allowed") {
		t.Fatalf("refused echo: %v %s", err, res.Raw)
	}
	res, err = alice.IQ(ctx, "crier@localhost/crier", "get", `<query xmlns="http://jabber.org/protocol/disco#info"/>`)
	if err != nil || !strings.Contains(res.Raw, "urn:test:echo") {
		t.Fatalf("disco#info lacks the plugin's feature: %v %s", err, res.Raw)
	}
}

// TestJoinByCommandSurvivesRestart: a room joined through the Host is kept
// in the state store and joined again by a new bot on the same state_dir;
// left through the Host, it stays left.
func TestJoinByCommandSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t)
	conf := strings.Replace(chainConf, "[bot]\n", "[bot]\nstate_dir = \""+dir+"\"\n", 1)
	cfg := botConfig(t, srv, conf)
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	const extra = "extra@conference.localhost"
	if err := lastLink(t).host.JoinRoom(extra, "", ""); err != nil {
		t.Fatal(err)
	}
	h.waitReady(5 * time.Second)
	if !hasOccupant(srv.Occupants(extra), "crier") {
		t.Fatalf("the bot is not in %s: %v", extra, srv.Occupants(extra))
	}
	h.shutdown()

	h2 := startBot(t, srv, botConfig(t, srv, conf), Options{})
	h2.waitReady(5 * time.Second)
	if !hasOccupant(srv.Occupants(extra), "crier") {
		t.Fatalf("after a restart the bot is not back in %s: %v", extra, srv.Occupants(extra))
	}
	if err := lastLink(t).host.LeaveRoom(extra); err != nil {
		t.Fatal(err)
	}
	h2.shutdown()
	h3 := startBot(t, srv, botConfig(t, srv, conf), Options{})
	h3.waitReady(5 * time.Second)
	for _, ri := range lastLink(t).host.Rooms() {
		if ri.JID == extra {
			t.Fatalf("a room left by command came back after a restart: %+v", ri)
		}
	}
}

func hasOccupant(list []string, nick string) bool {
	for _, n := range list {
		if n == nick {
			return true
		}
	}
	return false
}

// waitFor polls cond every 2 ms until it holds, at most 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
