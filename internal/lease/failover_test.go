package lease

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crier/internal/natstest"
)

// expiries records the server's time of each delete or expiry marker of the
// lease key.
func expiries(tb testing.TB, url string, ttl time.Duration) <-chan time.Time {
	tb.Helper()
	_, js := natstest.Connect(tb, url)
	ctx := natstest.Context(tb, 10*time.Minute)
	kv, err := Bucket(ctx, js, "ha", 0, ttl)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := kv.Watch(ctx, DefaultKey, jetstream.UpdatesOnly())
	if err != nil {
		tb.Fatal(err)
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

// TestFailoverSIGKILL kills the leading process: the other process leads
// once the lease expired, with a greater token.
func TestFailoverSIGKILL(t *testing.T) {
	srv := natstest.Start(t)
	expired := expiries(t, srv.URL(), testTTL)
	total, expiry := killFailover(t, srv.URL(), testTTL, expired)
	if expiry > total {
		t.Errorf("standby led %v after the kill, before the lease expired (%v)", total, expiry)
	}
	t.Logf("lease %v: takeover %v after SIGKILL (lease expiry %v, the rest %v)", testTTL, total.Round(time.Millisecond), expiry.Round(time.Millisecond), (total - expiry).Round(time.Millisecond))
}

// benchFailover measures SIGKILL failovers with the default lease; each
// iteration is one failover. ns/op is the time from the kill to the
// standby's lead; expiry-ms the part until the server expired the lease,
// rest-ms the part after (watch, create).
func benchFailover(b *testing.B, url string) {
	expired := expiries(b, url, DefaultTTL)
	var totals, exps []float64
	for b.Loop() {
		total, expiry := killFailover(b, url, DefaultTTL, expired)
		totals = append(totals, float64(total.Milliseconds()))
		exps = append(exps, float64(expiry.Milliseconds()))
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	b.ReportMetric(med(totals)*1e6, "ns/op")
	b.ReportMetric(med(totals), "failover-ms")
	b.ReportMetric(med(exps), "expiry-ms")
	b.ReportMetric(med(totals)-med(exps), "rest-ms")
}

func BenchmarkFailoverSingle(b *testing.B) {
	benchFailover(b, natstest.Start(b).URL())
}

func BenchmarkFailoverCluster(b *testing.B) {
	c := natstest.StartCluster(b, 3)
	_, js := natstest.Connect(b, c.URLs())
	if _, err := Bucket(natstest.Context(b, 20*time.Second), js, "ha", 3, DefaultTTL); err != nil {
		b.Fatal(err)
	}
	benchFailover(b, c.URLs())
}
