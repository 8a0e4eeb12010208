package ha

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/natstest"
)

// TestPausedLeaderStaysSilent is a split-brain attempt: the leader is
// frozen (SIGSTOP) for longer than its lease, the other instance takes
// over, and the old leader is thawed (SIGCONT) still believing, for an
// instant, that it leads, with the !pings it was sent while frozen waiting
// in its socket. By its own clock its lease is over: it answers none of
// them and writes nothing it had queued; every !ping is answered once.
func TestPausedLeaderStaysSilent(t *testing.T) {
	srv := crierproc.StartMini(t, "alice")
	ns := natstest.Start(t)
	tables := fmt.Sprintf("[nats]\nurl = %q\n\n[ha]\nbucket = \"crier-ha\"\n\n[[rooms]]\njid = %q\nnick = \"crier\"\n\n"+
		"[[rules]]\nname = \"ping\"\nmatch = \"^!ping\"\nreply = \"pong {{.Body}}\"\n", ns.URL(), room)
	a := crierproc.Run(t, srv.XMPP("one"), tables)
	a.WaitReady(t, 30*time.Second)
	waitMetric(t, a, "crier_ha_leader", 1, 15*time.Second)
	b := crierproc.Run(t, srv.XMPP("two"), tables)
	b.WaitReady(t, 30*time.Second)
	alice := srv.Dial(t, "alice")
	if err := alice.Join(room, "alice"); err != nil {
		t.Fatal(err)
	}
	answers := map[string][]string{} // ping -> the occupants that answered
	collect := func() {
		for _, s := range alice.Drain() {
			if s.Name == "message" && strings.HasPrefix(s.Body, "pong !ping ") && strings.HasPrefix(s.From, room+"/") {
				p := strings.TrimPrefix(s.Body, "pong ")
				answers[p] = append(answers[p], s.From)
			}
		}
	}
	seq := 0
	ping := func() string {
		seq++
		body := fmt.Sprintf("!ping %d", seq)
		_ = alice.SendMessage(room, "groupchat", body)
		return body
	}
	wait := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			collect()
		}
	}
	first := ping()
	wait(time.Second)
	if n := len(answers[first]); n != 1 {
		t.Fatalf("%d answers before the freeze, want 1", n)
	}

	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := true
	defer func() {
		if frozen {
			_ = a.Signal(syscall.SIGCONT)
		}
	}()
	// Sent to the frozen leader (still in the room): they wait in its
	// socket.
	var whileFrozen []string
	for range 3 {
		whileFrozen = append(whileFrozen, ping())
		wait(300 * time.Millisecond)
	}
	waitMetric(t, b, "crier_ha_leader", 1, 15*time.Second)
	t.Logf("the other instance leads; thawing the old leader")
	if err := a.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	frozen = false
	waitMetric(t, a, "crier_ha_leader", 0, 10*time.Second)
	wait(2 * time.Second)
	for _, p := range whileFrozen {
		if n := len(answers[p]); n > 0 {
			t.Fatalf("%q, sent while the old leader was frozen, was answered %d times (%v): the stale leader spoke", p, n, answers[p])
		}
	}
	// The new leader answers, once each.
	answered := false
	for i := 0; i < 30 && !answered; i++ {
		p := ping()
		wait(500 * time.Millisecond)
		switch n := len(answers[p]); {
		case n > 1:
			t.Fatalf("%d answers to %q after the thaw", n, p)
		case n == 1:
			answered = true
		}
	}
	if !answered {
		t.Fatalf("the new leader never answered\n%s", b.LogTail(40))
	}
	for range 3 {
		p := ping()
		wait(700 * time.Millisecond)
		if n := len(answers[p]); n != 1 {
			t.Fatalf("%d answers to %q after the thaw, want 1", n, p)
		}
	}
	// The pings that waited in the frozen leader's socket reach it after
	// the thaw, and none is answered (checked above). Where they stop
	// depends on which goroutine runs first after SIGCONT: the lease's
	// step-down leaves the room, and a room message then comes from a room
	// the bot is not in (rejected, unknown_room); read before it, the chain
	// leaves it to the leader (standby event); read before the lease check,
	// the outbox's last check refuses the answer (fenced). Unless the server
	// gave up on that connection meanwhile: then they never reach it.
	left := metric(t, a, "crier_ha_standby_events_total")
	fenced := a.ReadMetric(t, "crier_outbox_dropped_total", "reason", "fenced")
	unknown := a.ReadMetric(t, "crier_rejected_total", "reason", "unknown_room")
	switch connects := metric(t, a, "crier_connects_total"); {
	case left+fenced+unknown >= 1:
		t.Logf("the thawed instance left %v events to the leader, refused %v answers at the outbox and %v messages of a room it had left", left, fenced, unknown)
	case connects > 1:
		t.Logf("the thawed instance's connection was lost while frozen (%v connects): the pings sent meanwhile never reached it", connects)
	default:
		t.Errorf("the thawed instance, still on its first connection, did not account for the pings it got while frozen (standby events %v, fenced drops %v, unknown-room rejections %v)", left, fenced, unknown)
	}
}
