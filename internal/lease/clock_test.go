package lease

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crier/internal/natstest"
)

// seen is one Change with the test's own time of its arrival (the
// contenders' clocks disagree, so their At cannot be compared).
type seen struct {
	who int
	at  time.Time
	Change
}

// TestClocksDisagree: two contenders whose wall clocks are an hour ahead
// and an hour behind (two hours apart) elect one leader at a time and hand
// the lease over after a partition, in both directions, within the same
// bounds as with agreeing clocks: the lease compares each instance's own
// readings only (monotonic durations) and leaves expiry to the server's
// TTL and the order of terms to its revisions. The wall time in the key
// (Since) is the leader's own, for display only.
func TestClocksDisagree(t *testing.T) {
	srv := natstest.Start(t)
	skews := []time.Duration{time.Hour, -time.Hour}
	var (
		mu     sync.Mutex
		events []seen
	)
	signal := make(chan struct{}, 1)
	type member struct {
		l     *Lease
		proxy *natstest.Proxy
	}
	var ms []member
	for i, skew := range skews {
		p := natstest.StartProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
		_, js := natstest.Connect(t, p.URL(), nats.ReconnectWait(100*time.Millisecond), nats.MaxReconnects(-1), nats.IgnoreDiscoveredServers())
		ctx := natstest.Context(t, 60*time.Second)
		kv, err := Bucket(ctx, js, "ha", 0, testTTL)
		if err != nil {
			t.Fatal(err)
		}
		who := i
		l, err := New(ctx, js, kv, Options{ID: fmt.Sprintf("c%d", i), TTL: testTTL, OnChange: func(c Change) {
			mu.Lock()
			events = append(events, seen{who, time.Now(), c})
			mu.Unlock()
			select {
			case signal <- struct{}{}:
			default:
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		l.now = func() time.Time { return time.Now().Add(skew) }
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = l.Run(rctx) }()
		t.Cleanup(func() { cancel(); <-done })
		ms = append(ms, member{l, p})
	}
	waitFor := func(d time.Duration, skip int, ok func(seen) bool) seen {
		t.Helper()
		deadline := time.After(d)
		for {
			mu.Lock()
			evs := append([]seen(nil), events...)
			mu.Unlock()
			for _, e := range evs[min(skip, len(evs)):] {
				if ok(e) {
					return e
				}
			}
			select {
			case <-signal:
			case <-deadline:
				t.Fatalf("no matching change in %v; changes: %+v", d, evs)
			}
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(events) }

	first := waitFor(10*time.Second, 0, func(e seen) bool { return e.Leading })
	cur := first
	for round := range 2 {
		// Several renewals: the other, two hours off, does not take over.
		time.Sleep(testTTL + testTTL/2)
		if n := leadersOf(ms[0].l, ms[1].l); len(n) != 1 || n[0] != cur.who {
			mu.Lock()
			t.Fatalf("round %d: leaders %v, want [%d]; changes %+v", round, n, cur.who, events)
		}
		h, ok, err := ms[1-cur.who].l.Current(natstest.Context(t, 5*time.Second))
		if err != nil || !ok {
			t.Fatalf("Current: %v, %v", ok, err)
		}
		if off := time.Until(h.Since) - skews[cur.who]; off < -time.Minute || off > time.Minute {
			t.Errorf("Since %v is not the leader's own (skewed %v) wall time", h.Since, skews[cur.who])
		}
		if h.Token != cur.Token {
			t.Errorf("token %d in the key, %d won", h.Token, cur.Token)
		}
		skip := count()
		paused := time.Now()
		ms[cur.who].proxy.Pause()
		lost := waitFor(testTTL+2*time.Second, skip, func(e seen) bool { return !e.Leading && e.who == cur.who })
		next := waitFor(testTTL+5*time.Second, skip, func(e seen) bool { return e.Leading && e.who != cur.who })
		if lost.at.After(next.at) {
			t.Errorf("round %d: the new leader led %v after the pause, the old one stepped down only at %v", round, next.at.Sub(paused), lost.at.Sub(paused))
		}
		if limit := paused.Add(testTTL - testTTL/5 + 200*time.Millisecond); lost.at.After(limit) {
			t.Errorf("round %d: stepped down %v after the pause, later than lease - margin", round, lost.at.Sub(paused))
		}
		if next.Token <= cur.Token {
			t.Errorf("round %d: token %d after %d: terms out of order", round, next.Token, cur.Token)
		}
		t.Logf("round %d: leader skewed %v paused; stepped down at +%v, the one skewed %v led at +%v",
			round, skews[cur.who], lost.at.Sub(paused).Round(time.Millisecond), skews[next.who], next.at.Sub(paused).Round(time.Millisecond))
		ms[cur.who].proxy.Resume()
		cur = next
	}
}

// leadersOf lists the indexes of the leases that lead now.
func leadersOf(ls ...*Lease) []int {
	var who []int
	for i, l := range ls {
		if _, ok := l.Leading(); ok {
			who = append(who, i)
		}
	}
	return who
}
