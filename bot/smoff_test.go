package bot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

// TestStreamManagementOff: with stream_management = false the bot does not
// enable XEP-0198 although the server offers it, still confirms what it
// sends (by pings), answers in room and chat, and after a cut binds anew
// and joins its room again instead of resuming.
func TestStreamManagementOff(t *testing.T) {
	srv := startServer(t)
	cfg := loadConfig(t, fmt.Sprintf("address = %q\nkeepalive = \"1s\"\nkeepalive_timeout = \"1s\"\nstream_management = false", srv.Addr()), "")
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	if !strings.Contains(h.logs.String(), "stream management is off") {
		t.Errorf("no log line says stream management is off\nlog:\n%s", h.logs.String())
	}
	h.bot.connMu.Lock()
	conn := h.bot.conn
	h.bot.connMu.Unlock()
	if conn == nil {
		t.Fatal("no connection")
	}
	if st := conn.SMStats(); st.Enabled {
		t.Fatalf("stream management enabled although the config turns it off: %+v", st)
	}

	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	_ = alice.SendMessage("crier@localhost", "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(botFull, "pong alice"))

	connects := counter(t, h.bot, "crier_connects_total")
	since := alice.Seq()
	if err := srv.Cut(botFull); err != nil {
		t.Fatal(err)
	}
	// The room sees the bot leave with its lost session and come back.
	alice.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
		return s.Seq > since && s.Name == "presence" && s.From == room+"/crier" && s.Type == "unavailable"
	})
	alice.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
		return s.Seq > since && s.Name == "presence" && s.From == room+"/crier" && s.Type == ""
	})
	h.waitReady(10 * time.Second)
	if got := counter(t, h.bot, "crier_connects_total"); got != connects+1 {
		t.Fatalf("connects %v -> %v, want one more", connects, got)
	}
	if n := srv.Stats().Resumed; n != 0 {
		t.Fatalf("server resumed %d sessions although stream management is off", n)
	}
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
}
