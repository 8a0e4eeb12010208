package bot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"crier/internal/config"
	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

const room = "lobby@conference.localhost"

// harness is a mini server, a bot connected to it, and helpers.
type harness struct {
	t    testing.TB
	srv  *miniserver.Server
	bot  *Bot
	cfg  *config.Config
	stop context.CancelFunc
	done chan error
	logs *crierproc.Buffer
}

const baseRules = `
[[rules]]
name  = "ping"
match = "^!ping$"
reply = "pong {{.Nick}}"

[[rules]]
name  = "echo"
match = "^!echo (.+)$"
reply = "{{index .Match 1}}"
`

// startMini starts a mini server for the domain localhost on a loopback
// port, with the accounts crier, alice and bob (passwords botpw, alicepw
// and bobpw); cfg sets the rest, such as HTTPAddr, Shape or NoSM, and a nil
// cfg.Logger discards the server's log. The server stops when the test
// ends.
func startMini(tb testing.TB, cfg miniserver.Config) *miniserver.Server {
	tb.Helper()
	cfg.Domain = "localhost"
	cfg.Addr = "127.0.0.1:0"
	cfg.Accounts = map[string]string{"crier@localhost": "botpw", "alice@localhost": "alicepw", "bob@localhost": "bobpw"}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := miniserver.Start(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("mini server: %v", err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

// startServer starts a mini server with a c2s listener only (see
// startMini).
func startServer(tb testing.TB) *miniserver.Server {
	tb.Helper()
	return startMini(tb, miniserver.Config{})
}

// loadConfig loads the bot's config: the account crier@localhost with the
// resource crier, the [xmpp] settings of conn (the connection's address or
// BOSH URL and its timers), the room with the nick crier, baseRules, and
// then extra.
func loadConfig(tb testing.TB, conn, extra string) *config.Config {
	tb.Helper()
	src := fmt.Sprintf(`
[xmpp]
jid = "crier@localhost"
password = "botpw"
resource = "crier"
%s
connect_timeout = "5s"

[[rooms]]
jid = %q
nick = "crier"
%s
%s`, conn, room, baseRules, extra)
	cfg, err := config.LoadBytes("test.toml", []byte(src))
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	return cfg
}

// botConfig is the config of a bot connected over TCP to srv, with a short
// keepalive, and extra after the base rules.
func botConfig(tb testing.TB, srv *miniserver.Server, extra string) *config.Config {
	tb.Helper()
	return loadConfig(tb, fmt.Sprintf("address = %q\nkeepalive = \"1s\"\nkeepalive_timeout = \"1s\"", srv.Addr()), extra)
}

// startBot runs a bot with cfg against srv until the test ends, trusting
// srv's certificate and, unless opts says otherwise, reconnecting after 20
// to 200 ms. When opts.Logger is nil the bot logs at debug level to h.logs,
// which goes to the test log when the test fails.
func startBot(tb testing.TB, srv *miniserver.Server, cfg *config.Config, opts Options) *harness {
	tb.Helper()
	logs := &crierproc.Buffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts.RootCAs = srv.CertPool()
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 20 * time.Millisecond
		opts.MaxBackoff = 200 * time.Millisecond
	}
	b, err := New(cfg, opts)
	if err != nil {
		tb.Fatalf("bot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: tb, srv: srv, bot: b, cfg: cfg, stop: cancel, done: make(chan error, 1), logs: logs}
	go func() { h.done <- b.Run(ctx) }()
	tb.Cleanup(func() {
		h.shutdown()
		if tb.Failed() {
			tb.Logf("bot log:\n%s", logs.String())
		}
	})
	return h
}

// readyBot starts a mini server and a bot on botConfig with extra, and
// waits until the bot is ready.
func readyBot(tb testing.TB, extra string) *harness {
	tb.Helper()
	srv := startServer(tb)
	h := startBot(tb, srv, botConfig(tb, srv, extra), Options{})
	h.waitReady(5 * time.Second)
	return h
}

// shutdown stops the bot and waits, at most 10 seconds, for Run to return
// nil.
func (h *harness) shutdown() {
	h.stop()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
		h.done <- nil // later calls return at once
	case <-time.After(10 * time.Second):
		h.t.Errorf("bot did not stop within 10s")
	}
}

// waitReady waits until the bot says it is bound and in every room.
func (h *harness) waitReady(timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok, _ := h.bot.Ready(); ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, lines := h.bot.Ready()
	h.t.Fatalf("bot not ready after %v: %s\nlog:\n%s", timeout, strings.Join(lines, "; "), h.logs.String())
}

// waitNotReady waits until the bot says it is not ready for a reason that
// mentions what, at most timeout.
func (h *harness) waitNotReady(timeout time.Duration, what string) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, lines := h.bot.Ready()
		if !ok && strings.Contains(strings.Join(lines, " "), what) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%q not reported in readiness after %v: %v\nlog:\n%s", what, timeout, lines, h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// user logs in the account name ("alice", "bob") of the harness's server.
func (h *harness) user(name string) *xmpptest.Client {
	h.t.Helper()
	c := xmpptest.Dial(h.t, xmpptest.Options{Addr: h.srv.Addr(), JID: name + "@localhost", Password: name + "pw", RootCAs: h.srv.CertPool(), Timeout: 5 * time.Second})
	return c
}

// joinRoom logs name in and joins the lobby as name.
func joinRoom(tb testing.TB, h *harness, name string) *xmpptest.Client {
	tb.Helper()
	c := h.user(name)
	if err := c.Join(room, name); err != nil {
		tb.Fatalf("%s joins %s: %v", name, room, err)
	}
	return c
}

func isBody(from, body string) func(xmpptest.Stanza) bool {
	return func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.From == from && s.Body == body
	}
}

func TestPingInRoomAndChat(t *testing.T) {
	h := readyBot(t, "")

	alice := joinRoom(t, h, "alice")
	if err := alice.SendMessage(room, "groupchat", "!ping"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))

	if err := alice.SendMessage("crier@localhost/crier", "chat", "!echo hello <world> & co"); err != nil {
		t.Fatal(err)
	}
	got := alice.Expect(t, 5*time.Second, isBody("crier@localhost/crier", "hello <world> & co"))
	if got.Type != "chat" {
		t.Fatalf("chat reply has type %q", got.Type)
	}
	// A message that matches nothing gets no answer; the bot's own
	// groupchat echo never triggers it again (only one pong per ping).
	_ = alice.SendMessage(room, "groupchat", "hello")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	time.Sleep(300 * time.Millisecond)
	for _, s := range alice.Drain() {
		if s.Name == "message" && s.From == room+"/crier" {
			t.Fatalf("unexpected extra message from the bot: %s", s.Raw)
		}
	}
}

func TestIQAnswered(t *testing.T) {
	h := readyBot(t, "")
	alice := h.user("alice")
	ctx := context.Background()
	bot := "crier@localhost/crier"

	info, err := alice.IQ(ctx, bot, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	if err != nil {
		t.Fatalf("disco#info: %v", err)
	}
	for _, f := range []string{"urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time", "http://jabber.org/protocol/disco#info"} {
		if !strings.Contains(info.Raw, f) {
			t.Errorf("disco#info lacks %s: %s", f, info.Raw)
		}
	}
	if !strings.Contains(info.Raw, "category=\"client\"") && !strings.Contains(info.Raw, "category='client'") {
		t.Errorf("disco#info lacks the client identity: %s", info.Raw)
	}
	if _, err := alice.IQ(ctx, bot, "get", "<query xmlns='http://jabber.org/protocol/disco#items'/>"); err != nil {
		t.Errorf("disco#items: %v", err)
	}
	if _, err := alice.IQ(ctx, bot, "get", "<ping xmlns='urn:xmpp:ping'/>"); err != nil {
		t.Errorf("ping: %v", err)
	}
	v, err := alice.IQ(ctx, bot, "get", "<query xmlns='jabber:iq:version'/>")
	if err != nil || !strings.Contains(v.Raw, "crier") {
		t.Errorf("version: %v %s", err, v.Raw)
	}
	tm, err := alice.IQ(ctx, bot, "get", "<time xmlns='urn:xmpp:time'/>")
	if err != nil || !strings.Contains(tm.Raw, "utc") {
		t.Errorf("time: %v %s", err, tm.Raw)
	}
	_, err = alice.IQ(ctx, bot, "get", "<query xmlns='urn:example:unknown'/>")
	if se, ok := err.(*xmpptest.StanzaError); !ok || se.Condition != "service-unavailable" {
		t.Errorf("unknown payload: got %v, want service-unavailable", err)
	}
	_, err = alice.IQ(ctx, bot, "set", "<query xmlns='jabber:iq:version'><name>x</name></query>")
	if err == nil {
		t.Errorf("set on version: want an error reply")
	}
	// The session survives all of that.
	_ = alice.SendMessage(bot, "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(bot, "pong alice"))
}

func TestReconnectAndRejoin(t *testing.T) {
	h := readyBot(t, "")
	srv := h.srv

	srv.DropAll()
	time.Sleep(50 * time.Millisecond)
	h.waitReady(10 * time.Second)

	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitReady(10 * time.Second)
	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
}

func TestKickRejoinBanStops(t *testing.T) {
	h := readyBot(t, "")
	srv := h.srv

	for _, code := range []int{307, 332, 333} {
		if err := srv.Kick(room, "crier", code); err != nil {
			t.Fatalf("kick %d: %v", code, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(strings.Join(srv.Occupants(room), ","), "crier") || func() bool { ok, _ := h.bot.Ready(); return !ok }() {
			if time.Now().After(deadline) {
				t.Fatalf("not back in the room after status %d; occupants %v", code, srv.Occupants(room))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := srv.Kick(room, "crier", 301); err != nil {
		t.Fatal(err)
	}
	h.waitNotReady(3*time.Second, "banned")
	time.Sleep(300 * time.Millisecond)
	if occ := srv.Occupants(room); strings.Contains(strings.Join(occ, ","), "crier") {
		t.Fatalf("bot rejoined after a ban: %v", occ)
	}
	if !strings.Contains(h.logs.String(), "banned") {
		t.Fatalf("ban not logged")
	}
}

func TestNickConflict(t *testing.T) {
	srv := startServer(t)
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: srv.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: srv.CertPool()})
	if err := alice.Join(room, "crier"); err != nil { // alice takes the bot's nick
		t.Fatal(err)
	}
	h := startBot(t, srv, botConfig(t, srv, ""), Options{})
	h.waitReady(5 * time.Second)
	if h.bot.rooms.nick(room) == "crier" {
		t.Fatalf("bot claims the taken nick")
	}
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/"+h.bot.rooms.nick(room), "pong crier"))
}

func TestDeafServerDropped(t *testing.T) {
	srv := startServer(t)
	cfg := botConfig(t, srv, "")
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	srv.SetDeaf(true)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.logs.String(), "did not answer a ping") {
		if time.Now().After(deadline) {
			t.Fatalf("deaf server not noticed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.SetDeaf(false)
	h.waitReady(10 * time.Second)
}

// TestNoGrowthAcrossReconnects reconnects 50 times and checks that
// goroutines do not pile up.
func TestNoGrowthAcrossReconnects(t *testing.T) {
	h := readyBot(t, "")
	srv := h.srv
	settle := func() int {
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	base := settle()
	for i := 0; i < 50; i++ {
		// Wait for this drop's reconnect to be counted: ready alone may
		// still be the state from before the bot noticed the drop.
		before := counter(t, h.bot, "crier_connects_total")
		srv.DropAll()
		deadline := time.Now().Add(10 * time.Second)
		for counter(t, h.bot, "crier_connects_total") <= before && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		h.waitReady(10 * time.Second)
	}
	after := settle()
	if after > base+10 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines grew from %d to %d across 50 reconnects\n%s", base, after, buf[:n])
	}
	if got := counter(t, h.bot, "crier_connects_total"); got < 51 {
		t.Fatalf("connects_total = %v, want >= 51", got)
	}
}

func TestReloadChangesRulesWithoutReconnect(t *testing.T) {
	srv := startServer(t)
	cfg := botConfig(t, srv, "")
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	alice := h.user("alice")

	newCfg := botConfig(t, srv, "")
	newCfg.Rules[0].Reply = "PONG {{.Nick}}"
	if err := h.bot.Reload(newCfg); err != nil {
		t.Fatal(err)
	}
	_ = alice.SendMessage("crier@localhost/crier", "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody("crier@localhost/crier", "PONG alice"))
	if got := counter(t, h.bot, "crier_connects_total"); got != 1 {
		t.Fatalf("reload reconnected: connects_total = %v", got)
	}

	bad := botConfig(t, srv, "")
	bad.XMPP.JID = "other@localhost"
	if err := h.bot.Reload(bad); err == nil {
		t.Fatalf("a JID change was accepted by reload")
	}
	bad2 := botConfig(t, srv, "")
	bad2.Rules[0].Match = "(("
	if err := h.bot.Reload(bad2); err == nil {
		t.Fatalf("a broken regex was accepted by reload")
	}
	_ = alice.SendMessage("crier@localhost/crier", "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody("crier@localhost/crier", "PONG alice"))
	if got := gauge(t, h.bot, "crier_config_last_reload_failed"); got != 1 {
		t.Fatalf("reload failure metric = %v", got)
	}

	// Rooms: add one, drop the lobby.
	rooms := botConfig(t, srv, "")
	rooms.Rooms[0].JID = "other@conference.localhost"
	if err := h.bot.Reload(rooms); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !(contains(srv.Occupants("other@conference.localhost"), "crier") && !contains(srv.Occupants(room), "crier")) {
		if time.Now().After(deadline) {
			t.Fatalf("room change not applied: lobby %v other %v", srv.Occupants(room), srv.Occupants("other@conference.localhost"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShutdownLeavesRooms(t *testing.T) {
	h := readyBot(t, "")
	alice := joinRoom(t, h, "alice")
	start := time.Now()
	h.shutdown()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	alice.Expect(t, 3*time.Second, func(s xmpptest.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/crier" && s.Type == "unavailable"
	})
}

func TestOpsEndpoints(t *testing.T) {
	srv := startServer(t)
	h := startBot(t, srv, botConfig(t, srv, ""), Options{})
	reloads := 0
	ts := httptest.NewServer(h.bot.OpsHandler(func() error { reloads++; return nil }))
	defer ts.Close()
	h.waitReady(5 * time.Second)
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/-/healthy"); code != 200 {
		t.Fatalf("healthy: %d", code)
	}
	if code, body := get("/-/ready"); code != 200 || !strings.Contains(body, "joined") {
		t.Fatalf("ready: %d %s", code, body)
	}
	if code, body := get("/-/leader"); code != 200 || !strings.Contains(body, "leading") {
		t.Fatalf("leader without [ha]: %d %s", code, body)
	}
	_, metrics := get("/metrics")
	for _, m := range []string{"crier_connected 1", "crier_rooms_joined 1", `crier_stanzas_total{direction="in",kind="presence"}`, "crier_outbox_depth"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %q", m)
		}
	}
	if resp, err := http.Post(ts.URL+"/-/reload", "", nil); err != nil || resp.StatusCode != http.StatusForbidden || reloads != 0 {
		t.Fatalf("reload without %s: %v %v %d, want 403 and no reload", ReloadHeader, err, resp, reloads)
	}
	req, _ := http.NewRequest("POST", ts.URL+"/-/reload", nil)
	req.Header.Set(ReloadHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || reloads != 1 {
		t.Fatalf("reload: %v %v %d", err, resp, reloads)
	}
	srv.DropAll()
	srv.SetDeaf(true) // keep it down long enough to see 503
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := get("/-/ready"); code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready stayed 200 while disconnected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.SetDeaf(false)
}

func TestLongReplySplit(t *testing.T) {
	srv := startServer(t)
	cfg := botConfig(t, srv, `
[[rules]]
name = "long"
match = "^!long$"
reply = "{{.Body}} `+strings.Repeat("é", 400)+`"
`)
	cfg.Limits.MaxBodyBytes = 300
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	alice := h.user("alice")
	_ = alice.SendMessage("crier@localhost/crier", "chat", "!long")
	var got strings.Builder
	for got.Len() < len("!long ")+800 {
		s := alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool { return s.Name == "message" && s.Body != "" })
		if len(s.Body) > 300 {
			t.Fatalf("part of %d bytes over the 300 limit", len(s.Body))
		}
		got.WriteString(s.Body)
	}
	if !strings.HasSuffix(got.String(), strings.Repeat("é", 400)) {
		t.Fatalf("reassembled reply differs")
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestHistoryAndLoopsIgnored(t *testing.T) {
	srv := startServer(t)
	cfg := botConfig(t, srv, `
[[rules]]
name = "all"
match = "^say (.*)$"
reply = "said {{index .Match 1}}"
`)
	cfg.Limits.SenderReplies.N, cfg.Limits.SenderReplies.Per = 3, time.Minute
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	alice := joinRoom(t, h, "alice")
	ctx := context.Background()
	// A delayed (history) message never triggers anything.
	if err := alice.Send(ctx, "<message to='"+room+"' type='groupchat'><body>!ping</body><delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/></message>"); err != nil {
		t.Fatal(err)
	}
	// Ten triggers from one sender: the loop breaker lets three through.
	for i := 0; i < 10; i++ {
		_ = alice.SendMessage(room, "groupchat", fmt.Sprintf("say %d", i))
	}
	time.Sleep(500 * time.Millisecond)
	replies := 0
	for _, s := range alice.Drain() {
		if s.Name == "message" && s.From == room+"/crier" {
			if strings.HasPrefix(s.Body, "pong") {
				t.Fatalf("answered a delayed message: %s", s.Raw)
			}
			replies++
		}
	}
	if replies != 3 {
		t.Fatalf("got %d replies to 10 messages with a 3/1m sender limit", replies)
	}
}

func TestSubscriptionPolicy(t *testing.T) {
	h := readyBot(t, "")
	alice := h.user("alice")
	if err := alice.Send(context.Background(), "<presence to='crier@localhost' type='subscribe'/>"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool {
		return s.Name == "presence" && s.Type == "subscribed" && strings.HasPrefix(s.From, "crier@localhost")
	})
}

func TestNonexistentRoomRetries(t *testing.T) {
	srv := startServer(t)
	cfg := botConfig(t, srv, "")
	cfg.Rooms[0].JID = "lobby@nowhere.localhost"
	h := startBot(t, srv, cfg, Options{})
	h.waitNotReady(5*time.Second, "join error")
	if got := counter(t, h.bot, "crier_room_rejoins_total"); got < 1 {
		t.Fatalf("no rejoin scheduled: %v", got)
	}
}
