package ha

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/natstest"
)

// TestPartitionedLeaderStepsDown: the leading crier reaches NATS through a
// proxy, which goes silent (a dead link: no close, no bytes). Its XMPP
// session works on, yet it must stop speaking and leave the room before its
// lease can expire; the other instance then leads and answers. Every !ping,
// during and after the partition and after it heals, gets exactly one
// answer.
func TestPartitionedLeaderStepsDown(t *testing.T) {
	srv := crierproc.StartMini(t, "alice")
	ns := natstest.Start(t)
	proxy := natstest.StartProxy(t, ns.Addr().String())
	tables := func(url string) string {
		return fmt.Sprintf("[nats]\nurl = %q\n\n[ha]\nbucket = \"crier-ha\"\n\n[[rooms]]\njid = %q\nnick = \"crier\"\n\n"+
			"[[rules]]\nname = \"ping\"\nmatch = \"^!ping\"\nreply = \"pong {{.Body}}\"\n", url, room)
	}
	a := crierproc.Run(t, srv.XMPP("one"), tables(proxy.URL()))
	a.WaitReady(t, 30*time.Second)
	waitMetric(t, a, "crier_ha_leader", 1, 15*time.Second)
	b := crierproc.Run(t, srv.XMPP("two"), tables(ns.URL()))
	b.WaitReady(t, 30*time.Second)
	alice := srv.Dial(t, "alice")
	if err := alice.Join(room, "alice"); err != nil {
		t.Fatal(err)
	}
	seq := 0
	// ping sends one numbered !ping and counts its answers for within.
	ping := func(within time.Duration) int {
		seq++
		body := fmt.Sprintf("!ping %d", seq)
		_ = alice.SendMessage(room, "groupchat", body)
		n := 0
		end := time.Now().Add(within)
		for time.Now().Before(end) {
			for _, s := range alice.Drain() {
				if s.Name == "message" && strings.HasPrefix(s.From, room+"/") && s.Body == "pong "+body {
					n++
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return n
	}
	if n := ping(time.Second); n != 1 {
		t.Fatalf("%d answers before the partition, want 1", n)
	}

	proxy.Pause()
	cut := time.Now()
	waitMetric(t, a, "crier_ha_leader", 0, 15*time.Second)
	stepped := time.Since(cut)
	waitMetric(t, b, "crier_ha_leader", 1, 15*time.Second)
	took := time.Since(cut)
	t.Logf("partition: the cut-off leader stopped leading after %v, the other led after %v", stepped.Round(time.Millisecond), took.Round(time.Millisecond))
	if stepped >= took {
		t.Errorf("the cut-off leader stepped down after %v, not before the other took over (%v)", stepped, took)
	}
	// The new leader joins the room; from then on, one answer each.
	answered := false
	for i := 0; i < 30 && !answered; i++ {
		switch n := ping(500 * time.Millisecond); {
		case n > 1:
			t.Fatalf("%d answers to one !ping during the partition", n)
		case n == 1:
			answered = true
		}
	}
	if !answered {
		t.Fatalf("nobody answers during the partition\n%s", b.LogTail(40))
	}
	for range 3 {
		if n := ping(700 * time.Millisecond); n != 1 {
			t.Fatalf("%d answers to one !ping during the partition, want 1", n)
		}
	}
	if occ := srv.Occupants(room); countPrefix(occ, "crier") != 1 {
		t.Fatalf("room occupants %v during the partition: want one crier", occ)
	}

	proxy.Resume()
	time.Sleep(3 * time.Second) // the healed instance reconnects to NATS
	if v := metric(t, a, "crier_ha_leader"); v != 0 {
		t.Fatalf("the healed instance leads again (%v) while the other holds the lease", v)
	}
	for range 3 {
		if n := ping(700 * time.Millisecond); n != 1 {
			t.Fatalf("%d answers to one !ping after the partition healed, want 1", n)
		}
	}
	if v, err := a.Metric("crier_ha_leadership_lost_total"); err != nil || v < 1 {
		t.Errorf("crier_ha_leadership_lost_total on the cut-off instance = %v (%v), want at least 1", v, err)
	}
}
