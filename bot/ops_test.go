package bot

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape returns the body of GET /metrics.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// families returns the metric families of a scrape by name, with their type.
func families(text string) map[string]string {
	fams := make(map[string]string)
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			fams[f[2]] = f[3]
		}
	}
	return fams
}

// documentedMetrics returns the metric names of docs/OPERATIONS.md's
// "## Metrics" table (the first column's `crier_…` names).
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Metrics\n")
	if !ok {
		t.Fatal("docs/OPERATIONS.md has no ## Metrics section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	name := regexp.MustCompile("`(crier_[a-z_]+)")
	var names []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			names = append(names, m[1])
		}
	}
	if len(names) < 10 {
		t.Fatalf("only %d metrics found in docs/OPERATIONS.md: %v", len(names), names)
	}
	return names
}

// TestMetricsDocumentedFromFirstScrape checks docs/OPERATIONS.md's metric
// list against /metrics of a bot that has not connected yet: every
// documented family is there (at zero), and every crier_ family served is
// documented.
func TestMetricsDocumentedFromFirstScrape(t *testing.T) {
	srv := startServer(t)
	b, err := New(botConfig(t, srv, ""), Options{Version: "v9.9.9-test", RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(b.OpsHandler(func() error { return nil }))
	defer ts.Close()
	text := scrape(t, ts.URL)
	fams := families(text)
	docs := documentedMetrics(t)
	for _, n := range docs {
		if _, ok := fams[n]; !ok {
			t.Errorf("%s is documented but not in the first scrape", n)
		}
	}
	var undocumented []string
	for n := range fams {
		if strings.HasPrefix(n, "crier_") && !contains(docs, n) {
			undocumented = append(undocumented, n)
		}
	}
	sort.Strings(undocumented)
	if len(undocumented) > 0 {
		t.Errorf("served but not in docs/OPERATIONS.md's ## Metrics table: %v", undocumented)
	}
	if fams["crier_delivery_seconds"] != "histogram" {
		t.Errorf("crier_delivery_seconds is %q, want a histogram", fams["crier_delivery_seconds"])
	}
	for _, want := range []string{
		`crier_disconnects_total{reason="auth"} 0`,
		`crier_outbox_dropped_total{reason="queue_full"} 0`,
		`crier_rejected_total{reason="malformed"} 0`,
		`crier_reloads_total{result="refused"} 0`,
		`crier_rule_hits_total{rule="ping"} 0`,
		`crier_build_info{goversion="` + runtime.Version() + `",revision="`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("first scrape lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^crier_build_info\{goversion="[^"]+",revision="[^"]+",version="v9\.9\.9-test"\} 1$`).MatchString(text) {
		t.Errorf("crier_build_info is not 1 with the version:\n%s", grepLines(text, "crier_build_info"))
	}
}

// TestDeliveryHistogram checks that the replies a bot sends are observed
// in crier_delivery_seconds and crier_reply_seconds once the server
// acknowledged them.
func TestDeliveryHistogram(t *testing.T) {
	h := readyBot(t, "")
	ts := httptest.NewServer(h.bot.OpsHandler(func() error { return nil }))
	defer ts.Close()
	alice := joinRoom(t, h, "alice")
	first := scrape(t, ts.URL)
	before := histCount(t, first, "crier_delivery_seconds")
	repliesBefore := histCount(t, first, "crier_reply_seconds")
	for range 3 {
		if err := alice.SendMessage(room, "groupchat", "!ping"); err != nil {
			t.Fatal(err)
		}
		alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	}
	// The reply is acknowledged by the ping after it, an instant after
	// alice got it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		text := scrape(t, ts.URL)
		if n, r := histCount(t, text, "crier_delivery_seconds"), histCount(t, text, "crier_reply_seconds"); n >= before+3 && r >= repliesBefore+3 {
			if sum := histValue(t, text, "crier_delivery_seconds_sum"); sum <= 0 || sum > 30 {
				t.Fatalf("delivery seconds sum %v for %v replies", sum, n-before)
			}
			if sum := histValue(t, text, "crier_reply_seconds_sum"); sum <= 0 || sum > 30 {
				t.Fatalf("reply seconds sum %v for %v replies", sum, r-repliesBefore)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3 replies crier_delivery_seconds_count went from %v to %v, crier_reply_seconds_count from %v to %v",
				before, histCount(t, text, "crier_delivery_seconds"), repliesBefore, histCount(t, text, "crier_reply_seconds"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func histCount(t *testing.T, text, name string) float64 {
	return histValue(t, text, name+"_count")
}

func histValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the scrape", series)
	return 0
}

func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReloadRefusedFromBrowsers checks that POST /-/reload cannot come
// from a web page: a cross-site form post (a "simple" request a browser
// sends without asking), a fetch from a page (an Origin header, even one
// that rebound its name to this machine), and a request without the
// header are refused; a script's request with the header reloads.
func TestReloadRefusedFromBrowsers(t *testing.T) {
	srv := startServer(t)
	b, err := New(botConfig(t, srv, ""), Options{RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	ts := httptest.NewServer(b.OpsHandler(func() error { reloads++; return nil }))
	defer ts.Close()
	post := func(header map[string]string, contentType string) int {
		req, err := http.NewRequest("POST", ts.URL+"/-/reload", strings.NewReader("a=b"))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name   string
		header map[string]string
		ctype  string
	}{
		{"cross-site form post", map[string]string{"Origin": "http://evil.example"}, "application/x-www-form-urlencoded"},
		{"text/plain fetch from a page", map[string]string{"Origin": "http://evil.example"}, "text/plain"},
		{"no header", nil, ""},
		{"header but from a page (rebinding)", map[string]string{"Origin": "http://evil.example:9090", ReloadHeader: "1"}, "application/json"},
	} {
		if code := post(tc.header, tc.ctype); code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", tc.name, code)
		}
	}
	if reloads != 0 {
		t.Fatalf("%d reloads ran from refused requests", reloads)
	}
	if code := post(map[string]string{ReloadHeader: "1"}, ""); code != 200 || reloads != 1 {
		t.Fatalf("script's reload: status %d, %d reloads", code, reloads)
	}
}
