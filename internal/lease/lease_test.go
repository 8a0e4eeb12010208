package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crier/internal/natstest"
)

// testTTL is the lease of most tests: short, so that failovers are quick.
const testTTL = 2 * time.Second

// event is one Change of one contender.
type event struct {
	who int
	Change
}

// recorder collects every contender's changes.
type recorder struct {
	mu     sync.Mutex
	events []event
	signal chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) add(who int, c Change) {
	r.mu.Lock()
	r.events = append(r.events, event{who, c})
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// waitFor waits (at most d) for an event matching ok after the first skip
// events, and returns it.
func (r *recorder) waitFor(t *testing.T, d time.Duration, skip int, ok func(event) bool) event {
	t.Helper()
	deadline := time.After(d)
	for {
		evs := r.all()
		for _, e := range evs[min(skip, len(evs)):] {
			if ok(e) {
				return e
			}
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("no matching change in %v; changes: %v", d, evs)
		}
	}
}

// contender is one instance campaigning, on its own connection.
type contender struct {
	l      *Lease
	nc     *nats.Conn
	proxy  *natstest.Proxy // nil when connected directly
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends Run (which resigns) and waits for it.
func (c *contender) stop() {
	c.cancel()
	<-c.done
}

// startContenders starts n contenders on bucket, contender i connecting to
// urls[i%len(urls)], through a proxy when proxied.
func startContenders(t *testing.T, urls []string, n int, proxied bool, rec *recorder) []*contender {
	t.Helper()
	var cs []*contender
	for i := range n {
		url := urls[i%len(urls)]
		c := &contender{done: make(chan struct{})}
		if proxied {
			c.proxy = natstest.StartProxy(t, strings.TrimPrefix(url, "nats://"))
			url = c.proxy.URL()
		}
		// No reconnect wait: a contender cut off keeps trying, as a real
		// one would, and a test bounds how long that may take.
		// The servers a cluster advertises are ignored: a contender cut off
		// from its proxy must stay cut off.
		nc, js := natstest.Connect(t, url, nats.ReconnectWait(100*time.Millisecond), nats.MaxReconnects(-1), nats.IgnoreDiscoveredServers())
		c.nc = nc
		ctx := natstest.Context(t, 30*time.Second)
		kv, err := Bucket(ctx, js, "ha", 0, testTTL)
		if err != nil {
			t.Fatal(err)
		}
		who := i
		c.l, err = New(ctx, js, kv, Options{ID: fmt.Sprintf("c%d", i), TTL: testTTL, OnChange: func(ch Change) { rec.add(who, ch) }})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		go func() {
			defer close(c.done)
			_ = c.l.Run(rctx)
		}()
		t.Cleanup(c.stop)
		cs = append(cs, c)
	}
	return cs
}

// checkExclusive checks the recorded terms: each contender's claims run
// from a "leading" change to the next change of that contender (or to
// now), no two claims overlap in time, and each term's token is greater
// than the one before.
func checkExclusive(t *testing.T, evs []event) (terms int) {
	t.Helper()
	type claim struct {
		who        int
		token      uint64
		start, end time.Time
	}
	var claims []claim
	open := map[int]int{} // who -> index in claims
	for _, e := range evs {
		if e.Leading {
			if _, ok := open[e.who]; ok {
				t.Errorf("contender %d elected twice without stepping down", e.who)
			}
			claims = append(claims, claim{who: e.who, token: e.Token, start: e.At, end: time.Now().Add(time.Hour)})
			open[e.who] = len(claims) - 1
			continue
		}
		i, ok := open[e.who]
		if !ok || claims[i].token != e.Token {
			t.Errorf("contender %d lost term %d it did not hold", e.who, e.Token)
			continue
		}
		claims[i].end = e.At
		delete(open, e.who)
	}
	sort.Slice(claims, func(i, j int) bool { return claims[i].start.Before(claims[j].start) })
	for i := 1; i < len(claims); i++ {
		prev, cur := claims[i-1], claims[i]
		if cur.start.Before(prev.end) {
			t.Errorf("claims overlap: contender %d (token %d) until %v, contender %d (token %d) from %v",
				prev.who, prev.token, prev.end.Format("15:04:05.000"), cur.who, cur.token, cur.start.Format("15:04:05.000"))
		}
		if cur.token <= prev.token {
			t.Errorf("token went from %d to %d", prev.token, cur.token)
		}
	}
	return len(claims)
}

// leaders returns the contenders that lead now by their own clocks.
func leaders(cs []*contender) []int {
	var who []int
	for i, c := range cs {
		if _, ok := c.l.Leading(); ok {
			who = append(who, i)
		}
	}
	return who
}

// watchExpiry records the time of each delete or expiry marker of the lease
// key (the server's timestamp), to split a failover's time.
func watchExpiry(t *testing.T, url string) <-chan time.Time {
	t.Helper()
	_, js := natstest.Connect(t, url)
	ctx := natstest.Context(t, 60*time.Second)
	kv, err := Bucket(ctx, js, "ha", 0, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, DefaultKey, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan time.Time, 16)
	go func() {
		for e := range w.Updates() {
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				select {
				case ch <- e.Created():
				default:
				}
			}
		}
	}()
	return ch
}

func TestOptions(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	ctx := natstest.Context(t, 10*time.Second)
	kv, err := Bucket(ctx, js, "ha", 1, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{TTL: 1500 * time.Millisecond},
		{TTL: time.Second},
		{TTL: 3 * time.Second, Renew: 2 * time.Second, Margin: time.Second},
		{Key: "a..b"},
	} {
		if _, err := New(ctx, js, kv, o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("New(%+v) = %v, want ErrBadOptions", o, err)
		}
	}
	plain, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, js, plain, Options{}); !errors.Is(err, ErrBadBucket) {
		t.Errorf("bucket without markers: %v, want ErrBadBucket", err)
	}
	if _, err := Bucket(ctx, js, "plain", 1, testTTL); !errors.Is(err, ErrBadBucket) {
		t.Errorf("Bucket on a bucket without markers: %v, want ErrBadBucket", err)
	}
	short, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "short", TTL: time.Second, LimitMarkerTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, js, short, Options{TTL: testTTL}); !errors.Is(err, ErrBadBucket) {
		t.Errorf("bucket TTL under the lease: %v, want ErrBadBucket", err)
	}
}

// exclusive runs n contenders on urls for a while, sampling who leads,
// then stops the leader (it resigns) and checks a standby takes over.
func exclusive(t *testing.T, urls []string, n int) {
	rec := newRecorder()
	cs := startContenders(t, urls, n, false, rec)
	first := rec.waitFor(t, 10*time.Second, 0, func(e event) bool { return e.Leading })
	// Two leases' worth of renewals: at every sample exactly one leads.
	end := time.Now().Add(2 * testTTL)
	samples := 0
	for time.Now().Before(end) {
		if who := leaders(cs); len(who) != 1 {
			t.Fatalf("leaders at %v: %v, want one", time.Now().Format("15:04:05.000"), who)
		}
		samples++
		time.Sleep(20 * time.Millisecond)
	}
	if got := cs[first.who].l.Token(); got != first.Token {
		t.Errorf("leader's token %d, want its term's %d (renewals keep the token)", got, first.Token)
	}
	h, ok, err := cs[0].l.Current(natstest.Context(t, 5*time.Second))
	if err != nil || !ok || h.ID != fmt.Sprintf("c%d", first.who) || h.Token != first.Token {
		t.Errorf("Current = %+v, %v, %v; want c%d with token %d", h, ok, err, first.who, first.Token)
	}
	// A leader that stops gives the lease up: a standby leads at once.
	skip := len(rec.all())
	stopped := time.Now()
	cs[first.who].stop()
	next := rec.waitFor(t, 10*time.Second, skip, func(e event) bool { return e.Leading })
	t.Logf("%d contenders: %d samples with one leader; handover after a clean stop in %v", n, samples, next.At.Sub(stopped).Round(time.Millisecond))
	if next.who == first.who || next.Token <= first.Token {
		t.Errorf("after the stop: contender %d with token %d (first was %d with %d)", next.who, next.Token, first.who, first.Token)
	}
	if terms := checkExclusive(t, rec.all()); terms != 2 {
		t.Errorf("%d terms, want 2", terms)
	}
}

func TestExclusiveSingle(t *testing.T) {
	srv := natstest.Start(t)
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx := natstest.Context(t, 10*time.Second)
			_, js := natstest.Connect(t, srv.URL())
			_ = js.DeleteKeyValue(ctx, "ha")
			exclusive(t, []string{srv.URL()}, n)
		})
	}
}

func TestExclusiveCluster(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	// The bucket is made once, with three replicas, now that all three
	// nodes joined.
	_, js := natstest.Connect(t, c.URLs())
	if _, err := Bucket(natstest.Context(t, 20*time.Second), js, "ha", 3, testTTL); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			exclusive(t, urls, n)
		})
	}
}

// failover cuts the leader's connection for good (as if its process died)
// and returns how long until another contender led, and how long of that
// was spent waiting for the lease to expire on the server.
func failover(t *testing.T, urls []string, n int) (total, expiry time.Duration) {
	rec := newRecorder()
	expired := watchExpiry(t, urls[len(urls)-1])
	cs := startContenders(t, urls, n, true, rec)
	first := rec.waitFor(t, 10*time.Second, 0, func(e event) bool { return e.Leading })
	// Let it renew a couple of times.
	time.Sleep(testTTL)
	skip := len(rec.all())
	killed := time.Now()
	cs[first.who].proxy.Cut()
	next := rec.waitFor(t, testTTL+5*time.Second, skip, func(e event) bool { return e.Leading && e.who != first.who })
	total = next.At.Sub(killed)
	select {
	case at := <-expired:
		expiry = at.Sub(killed)
	case <-time.After(5 * time.Second):
		// The marker reaches the watcher on another node of a loaded
		// cluster some time after the takeover itself.
		t.Error("no expiry marker seen within 5 s of the takeover")
	}
	// The cut-off leader stepped down on its own, before the takeover.
	lost := rec.waitFor(t, testTTL, skip, func(e event) bool { return !e.Leading && e.who == first.who })
	if !lost.At.Before(next.At) || !errors.Is(lost.Err, ErrRenewTimeout) {
		t.Errorf("old leader stepped down at %v (%v), new one led at %v", lost.At, lost.Err, next.At)
	}
	checkExclusive(t, rec.all())
	return total, expiry
}

func TestFailoverSingle(t *testing.T) {
	srv := natstest.Start(t)
	total, expiry := failover(t, []string{srv.URL()}, 2)
	t.Logf("lease %v: takeover %v after the kill (lease expiry %v, the rest %v)", testTTL, total.Round(time.Millisecond), expiry.Round(time.Millisecond), (total - expiry).Round(time.Millisecond))
}

func TestFailoverCluster(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, c.URLs())
	if _, err := Bucket(natstest.Context(t, 20*time.Second), js, "ha", 3, testTTL); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	total, expiry := failover(t, urls, 3)
	t.Logf("lease %v, R3: takeover %v after the kill (lease expiry %v, the rest %v)", testTTL, total.Round(time.Millisecond), expiry.Round(time.Millisecond), (total - expiry).Round(time.Millisecond))
}

// partition silences the leader's link to NATS (its connection stays open,
// nothing passes) and checks that it stops leading, by its own clock,
// before the lease can expire on the server and before a standby leads.
func partition(t *testing.T, urls []string) {
	rec := newRecorder()
	expired := watchExpiry(t, urls[len(urls)-1])
	cs := startContenders(t, urls, 2, true, rec)
	first := rec.waitFor(t, 10*time.Second, 0, func(e event) bool { return e.Leading })
	time.Sleep(testTTL)
	skip := len(rec.all())
	paused := time.Now()
	cs[first.who].proxy.Pause()
	l := cs[first.who].l
	lost := rec.waitFor(t, testTTL+2*time.Second, skip, func(e event) bool { return !e.Leading && e.who == first.who })
	if !errors.Is(lost.Err, ErrRenewTimeout) {
		t.Errorf("stepped down for %v, want ErrRenewTimeout", lost.Err)
	}
	// Its last renewal started before the pause: it gives up by
	// pause + TTL - margin at the latest.
	if limit := paused.Add(l.ttl - l.margin); lost.At.After(limit) {
		t.Errorf("stepped down at %v, after %v (pause + lease - margin)", lost.At, limit)
	}
	if _, ok := l.Leading(); ok {
		t.Error("Leading() still true after stepping down")
	}
	next := rec.waitFor(t, testTTL+5*time.Second, skip, func(e event) bool { return e.Leading && e.who != first.who })
	var expiry time.Time
	select {
	case expiry = <-expired:
	case <-time.After(time.Second):
		t.Fatal("no expiry marker seen")
	}
	if !lost.At.Before(expiry) || !expiry.Before(next.At) {
		t.Errorf("order: stepped down %v, lease expired %v, standby led %v", lost.At, expiry, next.At)
	}
	t.Logf("paused at 0; stepped down at %v, lease expired at %v, standby led at %v",
		lost.At.Sub(paused).Round(time.Millisecond), expiry.Sub(paused).Round(time.Millisecond), next.At.Sub(paused).Round(time.Millisecond))
	// Back on the network, the old leader is a standby: it does not lead
	// again while the new one renews.
	cs[first.who].proxy.Resume()
	time.Sleep(testTTL)
	if who := leaders(cs); len(who) != 1 || who[0] != next.who {
		t.Errorf("after the partition healed: leaders %v, want [%d]", who, next.who)
	}
	checkExclusive(t, rec.all())
}

func TestPartitionSingle(t *testing.T) {
	srv := natstest.Start(t)
	partition(t, []string{srv.URL()})
}

func TestPartitionCluster(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, c.URLs())
	if _, err := Bucket(natstest.Context(t, 20*time.Second), js, "ha", 3, testTTL); err != nil {
		t.Fatal(err)
	}
	partition(t, []string{c.Servers[0].URL(), c.Servers[1].URL(), c.Servers[2].URL()})
}

// TestQuorumLoss stops two of the three nodes: the bucket's stream has no
// quorum, so the leader cannot renew and stops leading by its deadline,
// and nobody leads until a node comes back; then one contender leads again.
func TestQuorumLoss(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, c.URLs())
	if _, err := Bucket(natstest.Context(t, 20*time.Second), js, "ha", 3, testTTL); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	url := c.Servers[0].URL()
	cs := startContenders(t, []string{url, url}, 2, false, rec)
	first := rec.waitFor(t, 10*time.Second, 0, func(e event) bool { return e.Leading })
	time.Sleep(testTTL)
	skip := len(rec.all())
	c.Servers[1].Stop()
	c.Servers[2].Stop()
	// A renewal that began while the servers were stopping may still have
	// succeeded: the last good one began at the latest when both were
	// gone.
	stopped := time.Now()
	l := cs[first.who].l
	lost := rec.waitFor(t, testTTL+2*time.Second, skip, func(e event) bool { return !e.Leading && e.who == first.who })
	if limit := stopped.Add(l.ttl - l.margin); lost.At.After(limit) || !errors.Is(lost.Err, ErrRenewTimeout) {
		t.Errorf("stepped down at %v (%v), want by %v with ErrRenewTimeout", lost.At, lost.Err, limit)
	}
	// No quorum, no leader.
	time.Sleep(testTTL)
	if who := leaders(cs); len(who) != 0 {
		t.Errorf("leaders without a quorum: %v", who)
	}
	back := time.Now()
	c.Servers[1].Restart(t)
	next := rec.waitFor(t, 60*time.Second, skip, func(e event) bool { return e.Leading })
	t.Logf("quorum lost at 0: leader stepped down at %v; quorum back at %v, a leader again at %v",
		lost.At.Sub(stopped).Round(time.Millisecond), back.Sub(stopped).Round(time.Millisecond), next.At.Sub(stopped).Round(time.Millisecond))
	if next.Token <= first.Token {
		t.Errorf("new term's token %d not above %d", next.Token, first.Token)
	}
	checkExclusive(t, rec.all())
}

// TestOnRenew: each renewal is reported with its duration; a renewal that
// cannot reach NATS is reported with its error.
func TestOnRenew(t *testing.T) {
	srv := natstest.Start(t)
	proxy := natstest.StartProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
	_, js := natstest.Connect(t, proxy.URL(), nats.IgnoreDiscoveredServers())
	ctx := natstest.Context(t, 30*time.Second)
	kv, err := Bucket(ctx, js, "ha", 1, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ok, failed := 0, 0
	l, err := New(ctx, js, kv, Options{ID: "r", TTL: testTTL, OnRenew: func(took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if took <= 0 || took > testTTL {
			t.Errorf("renewal took %v", took)
		}
		if err != nil {
			failed++
		} else {
			ok++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(rctx) }()
	defer func() { cancel(); <-done }()
	count := func() (int, int) { mu.Lock(); defer mu.Unlock(); return ok, failed }
	deadline := time.Now().Add(3 * testTTL)
	for n, _ := count(); n < 2 && time.Now().Before(deadline); n, _ = count() {
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := count(); n < 2 {
		t.Fatalf("%d renewals reported in %v, want 2", n, 3*testTTL)
	}
	proxy.Pause()
	deadline = time.Now().Add(2 * testTTL)
	for _, f := count(); f < 1 && time.Now().Before(deadline); _, f = count() {
		time.Sleep(20 * time.Millisecond)
	}
	proxy.Resume()
	if _, f := count(); f < 1 {
		t.Fatal("no failed renewal reported while NATS was unreachable")
	}
}

// TestStepDown: StepDown of the current term ends it at once with the
// reason given, the instance stops renewing (the key expires on the server
// before anyone leads again, with a greater token), and a StepDown of
// another term is ignored.
func TestStepDown(t *testing.T) {
	srv := natstest.Start(t)
	rec := newRecorder()
	expired := watchExpiry(t, srv.URL())
	cs := startContenders(t, []string{srv.URL()}, 2, false, rec)
	first := rec.waitFor(t, 10*time.Second, 0, func(e event) bool { return e.Leading })
	l := cs[first.who].l
	l.StepDown(first.Token+1, errors.New("not this term"))
	if tok, ok := l.Leading(); !ok || tok != first.Token {
		t.Fatalf("after StepDown of another term: Leading = %d, %v; want %d, true", tok, ok, first.Token)
	}
	why := errors.New("fenced off")
	skip := len(rec.all())
	l.StepDown(first.Token, why)
	if _, ok := l.Leading(); ok {
		t.Fatal("Leading still true right after StepDown")
	}
	lost := rec.waitFor(t, time.Second, skip, func(e event) bool { return !e.Leading && e.who == first.who })
	if !errors.Is(lost.Err, why) || lost.Token != first.Token {
		t.Errorf("step-down change %+v, want term %d ended for %v", lost.Change, first.Token, why)
	}
	next := rec.waitFor(t, testTTL+5*time.Second, skip, func(e event) bool { return e.Leading })
	select {
	case at := <-expired:
		if !at.Before(next.At) {
			t.Errorf("the next term began at %v, before the stepped-down term's key expired at %v", next.At, at)
		}
	case <-time.After(time.Second):
		t.Fatal("the stepped-down term's key did not expire: it was still renewed")
	}
	if next.Token <= first.Token {
		t.Errorf("next term's token %d, want above %d", next.Token, first.Token)
	}
	checkExclusive(t, rec.all())
}
