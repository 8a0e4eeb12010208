package webhooks_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Workload of BenchmarkWebhook, the shape of test/zeroloss's
// BenchmarkRelay so that the figures sit side by side.
const (
	benchWarmup     = 200   // requests before measuring
	benchBurst      = 10000 // requests of the throughput phase
	benchWindow     = 256   // requests in flight at once in the throughput phase
	benchRate       = 500   // requests per second of the latency phase
	benchRateEvents = 2500  // requests of the latency phase: 5 s at benchRate
)

const benchTables = `
[[webhooks]]
path = "/hooks/am"
format = "alertmanager"
to = ["alice@localhost"]
token = "tok"
rate = "0"
timeout = "10s"
`

// BenchmarkWebhook measures a webhook end to end: an HTTP POST of an
// Alertmanager notification with one alert, rendered, sent to the mini
// server, acknowledged by it (XEP-0198), then answered 200. Each run
// serves a fixed workload whatever b.N is:
//
//   - notifications/s: benchBurst distinct notifications posted by
//     benchWindow clients at once, divided by the time from the first POST
//     to the last 200;
//   - p50-ms, p99-ms: POST to 200 of benchRateEvents notifications posted
//     at benchRate per second.
//
// The recipient is a user who stays online; rate limiting is off.
func BenchmarkWebhook(b *testing.B) {
	s := startXMPP(b)
	c := startCrier(b, s, benchTables)
	_ = s.user(b, "alice")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWindow * 2}}
	url := c.ops.URL + "/hooks/am"
	seq := 0
	next := func() string {
		seq++
		return amBody(fmt.Sprint("bench", seq), "firing", fmt.Sprint("A", seq), "i")
	}
	// postN posts n notifications with at most window in flight.
	postN := func(n, window int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, window)
		for range n {
			sem <- struct{}{}
			body := next()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				postOne(b, client, url, body)
			}()
		}
		wg.Wait()
	}
	var rates, p50s, p99s []float64
	for b.Loop() {
		postN(benchWarmup, benchWindow)
		start := time.Now()
		postN(benchBurst, benchWindow)
		rates = append(rates, float64(benchBurst)/time.Since(start).Seconds())

		var mu sync.Mutex
		var wg sync.WaitGroup
		lat := make([]time.Duration, 0, benchRateEvents)
		tick := time.NewTicker(time.Second / benchRate)
		for range benchRateEvents {
			<-tick.C
			body := next()
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := postOne(b, client, url, body)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}()
		}
		tick.Stop()
		wg.Wait()
		p50s = append(p50s, percentile(lat, 0.50))
		p99s = append(p99s, percentile(lat, 0.99))
	}
	b.ReportMetric(median(rates), "notifications/s")
	b.ReportMetric(median(p50s), "p50-ms")
	b.ReportMetric(median(p99s), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// postOne posts body and fails the benchmark unless the answer is 200; it
// returns the time to the answer.
func postOne(b *testing.B, client *http.Client, url, body string) time.Duration {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return 0
	}
	d := time.Since(start)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Errorf("POST = %d", resp.StatusCode)
	}
	return d
}

func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(p*float64(len(s))))]) / float64(time.Millisecond)
}
