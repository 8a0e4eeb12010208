package natsrelay

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crier/plugins"
)

// haRelay is a JetStream relay of instances sharing the [ha] bucket "ha".
const haRelay = `
[[nats.relay]]
subject = "ev.>"
to = ["ops@example.org"]
stream = "EV"
durable = "crier-ev"
nak_delay = "50ms"
max_ack_pending = 4

[ha]
bucket = "ha"
`

func createEV(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}}); err != nil {
		t.Fatal(err)
	}
}

// TestHAStandbyDelivers: a standby takes pushes to users from the shared
// consumer and sends them itself (marked as shared work); the leader's
// share and the standby's add up to every message exactly once.
func TestHAStandbyDelivers(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	createEV(t, js)
	leader, standby := newFakeBot(), newFakeBot()
	standby.standby.Store(true)
	// Sends that take a while keep each instance's pulls short, so that
	// JetStream hands messages to both.
	leader.delay, standby.delay = 20*time.Millisecond, 20*time.Millisecond
	startPlugin(t, loadConfig(t, srv.ClientURL(), haRelay), leader)
	startPlugin(t, loadConfig(t, srv.ClientURL(), haRelay), standby)
	const n = 40
	for i := range n {
		jsPublish(t, js, fmt.Sprintf("ev.%d", i), fmt.Sprintf("push %d", i), fmt.Sprintf("id-%d", i))
	}
	waitFor(t, 15*time.Second, "every push relayed", func() bool {
		return len(leader.messages())+len(standby.messages()) >= n
	})
	time.Sleep(300 * time.Millisecond)
	got := map[string]int{}
	for _, m := range append(leader.messages(), standby.messages()...) {
		got[m.Body]++
	}
	for i := range n {
		if c := got[fmt.Sprintf("push %d", i)]; c != 1 {
			t.Errorf("push %d sent %d times, want 1 (%d by the leader, %d by the standby)", i, c, len(leader.messages()), len(standby.messages()))
		}
	}
	if len(standby.messages()) == 0 || len(leader.messages()) == 0 {
		t.Fatalf("not shared: the leader relayed %d, the standby %d", len(leader.messages()), len(standby.messages()))
	}
	for _, m := range standby.messages() {
		if !m.Work || m.Type == "groupchat" {
			t.Fatalf("the standby sent %+v: want shared work to a user", m)
		}
	}
	t.Logf("leader %d, standby %d of %d", len(leader.messages()), len(standby.messages()), n)
}

// TestHAStandbyHandsRoomsOver: a message for a room taken by a standby goes
// back to JetStream; the leader sends it, and the user among its recipients
// gets it once, from the standby, recorded in the shared window.
func TestHAStandbyHandsRoomsOver(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	createEV(t, js)
	leader, standby := newFakeBot(), newFakeBot()
	standby.standby.Store(true)
	leader.offline.Store(true) // no XMPP session yet: it does not pull
	cfg := strings.Replace(haRelay, "stream =", "format = \"json\"\nstream =", 1)
	startPlugin(t, loadConfig(t, srv.ClientURL(), cfg), leader)
	startPlugin(t, loadConfig(t, srv.ClientURL(), cfg), standby)
	jsPublish(t, js, "ev.room", `{"text":"to the room","to":["joined@rooms.example.org","ops@example.org"]}`, "room-1")
	waitFor(t, 10*time.Second, "the standby hands the room over", func() bool {
		return metricValue(t, standby.reg, "crier_nats_relay_handovers_total", "relay", "ev.>") >= 1
	})
	leader.offline.Store(false)
	waitFor(t, 15*time.Second, "the leader sends to the room", func() bool {
		for _, m := range leader.messages() {
			if m.To == "joined@rooms.example.org" {
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond)
	count := func(bot *fakeBot, to string) int {
		n := 0
		for _, m := range bot.messages() {
			if m.To == to {
				n++
			}
		}
		return n
	}
	if n := count(standby, "joined@rooms.example.org"); n != 0 {
		t.Fatalf("the standby sent %d messages into the room", n)
	}
	if n := count(leader, "joined@rooms.example.org"); n != 1 {
		t.Fatalf("the leader sent %d messages into the room, want 1", n)
	}
	if a, b := count(standby, "ops@example.org"), count(leader, "ops@example.org"); a+b != 1 {
		t.Fatalf("the user got %d copies (%d from the standby, %d from the leader), want 1", a+b, a, b)
	}
}

// TestHASharedWindow: an instance that sent a message to one recipient and
// failed the other (nak) stops; the redelivery reaches another instance,
// which learns from the shared window who has it and sends only the rest.
func TestHASharedWindow(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	createEV(t, js)
	cfg := `
[[nats.relay]]
subject = "ev.>"
to = ["a@example.org", "b@example.org"]
stream = "EV"
durable = "crier-ev"
nak_delay = "3s"

[ha]
bucket = "ha"
`
	first := newFakeBot()
	first.outcome = func(m plugins.Message, n int) error {
		if m.To == "b@example.org" {
			return errLost
		}
		return nil
	}
	p1 := startPlugin(t, loadConfig(t, srv.ClientURL(), cfg), first)
	jsPublish(t, js, "ev.x", "once each", "msg-1")
	waitFor(t, 10*time.Second, "the first attempt", func() bool {
		return metricValue(t, first.reg, "crier_nats_relay_shared_window_total", "relay", "ev.>", "result", "recorded") == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	second := newFakeBot()
	startPlugin(t, loadConfig(t, srv.ClientURL(), cfg), second)
	waitFor(t, 15*time.Second, "the redelivery", func() bool { return len(second.messages()) >= 1 })
	time.Sleep(200 * time.Millisecond)
	if got := bodies(second.messages()); got != "once each→b@example.org(headline)" {
		t.Fatalf("the second instance sent %s, want only b's copy", got)
	}
	if v := metricValue(t, second.reg, "crier_nats_relay_shared_window_total", "relay", "ev.>", "result", "hit"); v != 1 {
		t.Fatalf("shared window hits %v, want 1", v)
	}
	// Both have it now: a third delivery (a lost ack) sends nothing.
	sw := second.plugin.shared.Load()
	rec, err := sw.lookup(context.Background(), "crier-ev", "id:msg-1")
	if err != nil || fmt.Sprint(rec) != "[a@example.org b@example.org]" {
		t.Fatalf("shared record %v %v, want both recipients", rec, err)
	}
}

// TestHACoreLeaderOnly: every instance hears a core NATS message; only the
// leader sends it.
func TestHACoreLeaderOnly(t *testing.T) {
	srv := startNATS(t)
	nc, _ := connect(t, srv)
	cfg := "[[nats.relay]]\nsubject = \"core.>\"\nto = [\"ops@example.org\"]\n\n[ha]\nbucket = \"ha\"\n"
	leader, standby := newFakeBot(), newFakeBot()
	standby.standby.Store(true)
	startPlugin(t, loadConfig(t, srv.ClientURL(), cfg), leader)
	startPlugin(t, loadConfig(t, srv.ClientURL(), cfg), standby)
	if err := nc.Publish("core.x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the leader sends", func() bool { return len(leader.messages()) == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := len(standby.messages()); n != 0 {
		t.Fatalf("the standby sent %d core NATS messages", n)
	}
}

// TestHandoverDelay grows with the deliveries, up to a second.
func TestHandoverDelay(t *testing.T) {
	if a, b := handoverDelay(1), handoverDelay(3); a != 20*time.Millisecond || b != 80*time.Millisecond {
		t.Fatalf("delays %v %v", a, b)
	}
	if d := handoverDelay(100); d != time.Second {
		t.Fatalf("delay after 100 deliveries %v, want 1s", d)
	}
}

// TestHASeenBucketWithoutTTL: a seen-window bucket made elsewhere without a
// TTL is used (its records are then never removed) and said so in the log.
func TestHASeenBucketWithoutTTL(t *testing.T) {
	srv := startNATS(t)
	_, js := connect(t, srv)
	createEV(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "ha" + SeenBucketSuffix}); err != nil {
		t.Fatal(err)
	}
	bot := newFakeBot()
	bot.logs = &syncBuffer{}
	startPlugin(t, loadConfig(t, srv.ClientURL(), haRelay), bot)
	jsPublish(t, js, "ev.x", "still relayed", "x-1")
	waitFor(t, 10*time.Second, "relayed", func() bool { return len(bot.messages()) == 1 })
	if !strings.Contains(bot.logs.String(), "bucket has no TTL") {
		t.Fatalf("no warning about the bucket without a TTL:\n%s", bot.logs.String())
	}
}
