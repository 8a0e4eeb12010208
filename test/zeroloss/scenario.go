package zeroloss

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crier/bot/outbox"
	"crier/internal/crierproc"
	"crier/internal/embeddednats"
	"crier/internal/xmpptest"
)

// Names the scenario uses on the NATS side.
const (
	scenarioSubject    = "zl.events"
	scenarioFilter     = "zl.>"
	scenarioStream     = "ZEROLOSS"
	scenarioDurable    = "crier-zeroloss"
	scenarioDeadLetter = "zl-dead.letters"
	// scenarioMaxAckPending is the relay's max_ack_pending: the JetStream
	// messages crier holds without having acked them.
	scenarioMaxAckPending = 256
	// scenarioAckWait is short so that the messages the killed process
	// held are redelivered to the next one within seconds.
	scenarioAckWait = "2s"
)

// Scenario describes one zero-loss run.
type Scenario struct {
	// Events is how many JetStream events are published (4,000 when 0).
	Events int
	// Rate paces the publisher, in events per second (4,000 when 0), so
	// that the disruptions fall while events are still being published.
	Rate int
	// XMPP is crier's [xmpp] section.
	XMPP XMPP
	// Receiver logs in the user the events go to; its JID is the relay's
	// recipient.
	Receiver xmpptest.Options
	// RestartServer stops the XMPP server and starts it again, keeping
	// accounts and stored offline messages; it returns once the server
	// accepts connections.
	RestartServer func(t testing.TB)
	// Settle bounds the wait, once everything is published, for the last
	// events to arrive (60 s when 0).
	Settle time.Duration
}

// Result is what a zero-loss run observed.
type Result struct {
	Events      int
	Received    int // message bodies received, copies included
	Distinct    int // distinct event numbers received
	Duplicates  int // Received - Distinct over the expected numbers
	Missing     []int
	Unexpected  []string // bodies that are not an event number, first few
	DupBound    int
	Elapsed     time.Duration
	Disruptions []string
}

// DuplicateBound returns the most copies a run with the given disruptions
// may deliver twice without a defect:
//
//   - each XMPP server restart can cost at most one outbox window
//     (outbox.DefaultAckWindow stanzas written and not yet acknowledged): the
//     server may have routed them before the connection dropped, and crier
//     sends them again after it reconnects;
//   - each SIGKILL of crier can cost at most max_ack_pending messages:
//     JetStream redelivers every message the killed process had not acked,
//     and some of those had reached the XMPP server.
//
// Copies that JetStream redelivers while crier still holds the first one
// (ack_wait passed during a reconnect) are caught by crier's seen-window
// and never sent twice, so they add nothing.
func DuplicateBound(restarts, kills, maxAckPending int) int {
	return restarts*outbox.DefaultAckWindow + kills*maxAckPending
}

// tally counts the event numbers a receiver got. Bodies are "TAG N": a
// body with another tag is a stored message of an earlier run on the same
// server, and is ignored.
type tally struct {
	mu         sync.Mutex
	tag        string
	stale      int
	n          int
	counts     []int // index: event number
	distinct   int
	received   int
	unexpected []string
	changed    chan struct{}
}

func newTally(tag string, n int) *tally {
	return &tally{tag: tag, n: n, counts: make([]int, n+1), changed: make(chan struct{})}
}

// add records one body.
func (t *tally) add(body string, _ time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tag, num, _ := strings.Cut(strings.TrimSpace(body), " ")
	if tag != t.tag && strings.HasPrefix(tag, "zl") {
		t.stale++
		return
	}
	t.received++
	i, err := strconv.Atoi(num)
	if tag != t.tag || err != nil || i < 1 || i > t.n {
		if len(t.unexpected) < 5 {
			t.unexpected = append(t.unexpected, body)
		}
		return
	}
	if t.counts[i] == 0 {
		t.distinct++
	}
	t.counts[i]++
	close(t.changed)
	t.changed = make(chan struct{})
}

// waitDistinct waits until at least want distinct numbers arrived, at most
// limit; it returns the count reached.
func (t *tally) waitDistinct(want int, limit time.Duration) int {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		got, ch := t.distinct, t.changed
		t.mu.Unlock()
		if got >= want {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			return got
		}
	}
}

func (t *tally) snapshot() (distinct, received int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.distinct, t.received
}

// Run runs the zero-loss scenario: an embedded NATS server with JetStream,
// crier relaying the subject zl.> to the receiver as chat messages (which
// servers store while the receiver is offline), a publisher of sc.Events
// events numbered from 1 with Nats-Msg-Id set to the number, and three
// disruptions, each once its share of the events is published and crier
// relayed more since the previous one (so that it hits crier with a
// backlog): the XMPP server restarted at about 30% and 60%, crier killed
// with SIGKILL and started again at about 45%. A server that takes seconds
// to restart may let the publisher finish before the last disruption. It
// then waits until every number arrived and JetStream has nothing left
// unacknowledged, and fails the test on any loss, on more duplicates than
// DuplicateBound allows, on error messages and on dead letters.
//
// Before each server restart the receiver goes unavailable and waits until
// the server stopped routing to it, so that the restart cannot take with
// it stanzas already on their way from the server to the receiver: those
// would be the server's loss, not crier's. crier's own connection is cut
// in the middle of its stream.
func Run(t testing.TB, sc Scenario) Result {
	t.Helper()
	if sc.Events <= 0 {
		sc.Events = 10000
	}
	if sc.Rate <= 0 {
		sc.Rate = 4000
	}
	if sc.Settle <= 0 {
		sc.Settle = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	ns, nc, js := StartNATS(ctx, t)
	if _, err := js.AddStream(&nats.StreamConfig{Name: scenarioStream, Subjects: []string{scenarioFilter}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	var deadLetters atomic.Int64
	dl, err := nc.Subscribe(scenarioDeadLetter, func(*nats.Msg) { deadLetters.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dl.Unsubscribe() })

	rcvJID := sc.Receiver.JID
	tag := fmt.Sprintf("zl%x", time.Now().UnixNano())
	tl := newTally(tag, sc.Events)
	rcv := NewReceiver(sc.Receiver, tl.add)
	if err := rcv.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)

	cfgPath, httpAddr := WriteConfig(t, Config{
		XMPP:       sc.XMPP,
		NATSURL:    ns.ClientURL(),
		DeadLetter: scenarioDeadLetter,
		Relays: []Relay{{
			Subject: scenarioFilter, To: []string{rcvJID}, Type: "chat", Format: "text",
			Stream: scenarioStream, Durable: scenarioDurable, MaxAckPending: scenarioMaxAckPending,
			AckWait: scenarioAckWait, NakDelay: "500ms",
		}},
	})
	d := crierproc.Start(t, cfgPath, httpAddr)
	d.WaitReady(t, 30*time.Second)

	// The publisher: paced at sc.Rate, each event's number as its body and
	// its Nats-Msg-Id.
	var published atomic.Int64
	pubDone := make(chan error, 1)
	start := time.Now()
	go func() {
		pubDone <- publish(ctx, js, tag, sc.Events, sc.Rate, &published)
	}()

	res := Result{Events: sc.Events, DupBound: DuplicateBound(2, 1, scenarioMaxAckPending)}
	// Each disruption waits for its share of the publishing and for crier
	// to have relayed something new since the previous one, so that it
	// hits crier in the middle of its work.
	step := max(50, sc.Events/50)
	lastDistinct := 0
	for _, dis := range []struct {
		at   float64
		kind string
	}{{0.30, "restart"}, {0.45, "kill"}, {0.60, "restart"}} {
		wantPub := int64(dis.at * float64(sc.Events))
		for i := 0; i < 6000 && published.Load() < wantPub; i++ {
			select {
			case err := <-pubDone:
				t.Fatalf("publisher stopped early: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		if got := tl.waitDistinct(lastDistinct+step, 30*time.Second); got < lastDistinct+step {
			t.Fatalf("before the %s at %.0f%%: crier relayed %d events, no progress for 30s\ncrier:\n%s",
				dis.kind, dis.at*100, got, d.LogTail(80))
		}
		distinct, received := tl.snapshot()
		pubNow := published.Load()
		t0 := time.Now()
		switch dis.kind {
		case "restart":
			if err := rcv.Offline(ctx); err != nil {
				t.Fatalf("receiver going offline: %v", err)
			}
			sc.RestartServer(t)
			if err := rcv.Connect(ctx); err != nil {
				t.Fatal(err)
			}
		case "kill":
			d.Kill(t)
			d = crierproc.Start(t, cfgPath, httpAddr)
		}
		note := fmt.Sprintf("%s at %d published, %d distinct/%d received, took %v",
			dis.kind, pubNow, distinct, received, time.Since(t0).Round(time.Millisecond))
		res.Disruptions = append(res.Disruptions, note)
		t.Log(note)
		lastDistinct = distinct
	}

	select {
	case err := <-pubDone:
		if err != nil {
			t.Fatalf("publisher: %v", err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("publisher still running after 5 minutes (%d published)", published.Load())
	}
	pubElapsed := time.Since(start)
	got := tl.waitDistinct(sc.Events, sc.Settle)
	res.Elapsed = time.Since(start)
	// Let JetStream settle: nothing pending, nothing unacknowledged, so
	// that late copies are counted too.
	cons, cerr := js.ConsumerInfo(scenarioStream, scenarioDurable)
	for i := 0; i < 200 && cerr == nil && (cons.NumPending > 0 || cons.NumAckPending > 0); i++ {
		time.Sleep(50 * time.Millisecond)
		cons, cerr = js.ConsumerInfo(scenarioStream, scenarioDurable)
	}
	time.Sleep(300 * time.Millisecond)

	tl.mu.Lock()
	res.Distinct, res.Received = tl.distinct, tl.received
	res.Unexpected = append([]string(nil), tl.unexpected...)
	stale := tl.stale
	for i := 1; i <= sc.Events; i++ {
		switch c := tl.counts[i]; {
		case c == 0:
			res.Missing = append(res.Missing, i)
		case c > 1:
			res.Duplicates += c - 1
		}
	}
	tl.mu.Unlock()

	relayed, _ := d.Metric("crier_nats_relayed_total")
	redelivered, _ := d.Metric("crier_nats_relay_redeliveries_total")
	dupsCaught, _ := d.Metric("crier_nats_relay_duplicates_total")
	t.Logf("%d events published in %v; %d distinct of %d received by %v; %d duplicates (bound %d); "+
		"receiver sessions %d, %d stored messages of earlier runs ignored; last crier process: relayed %v, redeliveries %v, copies not sent again %v",
		sc.Events, pubElapsed.Round(time.Millisecond), res.Distinct, res.Received, res.Elapsed.Round(time.Millisecond),
		res.Duplicates, res.DupBound, rcv.Logins(), stale, relayed, redelivered, dupsCaught)
	if cerr != nil {
		t.Errorf("JetStream consumer info: %v", cerr)
	} else if cons.NumPending > 0 || cons.NumAckPending > 0 {
		t.Errorf("JetStream consumer not drained: %d pending, %d unacknowledged, %d redelivered",
			cons.NumPending, cons.NumAckPending, cons.NumRedelivered)
	}
	if got < sc.Events || len(res.Missing) > 0 {
		t.Errorf("LOSS: %d of %d events never reached the receiver within %v after publishing ended; missing: %s",
			len(res.Missing), sc.Events, sc.Settle, ranges(res.Missing, 20))
	}
	if res.Duplicates > res.DupBound {
		t.Errorf("%d duplicates, more than the bound %d (2 restarts x window %d + 1 kill x max_ack_pending %d)",
			res.Duplicates, res.DupBound, outbox.DefaultAckWindow, scenarioMaxAckPending)
	}
	if len(res.Unexpected) > 0 {
		t.Errorf("bodies that are no event number: %q", res.Unexpected)
	}
	if n, errs := rcv.Errors(); n > 0 {
		t.Errorf("receiver got %d error messages, first: %v", n, errs)
	}
	if n := deadLetters.Load(); n > 0 {
		t.Errorf("%d valid events went to the dead-letter subject", n)
	}
	return res
}

// StartNATS starts an embedded NATS server with JetStream that stores its
// data in a temporary directory, connects to it, and returns the server, the
// connection and the connection's JetStream context. The server and the
// connection close when the test ends; ctx bounds the server's start.
func StartNATS(ctx context.Context, t testing.TB) (*embeddednats.Server, *nats.Conn, nats.JetStreamContext) {
	t.Helper()
	ns, err := embeddednats.Start(ctx, "nats://127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatalf("embedded NATS: %v", err)
	}
	t.Cleanup(ns.Close)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := nc.JetStream()
	if err != nil {
		t.Fatalf("JetStream: %v", err)
	}
	return ns, nc, js
}

// publish publishes n events numbered from 1 on the scenario subject at
// about rate per second, each with the body "TAG N" and N as its
// Nats-Msg-Id; an event whose publish fails is retried, at most 50 times.
func publish(ctx context.Context, js nats.JetStreamContext, tag string, n, rate int, count *atomic.Int64) error {
	start := time.Now()
	for i := 1; i <= n; i++ {
		if i%25 == 0 {
			due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
		}
		id := strconv.Itoa(i)
		var err error
		for range 50 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if _, err = js.Publish(scenarioSubject, []byte(tag+" "+id), nats.MsgId(id)); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("publish event %d: %w", i, err)
		}
		count.Add(1)
	}
	return nil
}

// ranges writes sorted numbers as compact ranges ("3-7, 12"), at most limit
// of them.
func ranges(nums []int, limit int) string {
	var parts []string
	for i := 0; i < len(nums) && len(parts) < limit; {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(nums[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", nums[i], nums[j]))
		}
		i = j + 1
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
