package bot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// TestShapingServerLosesNothing runs the bot against a server that reads
// each client at 64 KB/s (a shaper like ejabberd's): 200 replies of 1 KB
// queue up in the outbox and all arrive, in order, with nothing dropped.
func TestShapingServerLosesNothing(t *testing.T) {
	srv := startMini(t, miniserver.Config{Shape: 64 << 10})
	cfg := botConfig(t, srv, `
[[rules]]
name = "big"
match = "^!big (\\d+)$"
reply = "{{index .Match 1}} `+strings.Repeat("x", 1000)+`"
`)
	cfg.Limits.SenderReplies.N = 0
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(10 * time.Second)
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: srv.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: srv.CertPool(), Timeout: 10 * time.Second})
	const n = 200
	for i := 0; i < n; i++ {
		if err := alice.SendMessage("crier@localhost/crier", "chat", fmt.Sprintf("!big %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	t.Logf("DBG in=%v hits=%v out=%v depth=%v stats=%+v", counter(t, h.bot, "crier_stanzas_total"), counter(t, h.bot, "crier_rule_hits_total"), 0, h.bot.out.Depth(), srv.Stats())
	for i := 0; i < n; i++ {
		want := fmt.Sprintf("%d ", i)
		s := alice.Expect(t, 30*time.Second, func(s xmpptest.Stanza) bool { return s.Name == "message" && s.Body != "" })
		if !strings.HasPrefix(s.Body, want) {
			t.Fatalf("reply %d out of order: %.20q", i, s.Body)
		}
	}
	if got := counter(t, h.bot, "crier_outbox_dropped_total"); got != 0 {
		t.Fatalf("outbox dropped %v stanzas", got)
	}
}
