package bot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"crier/internal/xmpptest"
	_ "crier/plugins/moderator" // the link measured
)

// BenchmarkReplyPathModerator is BenchmarkReplyPath in the room with the
// moderator off and on: every detector on, a 10,000-entry word list, the
// pings clean (the moderator checks each and lets it through to the rules).
// Run with -count N, the two cases alternate, so the medians of each can be
// set side by side on a loaded machine.
func BenchmarkReplyPathModerator(b *testing.B) {
	words := filepath.Join(b.TempDir(), "words.txt")
	var list strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&list, "blocked%dword\n", i)
	}
	if err := os.WriteFile(words, []byte(list.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	// The flood and repeat limits are far above the benchmark's: the
	// pings (the same text each time) are checked by every detector and
	// acted on by none.
	moderator := fmt.Sprintf(`
[moderator]
words_file = %q
[[moderator.patterns]]
name = "invite"
expr = 'discord\s*(gg|app)'
points = 3
[moderator.flood]
messages = 100000000
bytes = 1000000000
[moderator.raid]
messages = 100000000
[moderator.repeat]
max = 100000000
[moderator.slowmode]
interval = "0s"
[moderator.links]
allow = ["example.org"]
`, words)
	for _, c := range []struct{ name, extra string }{{"off", ""}, {"on", moderator}} {
		b.Run(c.name, func(b *testing.B) {
			srv := startServer(b)
			cfg := loadConfig(b, fmt.Sprintf("address = %q", srv.Addr()), c.extra)
			cfg.Limits.SenderReplies = benchConfig(b, srv.Addr()).Limits.SenderReplies
			benchBot(b, srv, cfg)
			alice, to := benchClient(b, srv, "groupchat")
			ctx, cancel := context.WithTimeout(context.Background(), benchLimit)
			defer cancel()
			sent, got := 0, 0
			send := func() {
				if err := alice.SendMessage(to, "groupchat", "!ping"); err != nil {
					b.Fatalf("send: %v", err)
				}
				sent++
			}
			next := func() {
				for {
					s, err := alice.Wait(ctx, 0, benchWait, func(s xmpptest.Stanza) bool { return s.Name == "message" })
					if err != nil {
						b.Fatalf("after %d replies of %d pings: %v", got, sent, err)
					}
					if s.Body == "pong alice" {
						got++
						return
					}
					if strings.Contains(s.Body, "warning") {
						b.Fatalf("the moderator acted on a ping: %s", s.Body)
					}
				}
			}
			for range benchInFlight {
				send()
			}
			b.ReportAllocs()
			for b.Loop() {
				next()
				send()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "replies/s")
			for got < sent {
				next()
			}
		})
	}
}
