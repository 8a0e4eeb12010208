package bot

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/miniserver"
)

// startWSBot runs a bot over WebSocket against srv (its HTTP listener).
func startWSBot(t *testing.T, srv *miniserver.Server) *harness {
	t.Helper()
	cfg := loadConfig(t, fmt.Sprintf("transport = \"websocket\"\nwebsocket_url = %q\nkeepalive = \"2s\"\nkeepalive_timeout = \"2s\"", srv.WebSocketURL()),
		"[limits]\nmax_body_bytes = 50000")
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(10 * time.Second)
	return h
}

// TestWebSocketSession runs the whole bot over WebSocket (RFC 7395):
// login, room, rules in the room and in chat, iq; a cut connection is
// resumed (the bot stays in its room and answers what came meanwhile);
// after a server restart it logs in again and rejoins.
func TestWebSocketSession(t *testing.T) {
	srv := startBOSHServer(t) // the HTTP listener serves /xmpp-websocket too
	h := startWSBot(t, srv)
	if !strings.Contains(h.logs.String(), "transport=websocket") {
		t.Fatalf("the bot did not connect over WebSocket:\n%s", h.logs.String())
	}

	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	_ = alice.SendMessage(botFull, "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(botFull, "pong alice"))
	// A stanza far larger than one read or one TCP segment.
	big := strings.Repeat("x", 40<<10)
	_ = alice.SendMessage(botFull, "chat", "!echo "+big)
	alice.Expect(t, 5*time.Second, isBody(botFull, big))
	v, err := alice.IQ(context.Background(), botFull, "get", "<query xmlns='jabber:iq:version'/>")
	if err != nil || !strings.Contains(v.Raw, "crier") {
		t.Fatalf("version over WebSocket: %v %s", err, v.Raw)
	}

	// A network failure: the session is resumed, not bound again.
	since := alice.Seq()
	if err := srv.Cut(botFull); err != nil {
		t.Fatal(err)
	}
	_ = alice.SendMessage(botFull, "chat", "!ping")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 10*time.Second, isBody(botFull, "pong alice"))
	alice.Expect(t, 10*time.Second, isBody(room+"/crier", "pong alice"))
	h.waitReady(5 * time.Second)
	if n := srv.Stats().Resumed; n != 1 {
		t.Fatalf("server resumed %d sessions, want 1\nlog:\n%s", n, h.logs.String())
	}
	if got := counter(t, h.bot, "crier_sessions_resumed_total"); got != 1 {
		t.Fatalf("crier_sessions_resumed_total = %v, want 1", got)
	}
	time.Sleep(300 * time.Millisecond)
	for _, s := range alice.Drain() {
		if s.Seq <= since {
			continue
		}
		if s.Name == "presence" && s.From == room+"/crier" {
			t.Errorf("the bot's presence in the room changed although the session was resumed: type %q", s.Type)
		}
		if s.Name == "message" && s.Body == "pong alice" {
			t.Errorf("a pong came twice after the resumption")
		}
	}

	// A server restart: no session to resume, a new login and a rejoin.
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitRejoined(15 * time.Second)
	alice2 := h.user("alice")
	if err := alice2.Join(room, "alice"); err != nil {
		t.Fatal(err)
	}
	_ = alice2.SendMessage(room, "groupchat", "!ping")
	alice2.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
}
