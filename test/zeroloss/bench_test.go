package zeroloss

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crier/internal/crierproc"
)

// Workload of BenchmarkRelay.
const (
	benchWarmup     = 200   // events relayed before measuring
	benchBurst      = 10000 // events of the throughput phase
	benchWindow     = 500   // events published and not yet received, at most, in the throughput phase
	benchRate       = 1000  // events per second of the latency phase
	benchRateEvents = 5000  // events of the latency phase: 5 s at benchRate
	benchSubject    = "bench.events"
	benchStream     = "BENCH"
	benchStall      = 10 * time.Second // no event received for this long ends a phase
)

// BenchmarkRelay measures crier's NATS to XMPP relay end to end, from a
// publish on NATS to the receiving XMPP client, through the crier binary
// and the mini server, for crier connected over TCP and over BOSH, reading
// core NATS or JetStream. Each run relays a fixed workload whatever b.N is:
//
//   - events/s: benchBurst events published with at most benchWindow of
//     them not yet received (a closed loop, so that core NATS, which drops
//     what a full outbox cannot take, is measured at a rate it sustains),
//     divided by the time from the first publish to the last reception;
//     ns/op is the same figure as time per event;
//   - p50-ms, p99-ms: latency of benchRateEvents events published at
//     benchRate per second, from just before the publish to the reception;
//   - lost: events of both phases that never arrived (core NATS only may
//     lose: it is at most once).
//
// The messages are headlines to a receiver that stays online.
func BenchmarkRelay(b *testing.B) {
	for _, transport := range []string{"tcp", "bosh"} {
		for _, mode := range []string{"core", "jetstream"} {
			b.Run(transport+"/"+mode, func(b *testing.B) { benchRelay(b, transport, mode == "jetstream") })
		}
	}
}

// benchSink collects the events of one phase: body "PHASE SEQ NANOS".
type benchSink struct {
	mu      sync.Mutex
	phase   string
	seen    map[int]bool
	lat     []time.Duration
	last    time.Time
	changed chan struct{}
}

func (s *benchSink) add(body string, at time.Time) {
	f := strings.Fields(body)
	if len(f) != 3 {
		return
	}
	seq, err1 := strconv.Atoi(f[1])
	ns, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f[0] != s.phase || s.seen[seq] {
		return
	}
	s.seen[seq] = true
	s.lat = append(s.lat, at.Sub(time.Unix(0, ns)))
	s.last = at
	close(s.changed)
	s.changed = make(chan struct{})
}

// begin starts a new phase.
func (s *benchSink) begin(phase string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase, s.seen, s.lat = phase, map[int]bool{}, nil
}

// wait waits until at least n events of the phase arrived, or none arrived
// for benchStall; it returns the count.
func (s *benchSink) wait(n int) int {
	for {
		s.mu.Lock()
		got, ch := len(s.seen), s.changed
		s.mu.Unlock()
		if got >= n {
			return got
		}
		select {
		case <-ch:
		case <-time.After(benchStall):
			return got
		}
	}
}

func benchRelay(b *testing.B, transport string, jetstream bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := startMini(b)
	ns, nc, js := StartNATS(ctx, b)
	relay := Relay{Subject: "bench.>", To: []string{rcvJID}, Type: "headline", Format: "text"}
	if jetstream {
		if _, err := js.AddStream(&nats.StreamConfig{Name: benchStream, Subjects: []string{"bench.>"}}); err != nil {
			b.Fatal(err)
		}
		relay.Stream, relay.Durable = benchStream, "crier-bench"
	}
	sink := &benchSink{changed: make(chan struct{})}
	rcv := NewReceiver(miniReceiver(srv, "bench"), sink.add)
	if err := rcv.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rcv.Close)
	cfgPath, httpAddr := WriteConfig(b, Config{XMPP: miniXMPP(b, srv, transport), NATSURL: ns.ClientURL(),
		Relays: []Relay{relay}})
	d := crierproc.Start(b, cfgPath, httpAddr)
	d.WaitReady(b, 30*time.Second)

	pub := func(phase string, seq int) {
		data := []byte(fmt.Sprintf("%s %d %d", phase, seq, time.Now().UnixNano()))
		var err error
		if jetstream {
			_, err = js.Publish(benchSubject, data)
		} else {
			err = nc.Publish(benchSubject, data)
		}
		if err != nil {
			b.Fatalf("publish: %v", err)
		}
	}

	// Warm-up: sessions, consumer and caches settle.
	sink.begin("w")
	for i := range benchWarmup {
		pub("w", i)
	}
	if got := sink.wait(benchWarmup); got < benchWarmup {
		b.Fatalf("warm-up: %d of %d events arrived\n%s", got, benchWarmup, d.LogTail(40))
	}

	b.ResetTimer()
	// Throughput: a closed loop with at most benchWindow events in flight.
	sink.begin("t")
	start := time.Now()
	for i := range benchBurst {
		if i >= benchWindow && sink.wait(i-benchWindow+1) < i-benchWindow+1 {
			break // stalled: the count below says how many arrived
		}
		pub("t", i)
	}
	if !jetstream {
		_ = nc.Flush()
	}
	gotT := sink.wait(benchBurst)
	sink.mu.Lock()
	elapsed := sink.last.Sub(start)
	sink.mu.Unlock()

	// Latency at a fixed rate.
	sink.begin("l")
	lstart := time.Now()
	for i := range benchRateEvents {
		if wait := time.Until(lstart.Add(time.Duration(i) * time.Second / benchRate)); wait > 0 {
			time.Sleep(wait)
		}
		pub("l", i)
	}
	gotL := sink.wait(benchRateEvents)
	b.StopTimer()
	sink.mu.Lock()
	lat := slices.Clone(sink.lat)
	sink.mu.Unlock()
	slices.Sort(lat)

	lost := (benchBurst - gotT) + (benchRateEvents - gotL)
	if jetstream && lost > 0 {
		b.Errorf("JetStream relay lost %d events (%d of %d, %d of %d arrived)", lost, gotT, benchBurst, gotL, benchRateEvents)
	}
	if gotT == 0 || len(lat) == 0 {
		b.Fatalf("nothing arrived\n%s", d.LogTail(40))
	}
	b.ReportMetric(float64(gotT)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(gotT), "ns/op")
	b.ReportMetric(ms(lat[len(lat)*50/100]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(float64(lost), "lost")
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
