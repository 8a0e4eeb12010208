package bot

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"crier/internal/config"
	"crier/internal/miniserver"
)

// startBOSHServer is a mini server with its HTTP listener (BOSH at
// /http-bind).
func startBOSHServer(t *testing.T) *miniserver.Server {
	t.Helper()
	logs := &syncBuffer{}
	srv, err := miniserver.Start(context.Background(), miniserver.Config{
		Domain:   "localhost",
		Addr:     "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Accounts: map[string]string{"crier@localhost": "botpw", "alice@localhost": "alicepw"},
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return srv
}

func boshConfig(t *testing.T, srv *miniserver.Server) *config.Config {
	t.Helper()
	src := fmt.Sprintf(`
[xmpp]
jid = "crier@localhost"
password = "botpw"
resource = "crier"
transport = "bosh"
bosh_url = %q
keepalive = "2s"
keepalive_timeout = "2s"
connect_timeout = "5s"

[[rooms]]
jid = %q
nick = "crier"
%s`, srv.BOSHURL(), room, baseRules)
	cfg, err := config.LoadBytes("bosh.toml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// TestBOSHSession runs the whole bot over BOSH: login, room, rules, iq,
// and a server restart.
func TestBOSHSession(t *testing.T) {
	srv := startBOSHServer(t)
	h := startBot(t, srv, boshConfig(t, srv), Options{})
	h.waitReady(10 * time.Second)

	alice := h.user("alice")
	if err := alice.Join(room, "alice"); err != nil {
		t.Fatal(err)
	}
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
