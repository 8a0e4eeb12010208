package ha

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crier/internal/crierproc"
	"crier/internal/natstest"
	"crier/internal/xmpptest"
)

// benchEvents is how many JetStream events one iteration of
// BenchmarkRelayInstances pushes.
const benchEvents = 10000

// benchUsers receive the pushes, in turn.
var benchUsers = []string{"u1", "u2", "u3"}

// BenchmarkRelayInstances measures push throughput with 1, 2 and 3 crier
// processes sharing one JetStream relay, and of one crier without [ha] (no
// shared seen-window to write) for reference: each iteration publishes
// benchEvents events (headlines to three users, on one mini server) and
// times them until every one has arrived; pushes/s is events over that
// time. Run it with -benchtime=1x -count=N and take the medians:
//
//	go test -run '^$' -bench BenchmarkRelayInstances -benchtime=1x -count=5 ./test/ha/
func BenchmarkRelayInstances(b *testing.B) {
	b.Run("no-ha", func(b *testing.B) { benchInstances(b, 1, false) })
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) { benchInstances(b, n, true) })
	}
}

func benchInstances(b *testing.B, instances int, ha bool) {
	ns := natstest.Start(b)
	_, js := natstest.Connect(b, ns.URL())
	ctx := natstest.Context(b, 30*time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}}); err != nil {
		b.Fatal(err)
	}
	srv := crierproc.StartMini(b, benchUsers...)
	tables := strings.Replace(RelayTables(ns.URL(), "u1@localhost", 1), `to = ["u1@localhost"]`, `to = ["u1@localhost"]`+"\nformat = \"json\"", 1)
	if !ha {
		tables = tables[:strings.Index(tables, "[ha]")]
	}
	var ds []*crierproc.Daemon
	for i := range instances {
		d := crierproc.Run(b, srv.XMPP(fmt.Sprintf("r%d", i)), tables)
		ds = append(ds, d)
	}
	for _, d := range ds {
		d.WaitReady(b, 60*time.Second)
	}
	var clients []*xmpptest.Client
	for _, u := range benchUsers {
		clients = append(clients, xmpptest.Dial(b, xmpptest.Options{Addr: srv.Addr(), JID: u + "@localhost", Password: u + "pw",
			RootCAs: srv.CertPool(), Timeout: 10 * time.Second}))
	}
	next := 0
	b.ResetTimer()
	var elapsed time.Duration
	for range b.N {
		first := next
		start := time.Now()
		for i := range benchEvents {
			to := benchUsers[(first+i)%len(benchUsers)] + "@localhost"
			body := fmt.Sprintf(`{"text":"ev %d","to":[%q]}`, first+i, to)
			if _, err := js.PublishAsync("ev.x", []byte(body), jetstream.WithMsgID(fmt.Sprintf("b-%d", first+i))); err != nil {
				b.Fatal(err)
			}
		}
		next += benchEvents
		var wg sync.WaitGroup
		missing := make([]int, len(clients))
		for ci, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := benchEvents / len(clients)
				seen := map[string]bool{}
				deadline := time.Now().Add(2 * time.Minute)
				for len(seen) < want && time.Now().Before(deadline) {
					for _, s := range c.Drain() {
						if s.Name == "message" && strings.HasPrefix(s.Body, "ev ") {
							seen[s.Body] = true
						}
					}
					time.Sleep(2 * time.Millisecond)
				}
				missing[ci] = want - len(seen)
			}()
		}
		wg.Wait()
		elapsed += time.Since(start)
		for ci, m := range missing {
			if m > 0 {
				b.Fatalf("%s is missing %d pushes after 2 minutes", benchUsers[ci], m)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*benchEvents)/elapsed.Seconds(), "pushes/s")
	shares := make([]string, 0, len(ds))
	for _, d := range ds {
		v, _ := d.Metric("crier_nats_relayed_total")
		shares = append(shares, fmt.Sprint(v))
	}
	b.Logf("relayed per instance: %s", strings.Join(shares, " "))
}
