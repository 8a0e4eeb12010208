package bot

import (
	"strings"
	"testing"
	"time"
)

// TestWrongPasswordBacksOff: a refused login is counted, named in
// /-/ready's reason, and retried only at the longest interval.
func TestWrongPasswordBacksOff(t *testing.T) {
	srv := startServer(t)
	cfg := botConfig(t, srv, "")
	cfg.XMPP.Password = "wrong"
	h := startBot(t, srv, cfg, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: time.Second})
	time.Sleep(1500 * time.Millisecond)
	n := labelled(t, h.bot, "crier_disconnects_total", "reason", "auth")
	if n < 1 {
		t.Fatalf("crier_disconnects_total{reason=auth} = %v, want the refusals counted", n)
	}
	// From 10 ms doubling, 1.5 s allows about seven tries; at the
	// longest interval (0.5 to 1 s with jitter) three at most.
	if n > 3 {
		t.Errorf("%v login attempts in 1.5 s: a wrong password is retried too soon", n)
	}
	ok, lines := h.bot.Ready()
	if ok || !strings.Contains(lines[0], "auth") {
		t.Errorf("ready = %v, %q; want not ready, naming the auth failure", ok, lines)
	}
	if strings.Contains(strings.Join(lines, "\n"), "wrong") {
		t.Errorf("the ready reason shows the password: %q", lines)
	}
}
