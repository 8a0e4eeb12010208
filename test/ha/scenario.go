// Package ha holds the scenarios of several crier instances sharing an
// [ha] bucket: the tests of this directory run them against the mini
// server, test/peers against Prosody and ejabberd.
package ha

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crier/internal/crierproc"
	"crier/internal/natstest"
	"crier/internal/xmpptest"
)

// MaxAckPending is the relay consumer's bound on messages in flight, over
// every instance: no more can be unacknowledged when the leader dies.
const MaxAckPending = 256

// RelayTables is the [nats], [ha] and relay config of every instance: one
// JetStream relay to the user to, shared by the instances.
func RelayTables(urls, to string, replicas int) string {
	return fmt.Sprintf(`[nats]
url = %q

[[nats.relay]]
subject = "ev.>"
to = [%q]
stream = "EV"
durable = "crier-ev"
max_ack_pending = %d
ack_wait = "5s"

[ha]
bucket = "crier-ha"
replicas = %d
`, urls, to, MaxAckPending, replicas)
}

// receiver collects a user's pushes: body -> origin-ids of its copies.
type receiver struct {
	mu     sync.Mutex
	copies map[string][]string
	froms  map[string]int // sender -> pushes received from it
	total  int
}

func (r *receiver) collect(c *xmpptest.Client) {
	for _, s := range c.Drain() {
		if s.Name != "message" || !strings.HasPrefix(s.Body, "ev ") {
			continue
		}
		oid := ""
		if n := s.Find("urn:xmpp:sid:0", "origin-id"); n != nil {
			oid = n.Attr("id")
		}
		r.mu.Lock()
		r.copies[s.Body] = append(r.copies[s.Body], oid)
		r.froms[s.From]++
		r.total++
		r.mu.Unlock()
	}
}

func (r *receiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.copies)
}

// LoadScenario is where FailoverUnderLoad runs.
type LoadScenario struct {
	// Events is how many JetStream events are pushed.
	Events int
	// XMPP is crier's [xmpp] table for one instance's resource.
	XMPP func(resource string) crierproc.XMPP
	// Receiver is the JID the events are relayed to; Dial logs it in.
	Receiver string
	Dial     func(t *testing.T) *xmpptest.Client
	// Settle bounds the wait for the last events (4 minutes if zero).
	Settle time.Duration
}

// LoadResult is what FailoverUnderLoad saw.
type LoadResult struct {
	Events, Received, Duplicates int
	// BySender counts the pushes received from each instance's full JID.
	BySender map[string]int
}

// FailoverUnderLoad runs three crier processes sharing one JetStream relay
// on a 3-node NATS cluster (everything replicated three times). While
// s.Events events are pushed, the leading crier is SIGKILLed and one NATS
// node is stopped and restarted. Every event must reach the receiver; the
// duplicates are counted and returned. The only duplicates possible are
// stanzas the killed instance wrote whose acknowledgement it never saw (it
// died first): no record says the receiver has them, so another instance
// sends them again. They are bounded by the messages in flight
// (MaxAckPending) and carry the same XEP-0359 origin-id as the first copy,
// so a receiver that honours it sees each event exactly once; both are
// checked. It fails the test on a lost event, on a copy with another
// origin-id, beyond the bound, and when one instance relayed everything.
func FailoverUnderLoad(t *testing.T, s LoadScenario) LoadResult {
	n := s.Events
	settle := s.Settle
	if settle == 0 {
		settle = 4 * time.Minute
	}
	cluster := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, cluster.URLs())
	ctx := natstest.Context(t, 30*time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	tables := RelayTables(cluster.URLs(), s.Receiver, 3)
	start := func(resource string) *crierproc.Daemon {
		d := crierproc.Run(t, s.XMPP(resource), tables)
		d.WaitReady(t, 60*time.Second)
		return d
	}
	a := start("a")
	waitMetric(t, a, "crier_ha_leader", 1, 30*time.Second)
	b, c := start("b"), start("c")
	rcv := s.Dial(t)
	rc := &receiver{copies: map[string][]string{}, froms: map[string]int{}}
	// The publisher: every event once, with its id (JetStream drops a
	// second publish of an id within its duplicate window).
	pubDone := make(chan error, 1)
	go func() {
		for i := range n {
			_, err := js.PublishAsync(fmt.Sprintf("ev.%d", i%10), []byte(fmt.Sprintf("ev %d", i)), jetstream.WithMsgID(fmt.Sprintf("ev-%d", i)))
			if err != nil {
				pubDone <- err
				return
			}
			if i%500 == 499 {
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(30 * time.Second):
					pubDone <- fmt.Errorf("publish acks not back after 30s at event %d", i)
					return
				}
			}
		}
		select {
		case <-js.PublishAsyncComplete():
			pubDone <- nil
		case <-time.After(30 * time.Second):
			pubDone <- fmt.Errorf("publish acks not back after 30s")
		}
	}()

	// Kill the leader a third of the way through, then stop one NATS
	// node for a while and restart it.
	started := time.Now()
	deadline := started.Add(settle)
	killed, restarted := false, false
	var killedAt time.Time
	node := cluster.Servers[2]
	for rc.distinct() < n && time.Now().Before(deadline) {
		rc.collect(rcv)
		switch got := rc.distinct(); {
		case !killed && got >= n/3:
			a.Kill(t)
			killed, killedAt = true, time.Now()
			t.Logf("leader SIGKILLed after %d of %d events", got, n)
			node.Stop()
		case killed && !restarted && time.Since(killedAt) > 3*time.Second:
			node.Restart(t)
			restarted = true
			t.Logf("NATS node %s restarted", node.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	if !killed {
		t.Fatalf("only %d of %d events arrived before the kill point", rc.distinct(), n)
	}
	// Late duplicates would come within an ack_wait.
	time.Sleep(6 * time.Second)
	rc.collect(rcv)
	elapsed := time.Since(started)

	var missing []string
	dups, badOrigin := 0, 0
	for i := range n {
		body := fmt.Sprintf("ev %d", i)
		cs := rc.copies[body]
		if len(cs) == 0 {
			missing = append(missing, body)
			continue
		}
		dups += len(cs) - 1
		for _, oid := range cs {
			if oid == "" || oid != cs[0] {
				badOrigin++
			}
		}
	}
	froms := make([]string, 0, len(rc.froms))
	for f, k := range rc.froms {
		froms = append(froms, fmt.Sprintf("%s=%d", f, k))
	}
	sort.Strings(froms)
	shares := []string{}
	for _, d := range []*crierproc.Daemon{b, c} {
		v, _ := d.Metric("crier_nats_relayed_total")
		hits, _ := d.Metric("crier_nats_relay_shared_window_total")
		shares = append(shares, fmt.Sprintf("relayed %v, shared-window uses %v", v, hits))
	}
	t.Logf("%d events, %d received in %v: %d missing, %d duplicates; by sender %s; survivors: %s",
		n, rc.total, elapsed.Round(time.Millisecond), len(missing), dups, strings.Join(froms, " "), strings.Join(shares, "; "))
	if len(missing) > 0 {
		t.Fatalf("%d events lost, first %v", len(missing), missing[:min(len(missing), 10)])
	}
	if badOrigin > 0 {
		t.Fatalf("%d copies without the origin-id of their first copy: a receiver cannot recognise the duplicates", badOrigin)
	}
	if dups > MaxAckPending {
		t.Fatalf("%d duplicates: more than the %d messages that can be in flight when the leader dies", dups, MaxAckPending)
	}
	if len(rc.froms) < 2 {
		t.Fatalf("every push came from one instance (%v): the work is not shared", froms)
	}
	return LoadResult{Events: n, Received: rc.total, Duplicates: dups, BySender: rc.froms}
}

// waitMetric waits until d's metric name is want.
func waitMetric(t testing.TB, d *crierproc.Daemon, name string, want float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if v, err := d.Metric(name); err == nil && v == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not reach %v within %v\n%s", name, want, within, d.LogTail(40))
}
