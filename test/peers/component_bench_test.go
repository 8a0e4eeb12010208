//go:build peers

package peers_test

import (
	"context"
	"flag"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
	"crier/test/zeroloss"
)

// Workload of BenchmarkHeadlines.
const (
	headlineWarmup = 200
	headlineWindow = 500 // published and not yet received, at most
	headlineStall  = 10 * time.Second
)

// headlineBurst is how many headlines one measured run relays; against a
// shaping server (SHAPER=1) a smaller count keeps the client's runs short.
var headlineBurst = flag.Int("headlines", 5000, "BenchmarkHeadlines: headlines relayed per run")

// BenchmarkHeadlines pushes headlines through crier's NATS relay to a user
// of each real server, with crier connected as a client (TCP, STARTTLS;
// "client-nosm" with stream_management = false, so that deliveries are
// confirmed by pings as on a component) and as an XEP-0114 component. One
// invocation runs the cases in turn (-count repeats each case before the
// next; repeat the invocation to interleave them, docs/BENCHMARKS.md).
// Each run relays a fixed closed-loop workload whatever b.N is: -headlines
// events (5,000) published with at most headlineWindow not yet received;
// headlines/s is their number over the time from the first publish to the
// last reception. The relay reads core NATS, so what is measured is crier
// and the server, not JetStream.
func BenchmarkHeadlines(b *testing.B) {
	for _, name := range peers.Names {
		for _, conn := range []string{"client", "client-nosm", "component"} {
			b.Run(name+"/"+conn, func(b *testing.B) { benchHeadlines(b, name, conn) })
		}
	}
}

// headlineSink counts the events of one phase: body "PHASE SEQ".
type headlineSink struct {
	mu      sync.Mutex
	phase   string
	seen    map[int]bool
	last    time.Time
	changed chan struct{}
}

func (s *headlineSink) add(body string, at time.Time) {
	phase, seqText, ok := strings.Cut(body, " ")
	seq, err := strconv.Atoi(seqText)
	if !ok || err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if phase != s.phase || s.seen[seq] {
		return
	}
	s.seen[seq] = true
	s.last = at
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *headlineSink) begin(phase string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase, s.seen = phase, map[int]bool{}
}

// wait waits until n events of the phase arrived, or none for
// headlineStall; it returns the count.
func (s *headlineSink) wait(n int) int {
	for {
		s.mu.Lock()
		got, ch := len(s.seen), s.changed
		s.mu.Unlock()
		if got >= n {
			return got
		}
		select {
		case <-ch:
		case <-time.After(headlineStall):
			return got
		}
	}
}

func benchHeadlines(b *testing.B, name, conn string) {
	p := peers.Get(b, name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rcvAcct := p.Account(b, "user4")
	sink := &headlineSink{changed: make(chan struct{})}
	rcv := zeroloss.NewReceiver(xmpptest.Options{Addr: p.C2S, JID: rcvAcct.JID, Password: rcvAcct.Password,
		Resource: "bench", RootCAs: p.CertPool()}, sink.add)
	if err := rcv.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rcv.Close)
	ns, nc, _ := zeroloss.StartNATS(ctx, b)

	var x crierproc.XMPP
	if conn == "component" {
		x = componentXMPP(b, p, "bench")
	} else {
		crier := p.Account(b, "crier")
		x = tcpXMPP(p, "starttls", crier.Password)
		x.Resource = "bench"
		x.NoSM = conn == "client-nosm"
	}
	path, httpAddr := zeroloss.WriteConfig(b, zeroloss.Config{XMPP: x, NATSURL: ns.ClientURL(),
		Relays: []zeroloss.Relay{{Subject: "bench.>", To: []string{rcvAcct.JID}, Type: "headline", Format: "text"}}})
	d := crierproc.Start(b, path, httpAddr)
	d.WaitReady(b, 45*time.Second)

	pub := func(phase string, seq int) {
		if err := nc.Publish("bench.headline", []byte(phase+" "+strconv.Itoa(seq))); err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
	sink.begin("w")
	burst := *headlineBurst
	warm := min(headlineWarmup, max(burst/10, 1))
	for i := range warm {
		pub("w", i)
	}
	_ = nc.Flush()
	if got := sink.wait(warm); got < warm {
		b.Fatalf("warm-up: %d of %d events arrived\n%s", got, warm, d.LogTail(40))
	}

	b.ResetTimer()
	sink.begin("t")
	start := time.Now()
	for i := range burst {
		if i >= headlineWindow && sink.wait(i-headlineWindow+1) < i-headlineWindow+1 {
			break
		}
		pub("t", i)
	}
	_ = nc.Flush()
	got := sink.wait(burst)
	b.StopTimer()
	sink.mu.Lock()
	elapsed := sink.last.Sub(start)
	sink.mu.Unlock()
	if got < burst {
		b.Errorf("%d of %d headlines arrived\n%s", got, burst, d.LogTail(40))
	}
	if got == 0 {
		b.FailNow()
	}
	b.ReportMetric(float64(got)/elapsed.Seconds(), "headlines/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(got), "ns/op")
	b.Logf("%s over %s: %d headlines in %v", name, conn, got, elapsed.Round(time.Millisecond))
}
