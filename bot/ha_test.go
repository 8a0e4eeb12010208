package bot

import (
	"testing"

	"crier/bot/outbox"
	"crier/internal/config"
)

// TestMayWrite: an [ha] standby (no lease won) writes presence and shared
// work to users, and nothing else; without [ha] everything goes out.
func TestMayWrite(t *testing.T) {
	standby := &Bot{}
	standby.cfg.Store(&settings{cfg: &config.Config{HA: config.HA{Bucket: "crier-ha"}}})
	single := &Bot{}
	single.cfg.Store(&settings{cfg: &config.Config{}})
	items := []struct {
		name    string
		it      *outbox.Item
		standby bool
	}{
		{"presence", &outbox.Item{Kind: outbox.Presence, To: "room@conference.example.org/crier", Type: "unavailable"}, true},
		{"relayed push to a user", &outbox.Item{Kind: outbox.Message, To: "ops@example.org", Type: "headline", Work: true}, true},
		{"relayed push to a room", &outbox.Item{Kind: outbox.Message, To: "room@conference.example.org", Type: "groupchat", Room: "room@conference.example.org", Work: true}, false},
		{"an answer", &outbox.Item{Kind: outbox.Message, To: "alice@example.org/phone", Type: "chat"}, false},
		{"a room message", &outbox.Item{Kind: outbox.Message, To: "room@conference.example.org", Type: "groupchat", Room: "room@conference.example.org"}, false},
	}
	for _, c := range items {
		if got := standby.mayWrite(c.it); got != c.standby {
			t.Errorf("standby, %s: mayWrite = %v, want %v", c.name, got, c.standby)
		}
		if !single.mayWrite(c.it) {
			t.Errorf("without [ha], %s: refused", c.name)
		}
	}
}
