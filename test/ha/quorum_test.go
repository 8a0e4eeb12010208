package ha

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crier/internal/crierproc"
	"crier/internal/natstest"
)

// TestQuorumLoss: two crier processes on a 3-node NATS cluster (everything
// replicated three times). Two nodes stop: the buckets and the stream have
// no quorum, so the leader cannot renew and stops speaking (no answer to a
// !ping) within a lease; once a node is back a leader answers again, and
// every event accepted before, during (none is: a publish needs the quorum)
// and after the loss reaches the receiver.
func TestQuorumLoss(t *testing.T) {
	cluster := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, cluster.URLs())
	ctx := natstest.Context(t, 30*time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	srv := crierproc.StartMini(t, "bob")
	// Both instances reach the cluster through the node that stays up.
	tables := RelayTables(cluster.Servers[0].URL(), "bob@localhost", 3) +
		"\n[[rules]]\nname = \"ping\"\nmatch = \"^!ping\"\nreply = \"pong {{.Body}}\"\n"
	a := crierproc.Run(t, srv.XMPP("a"), tables)
	a.WaitReady(t, 60*time.Second)
	waitMetric(t, a, "crier_ha_leader", 1, 30*time.Second)
	b := crierproc.Run(t, srv.XMPP("b"), tables)
	b.WaitReady(t, 60*time.Second)
	bob := srv.Dial(t, "bob")
	rc := &receiver{copies: map[string][]string{}, froms: map[string]int{}}
	accepted := 0
	publish := func(n int) {
		t.Helper()
		for range n {
			// A publisher retries what the stream did not confirm (the
			// stream's own group may elect its leader after the lease
			// bucket's); the message id keeps a retry from counting twice.
			var err error
			for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				pctx, cancel := context5s()
				_, err = js.Publish(pctx, "ev.q", []byte(fmt.Sprintf("ev %d", accepted)), jetstream.WithMsgID(fmt.Sprintf("q-%d", accepted)))
				cancel()
				if err == nil || time.Now().After(end) {
					break
				}
			}
			if err != nil {
				t.Fatalf("publish with the quorum, for 30 s: %v", err)
			}
			accepted++
		}
	}
	waitAll := func(within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); rc.distinct() < accepted && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			rc.collect(bob)
		}
		if got := rc.distinct(); got < accepted {
			t.Fatalf("%d of %d accepted events received", got, accepted)
		}
	}
	pings := 0
	ping := func(to string, within time.Duration) int {
		pings++
		body := fmt.Sprintf("!ping %d", pings)
		_ = bob.SendMessage(to, "chat", body)
		n := 0
		for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			for _, s := range bob.Drain() {
				switch {
				case s.Name == "message" && s.Body == "pong "+body:
					n++
				case s.Name == "message" && strings.HasPrefix(s.Body, "ev "):
					// A push: keep it for the count.
					rc.mu.Lock()
					rc.copies[s.Body] = append(rc.copies[s.Body], "")
					rc.mu.Unlock()
				}
			}
		}
		return n
	}
	publish(200)
	waitAll(60 * time.Second)
	if n := ping("crier@localhost/a", time.Second); n != 1 {
		t.Fatalf("%d answers from the leader before the quorum loss, want 1", n)
	}

	lost := time.Now()
	cluster.Servers[1].Stop()
	cluster.Servers[2].Stop()
	waitMetric(t, a, "crier_ha_leader", 0, 15*time.Second)
	t.Logf("quorum lost: the leader stopped leading after %v", time.Since(lost).Round(time.Millisecond))
	if v := metric(t, b, "crier_ha_leader"); v != 0 {
		t.Fatalf("the standby leads without a quorum (%v)", v)
	}
	for _, to := range []string{"crier@localhost/a", "crier@localhost/b"} {
		if n := ping(to, time.Second); n != 0 {
			t.Fatalf("%s answered %d times without a quorum", to, n)
		}
	}
	pctx, cancel := context5s()
	if _, err := js.Publish(pctx, "ev.q", []byte("ev lost"), jetstream.WithMsgID("q-lost")); err == nil {
		t.Fatal("a publish was accepted without a quorum")
	}
	cancel()

	back := time.Now()
	cluster.Servers[1].Restart(t)
	led := false
	for deadline := time.Now().Add(60 * time.Second); !led && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		va, _ := a.Metric("crier_ha_leader")
		vb, _ := b.Metric("crier_ha_leader")
		led = va+vb == 1
	}
	if !led {
		t.Fatalf("no leader within 60 s of the quorum's return\n%s", a.LogTail(30))
	}
	t.Logf("quorum back: a leader after %v", time.Since(back).Round(time.Millisecond))
	publish(200)
	waitAll(90 * time.Second)
	answers := ping("crier@localhost/a", 2*time.Second) + ping("crier@localhost/b", 2*time.Second)
	if answers != 1 {
		t.Fatalf("%d answers from the two instances after the quorum came back, want 1 (the leader's)", answers)
	}
	dups := 0
	for _, cs := range rc.copies {
		dups += len(cs) - 1
	}
	t.Logf("%d events accepted, all received, %d duplicates", accepted, dups)
}

func context5s() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}
