// Package ha holds the scenarios of several crier instances sharing an
// [ha] bucket: the tests of this directory run them against the mini
// server, test/peers against Prosody and ejabberd.
package ha

import (
	"context"
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
	// Room, when set, is a room the instances join (the leader does) with
	// a !ping rule; DialPinger logs in the user who pings there before and
	// after the kill.
	Room       string
	DialPinger func(t *testing.T) *xmpptest.Client
}

// LoadResult is what FailoverUnderLoad saw.
type LoadResult struct {
	Events, Received, Duplicates int
	// BySender counts the pushes received from each instance's full JID.
	BySender map[string]int
	// Answered is the time from the kill to the first answer in the room
	// (zero without a room).
	Answered time.Duration
}

// pinger sends numbered !pings into a room and counts the answers.
type pinger struct {
	c       *xmpptest.Client
	room    string
	seq     int
	sent    map[string]time.Time
	answers map[string]int
	first   map[string]time.Time // body -> when its first answer came
}

func (p *pinger) ping() string {
	p.seq++
	body := fmt.Sprintf("!ping %d", p.seq)
	p.sent[body] = time.Now()
	_ = p.c.SendMessage(p.room, "groupchat", body)
	return body
}

func (p *pinger) collect() {
	for _, s := range p.c.Drain() {
		if s.Name != "message" || s.Type != "groupchat" || !strings.HasPrefix(s.From, p.room+"/") || !strings.HasPrefix(s.Body, "pong !ping ") {
			continue
		}
		body := strings.TrimPrefix(s.Body, "pong ")
		if p.answers[body] == 0 {
			p.first[body] = time.Now()
		}
		p.answers[body]++
	}
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
	if s.Room != "" {
		tables += fmt.Sprintf("\n[[rooms]]\njid = %q\nnick = \"crier\"\n\n[[rules]]\nname = \"ping\"\nmatch = \"^!ping\"\nreply = \"pong {{.Body}}\"\n", s.Room)
	}
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
	var pg *pinger
	if s.Room != "" {
		pg = &pinger{c: s.DialPinger(t), room: s.Room, sent: map[string]time.Time{}, answers: map[string]int{}, first: map[string]time.Time{}}
		if err := pg.c.Join(s.Room, "pinger"); err != nil {
			t.Fatal(err)
		}
	}
	var before string        // the !ping before the kill
	var after []string       // the !pings after the kill, in order
	var answeredAt time.Time // the first answer after the kill
	var lastPing time.Time
	// The publisher: every event once, with its id (JetStream drops a
	// second publish of an id within its duplicate window, so an event the
	// stream did not confirm, as while a node restarts and the stream's
	// group elects a leader, is published again until it is).
	pubDone := make(chan error, 1)
	go func() {
		futures := make([]jetstream.PubAckFuture, n)
		publish := func(i int) ([]byte, jetstream.PublishOpt) {
			return []byte(fmt.Sprintf("ev %d", i)), jetstream.WithMsgID(fmt.Sprintf("ev-%d", i))
		}
		for i := range n {
			data, id := publish(i)
			f, err := js.PublishAsync(fmt.Sprintf("ev.%d", i%10), data, id)
			if err == nil {
				futures[i] = f
			}
			if i%500 == 499 {
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(30 * time.Second):
				}
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
		}
		for i, f := range futures {
			if f != nil {
				select {
				case <-f.Ok():
					continue
				default:
				}
			}
			var err error
			for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				data, id := publish(i)
				_, err = js.Publish(pctx, fmt.Sprintf("ev.%d", i%10), data, id)
				cancel()
				if err == nil || time.Now().After(end) {
					break
				}
			}
			if err != nil {
				pubDone <- fmt.Errorf("event %d not accepted for 30 s: %w", i, err)
				return
			}
		}
		pubDone <- nil
	}()

	// Kill the leader a third of the way through, then stop one NATS
	// node for a while and restart it.
	started := time.Now()
	deadline := started.Add(settle)
	killed, restarted := false, false
	var killedAt time.Time
	node := cluster.Servers[2]
	for (rc.distinct() < n || (pg != nil && (answeredAt.IsZero() || len(after) < 4))) && time.Now().Before(deadline) {
		rc.collect(rcv)
		if pg != nil {
			pg.collect()
			switch {
			case before == "" && rc.distinct() >= n/10:
				before = pg.ping()
			case killed && answeredAt.IsZero() && time.Since(lastPing) > 500*time.Millisecond:
				after = append(after, pg.ping())
				lastPing = time.Now()
			case !answeredAt.IsZero() && len(after) < 4 && time.Since(lastPing) > 700*time.Millisecond:
				// Three more after the first answer.
				after = append(after, pg.ping())
				lastPing = time.Now()
			}
			if killed && answeredAt.IsZero() {
				for _, b := range after {
					if at, ok := pg.first[b]; ok {
						answeredAt = at
						// The pings before this one are from the gap.
						after = []string{b}
						break
					}
				}
			}
		}
		// The leader is killed once the ping before has had its time.
		pingDone := pg == nil || (before != "" && (pg.answers[before] > 0 || time.Since(pg.sent[before]) > 5*time.Second))
		switch got := rc.distinct(); {
		case !killed && got >= n/3 && pingDone:
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
	var answered time.Duration
	if pg != nil {
		pg.collect()
		if n := pg.answers[before]; n != 1 {
			t.Errorf("%d answers to the !ping before the kill, want 1", n)
		}
		if answeredAt.IsZero() {
			t.Fatalf("no answer in the room after the kill (%d pings)", pg.seq)
		}
		answered = answeredAt.Sub(killedAt)
		t.Logf("SIGKILL -> an answer in the room after %v, under load", answered.Round(time.Millisecond))
		if answered > 10*time.Second {
			t.Errorf("the room bot answered %v after the kill, want under 10 s", answered)
		}
		for _, b := range after {
			if n := pg.answers[b]; n != 1 {
				t.Errorf("%d answers to %q after the failover, want 1", n, b)
			}
		}
		for b, n := range pg.answers {
			if n > 1 {
				t.Errorf("%d answers to %q: two instances spoke", n, b)
			}
		}
	}

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
	return LoadResult{Events: n, Received: rc.total, Duplicates: dups, BySender: rc.froms, Answered: answered}
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
