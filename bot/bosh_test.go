package bot

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"crier/internal/config"
	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/miniserver/boshcm"
	"crier/internal/xmpptest"
	"crier/transport/bosh"
)

// startBOSHServer is a mini server with its HTTP listener (BOSH at
// /http-bind); its debug log goes to the test log when the test fails.
func startBOSHServer(tb testing.TB) *miniserver.Server {
	tb.Helper()
	logs := &crierproc.Buffer{}
	// Registered first, so that it runs once the server has stopped.
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("server log:\n%s", logs.String())
		}
	})
	return startMini(tb, miniserver.Config{
		HTTPAddr: "127.0.0.1:0",
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
}

// boshConfig is the config of a bot connected over BOSH to srv.
func boshConfig(tb testing.TB, srv *miniserver.Server) *config.Config {
	tb.Helper()
	return loadConfig(tb, fmt.Sprintf("transport = \"bosh\"\nbosh_url = %q\nkeepalive = \"2s\"\nkeepalive_timeout = \"2s\"", srv.BOSHURL()), "")
}

// TestBOSHSession runs the whole bot over BOSH: login, room, rules, iq,
// and a server restart.
func TestBOSHSession(t *testing.T) {
	srv := startBOSHServer(t)
	h := startBot(t, srv, boshConfig(t, srv), Options{})
	h.waitReady(10 * time.Second)

	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	_ = alice.SendMessage("crier@localhost/crier", "chat", "!echo over http")
	alice.Expect(t, 5*time.Second, isBody("crier@localhost/crier", "over http"))
	v, err := alice.IQ(context.Background(), "crier@localhost/crier", "get", "<query xmlns='jabber:iq:version'/>")
	if err != nil || !strings.Contains(v.Raw, "crier") {
		t.Fatalf("version over BOSH: %v %s", err, v.Raw)
	}
	if !strings.Contains(h.logs.String(), "transport=bosh") {
		t.Fatalf("the bot did not connect over BOSH:\n%s", h.logs.String())
	}

	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The restart forgot every room: the bot is back once it is an
	// occupant again (Ready alone may still describe the old session).
	h.waitRejoined(15 * time.Second)
	alice2 := h.user("alice")
	if err := alice2.Join(room, "alice"); err != nil {
		t.Fatal(err)
	}
	_ = alice2.SendMessage(room, "groupchat", "!ping")
	alice2.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
}

// waitRejoined waits until the bot is an occupant of room on the server and
// ready.
func (h *harness) waitRejoined(timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if slices.Contains(h.srv.Occupants(room), "crier") {
			h.waitReady(time.Until(deadline))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("bot not back in %s after %v; occupants %v\nlog:\n%s", room, timeout, h.srv.Occupants(room), h.logs.String())
}

// startOwnCM serves a BOSH connection manager of its own for srv on a
// loopback port, so that a test can reach its sessions; it stops with the
// test.
func startOwnCM(t *testing.T, srv *miniserver.Server) (*boshcm.Handler, string) {
	t.Helper()
	cm := boshcm.New(boshcm.Config{
		Domain: srv.Domain(),
		Serve:  func(c net.Conn) { srv.ServeConn(c, true) },
		Logger: slog.New(slog.DiscardHandler),
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(cm)
	hs.Listener = l
	hs.Start()
	t.Cleanup(func() {
		_ = cm.Close()
		hs.Close()
	})
	return cm, hs.URL + "/http-bind"
}

// TestBOSHTerminatedByServer has the connection manager end the bot's BOSH
// session with each kind of terminal condition: the bot's session ends
// with an error naming the condition, the bot reconnects (a new BOSH
// session), rejoins and answers again, and no goroutine is left behind by
// the sessions that ended.
func TestBOSHTerminatedByServer(t *testing.T) {
	srv := startBOSHServer(t)
	cm, url := startOwnCM(t, srv)
	cfg := boshConfig(t, srv)
	cfg.XMPP.BOSHURL = url
	h := startBot(t, srv, cfg, Options{SelfPing: -1})
	h.waitReady(10 * time.Second)
	alice := joinRoom(t, h, "alice")
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/crier" && s.Type == ""
	})
	waitIdle := func() int {
		// Let connection setup settle (kept-alive connections, timers)
		// before counting.
		time.Sleep(300 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	baseline := waitIdle()

	for i, cond := range []string{"remote-connection-failed", "policy-violation", "system-shutdown", ""} {
		sids := cm.SIDs()
		if len(sids) != 1 {
			t.Fatalf("round %d: %d BOSH sessions live, want the bot's one", i, len(sids))
		}
		lost := strings.Count(h.logs.String(), "session lost")
		if !cm.Terminate(sids[0], cond) {
			t.Fatalf("round %d: session %s was not live", i, sids[0])
		}
		// The bot notices at once (the held request carries the
		// terminate), says why, and comes back on a new session.
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(h.logs.String(), "session lost") == lost {
			if time.Now().After(deadline) {
				t.Fatalf("round %d (%q): the bot did not notice the end of its session\n%s", i, cond, h.logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if cond != "" {
			want := "err=" + bosh.StreamCondition(cond)
			lines := strings.Split(h.logs.String(), "\n")
			var last string
			for _, l := range lines {
				if strings.Contains(l, "session lost") {
					last = l
				}
			}
			if !strings.Contains(last, want) && !strings.Contains(last, cond) {
				t.Errorf("round %d: the session's end does not name %q: %s", i, cond, last)
			}
		}
		deadline = time.Now().Add(10 * time.Second)
		for {
			now := cm.SIDs()
			if len(now) == 1 && now[0] != sids[0] && slices.Contains(srv.Occupants(room), "crier") {
				if ok, _ := h.bot.Ready(); ok {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no new BOSH session in the room: sids %v, occupants %v\n%s", i, now, srv.Occupants(room), h.logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		_ = alice.SendMessage(room, "groupchat", "!ping")
		alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	}

	// Four sessions ended: whatever each left behind would add up here.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := waitIdle()
		if n <= baseline+2 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d with the first session, %d after four reconnects\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
		}
	}
}
