package webhooks

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/plugins"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const goldenTables = `
[[webhooks]]
path = "/am"
format = "alertmanager"
to = ["ops@example.org", "ops@conference.example.org"]
rooms = ["ops@conference.example.org"]
rate = "0"

[[webhooks]]
path = "/json"
format = "json"
to = ["ops@example.org", "ops@conference.example.org"]
rooms = ["ops@conference.example.org"]
rate = "0"

[[webhooks]]
path = "/text"
format = "text"
to = ["ops@example.org", "ops@conference.example.org"]
rooms = ["ops@conference.example.org"]
rate = "0"
`

// TestFormatsGolden renders each testdata input through its format's
// default templates and compares every message sent with the golden file.
func TestFormatsGolden(t *testing.T) {
	cases := []struct{ in, path string }{
		{"am_firing.json", "/am"},
		{"am_mixed.json", "/am"},
		{"am_resolved.json", "/am"},
		{"grafana.json", "/am"},
		{"json_basic.json", "/json"},
		{"text_basic.txt", "/text"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			e := start(t, goldenTables, nil)
			body, err := os.ReadFile(filepath.Join("testdata", c.in))
			if err != nil {
				t.Fatal(err)
			}
			rec := e.post(c.path, string(body))
			if rec.Code != http.StatusOK {
				t.Fatalf("POST = %d %s", rec.Code, rec.Body)
			}
			var b strings.Builder
			ms := e.host.messages()
			// One sender per recipient: the order between them is free.
			sort.Slice(ms, func(i, j int) bool { return ms[i].To < ms[j].To })
			for _, m := range ms {
				fmt.Fprintf(&b, "to: %s\ntype: %s\nsubject: %s\n\n%s\n---\n", m.To, m.Type, m.Subject, m.Body)
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(c.in, filepath.Ext(c.in))+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if b.String() != string(want) {
				t.Errorf("sent:\n%s\nwant (%s):\n%s", b.String(), golden, want)
			}
		})
	}
}

const tokenTables = `
[[webhooks]]
path = "/am"
to = ["ops@example.org"]
token = "s3cret-token"
timeout = "300ms"
retry_after = "7s"
max_bytes = 4096
rate = "0"
`

// TestStatusCodes checks the answer of each kind of request.
func TestStatusCodes(t *testing.T) {
	ok := amBody("g1", "firing:A:critical:x")
	auth := []string{"Authorization", "Bearer s3cret-token"}
	cases := []struct {
		name   string
		method string
		body   string
		header []string
		host   func(*fakeHost)
		code   int
		want   string
		reason string
	}{
		{name: "delivered", body: ok, header: auth, code: 200, want: "delivered to 1"},
		{name: "bearer scheme in any case", body: ok, header: []string{"Authorization", "bearer s3cret-token"}, code: 200},
		{name: "no token", body: ok, code: 401, reason: "unauthorized"},
		{name: "wrong token", body: ok, header: []string{"Authorization", "Bearer s3cret-tokeN"}, code: 401, reason: "unauthorized"},
		{name: "basic auth", body: ok, header: []string{"Authorization", "Basic czNjcmV0LXRva2Vu"}, code: 401, reason: "unauthorized"},
		{name: "GET", method: http.MethodGet, header: auth, code: 405, reason: "method"},
		{name: "not JSON", body: "hello", header: auth, code: 400, want: "not an Alertmanager payload", reason: "bad_body"},
		{name: "two objects", body: ok + ok, header: auth, code: 400, want: "data after", reason: "bad_body"},
		{name: "no alerts", body: `{"version":"4","alerts":[]}`, header: auth, code: 400, want: "no alerts", reason: "bad_body"},
		{name: "bad status", body: strings.Replace(ok, `"status":"firing","labels"`, `"status":"burning","labels"`, 1), header: auth, code: 400, want: "burning", reason: "bad_body"},
		{name: "version 5", body: strings.Replace(ok, `"version":"4"`, `"version":"5"`, 1), header: auth, code: 400, want: "version", reason: "bad_body"},
		{name: "not UTF-8", body: "\xff\xfe", header: auth, code: 400, want: "UTF-8", reason: "bad_body"},
		{name: "too large", body: `{"version":"4","alerts":[` + strings.Repeat(" ", 5000) + `]}`, header: auth, code: 413, reason: "too_large"},
		{name: "not connected", body: ok, header: auth, host: func(f *fakeHost) { f.connected = false }, code: 503, want: "not connected", reason: "not_connected"},
		{name: "outbox full", body: ok, header: auth, host: func(f *fakeHost) { f.sendErr = plugins.ErrBusy }, code: 503, reason: "busy"},
		{name: "lost", body: ok, header: auth, host: func(f *fakeHost) { f.doneErr = errors.New("stream closed") }, code: 503, want: "stream closed", reason: "failed"},
		{name: "no ack in time", body: ok, header: auth, host: func(f *fakeHost) { f.hold = true }, code: 503, want: "within 300ms", reason: "timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := newFakeHost()
			if c.host != nil {
				host.set(c.host)
			}
			e := start(t, tokenTables, host)
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, "/am", strings.NewReader(c.body))
			for i := 0; i+1 < len(c.header); i += 2 {
				req.Header.Set(c.header[i], c.header[i+1])
			}
			rec := newRecorder()
			e.p.Routes()["/am"].ServeHTTP(rec, req)
			if rec.Code != c.code {
				t.Fatalf("code = %d (%s), want %d", rec.Code, strings.TrimSpace(rec.Body.String()), c.code)
			}
			if c.want != "" && !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("body %q does not contain %q", rec.Body.String(), c.want)
			}
			if c.code == 503 && rec.Header().Get("Retry-After") != "7" {
				t.Errorf("Retry-After = %q, want 7", rec.Header().Get("Retry-After"))
			}
			if c.code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if got := e.counter("requests", "/am", fmt.Sprint(c.code)); got != 1 {
				t.Errorf("crier_webhook_requests_total{code=%d} = %v, want 1", c.code, got)
			}
			if c.reason != "" {
				if got := e.counter("rejected", "/am", c.reason); got != 1 {
					t.Errorf("crier_webhook_rejected_total{reason=%s} = %v, want 1", c.reason, got)
				}
			}
			if strings.Contains(e.logs.String(), "s3cret-token") {
				t.Error("the token is in the log")
			}
			if c.code == 200 || c.reason == "timeout" || c.reason == "failed" {
				return
			}
			if n := len(e.host.messages()); n != 0 {
				t.Errorf("%d messages sent for a refused request", n)
			}
		})
	}
}

// TestStopping checks that a POST after Stop began gets 503, and that a
// request waiting for its acknowledgement when the plugin stops gets 503
// too (never a 200 for what was not delivered).
func TestStopping(t *testing.T) {
	host := newFakeHost()
	host.hold = true
	e := start(t, `
[[webhooks]]
path = "/am"
to = ["ops@example.org"]
timeout = "10s"
rate = "0"
`, host)
	codes := make(chan int, 1)
	go func() { codes <- e.post("/am", amBody("g", "firing:A:x:y")).Code }()
	waitFor(t, 2*time.Second, "the message to be sent", func() bool { return len(host.messages()) == 1 })
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := contextTimeout(200 * time.Millisecond)
		defer cancel()
		stopped <- e.p.Stop(ctx)
	}()
	waitFor(t, 2*time.Second, "stopping", func() bool {
		e.p.mu.Lock()
		defer e.p.mu.Unlock()
		return e.p.stopping
	})
	if rec := e.post("/am", amBody("g2", "firing:B:x:y")); rec.Code != 503 {
		t.Errorf("POST while stopping = %d, want 503", rec.Code)
	}
	if code := <-codes; code != 503 {
		t.Errorf("request in flight at stop = %d, want 503", code)
	}
	<-stopped
}

// TestDedupe checks that a retried notification is not posted twice once
// delivered, that a retry while the first copy is in flight waits for it,
// and that a changed notification (resolved) is posted.
func TestDedupe(t *testing.T) {
	host := newFakeHost()
	e := start(t, `
[[webhooks]]
path = "/am"
to = ["ops@example.org", "dev@example.org"]
timeout = "200ms"
rate = "0"
`, host)
	firing := amBody("g", "firing:A:critical:x")
	for i := range 3 {
		if rec := e.post("/am", firing); rec.Code != 200 {
			t.Fatalf("POST %d = %d %s", i, rec.Code, rec.Body)
		}
	}
	if n := len(host.messages()); n != 2 {
		t.Fatalf("%d messages after three copies, want 2 (one per recipient)", n)
	}
	if got := e.counter("messages", "/am", "duplicate"); got != 4 {
		t.Errorf("duplicates = %v, want 4", got)
	}

	// In flight: the first copy times out (503) and stays in flight; the
	// retry waits for it and gets 200 once it is acknowledged, without a
	// second send.
	host.set(func(f *fakeHost) { f.hold = true })
	second := amBody("g", "firing:A:critical:x", "firing:B:critical:y")
	if rec := e.post("/am", second); rec.Code != 503 {
		t.Fatalf("unacknowledged POST = %d, want 503", rec.Code)
	}
	sent := len(host.messages())
	done := make(chan int, 1)
	go func() { done <- e.post("/am", second).Code }()
	time.Sleep(50 * time.Millisecond)
	host.release(nil)
	if code := <-done; code != 200 {
		t.Fatalf("retry = %d, want 200", code)
	}
	if n := len(host.messages()); n != sent {
		t.Errorf("the retry sent %d more messages, want none", n-sent)
	}

	// A lost copy is sent again by the retry.
	host.set(func(f *fakeHost) { f.doneErr = errors.New("lost") })
	third := amBody("g", "firing:C:critical:z")
	if rec := e.post("/am", third); rec.Code != 503 {
		t.Fatalf("lost = %d, want 503", rec.Code)
	}
	host.set(func(f *fakeHost) { f.doneErr = nil })
	sent = len(host.messages())
	if rec := e.post("/am", third); rec.Code != 200 {
		t.Fatalf("retry of a lost copy = %d", rec.Code)
	}
	if n := len(host.messages()) - sent; n != 2 {
		t.Errorf("retry of a lost copy sent %d, want 2", n)
	}

	// Resolved is another notification.
	sent = len(host.messages())
	if rec := e.post("/am", amBody("g", "resolved:A:critical:x")); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	if n := len(host.messages()) - sent; n != 2 {
		t.Errorf("resolved sent %d, want 2", n)
	}
}

// TestDedupeSurvivesInstances checks that the delivered keys live in the
// state store with an expiry, so that a new instance (a reload, a restart
// with a store) does not post a retried notification again, and that
// without a store the plugin still works from memory.
func TestDedupeSurvivesInstances(t *testing.T) {
	tables := "[[webhooks]]\npath = \"/am\"\nto = [\"ops@example.org\"]\nrate = \"0\"\ndedupe = \"30m\"\n"
	host := newFakeHost()
	e1 := start(t, tables, host)
	body := amBody("g", "firing:A:critical:x")
	if rec := e1.post("/am", body); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	var found bool
	_ = host.ns.View(func(tx stateTx) error {
		return tx.ForEach("d/", func(k string, _ []byte) error {
			at, ok := tx.Expiry(k)
			found = ok && time.Until(at) > 29*time.Minute && time.Until(at) <= 30*time.Minute
			return nil
		})
	})
	if !found {
		t.Fatal("no delivered key with a 30m expiry in the state")
	}
	e2 := start(t, tables, host)
	if rec := e2.post("/am", body); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	if n := len(host.messages()); n != 1 {
		t.Errorf("%d messages, want 1: the second instance posted the copy again", n)
	}

	nostore := newFakeHost()
	nostore.noStore = true
	e3 := start(t, tables, nostore)
	for range 2 {
		if rec := e3.post("/am", body); rec.Code != 200 {
			t.Fatal(rec.Code)
		}
	}
	if n := len(nostore.messages()); n != 1 {
		t.Errorf("without a store: %d messages, want 1", n)
	}
}

// TestRouting checks routing by label: the first matching route wins,
// continue goes on, and what no route claims goes to the webhook's to.
func TestRouting(t *testing.T) {
	host := newFakeHost()
	host.rooms["oncall@conference.example.org"] = true
	e := start(t, `
[[webhooks]]
path = "/am"
to = ["ops@example.org"]
rate = "0"

[[webhooks.route]]
match = {severity = "critical"}
to = ["oncall@conference.example.org"]
continue = true

[[webhooks.route]]
match_re = {instance = "db.*"}
to = ["dba@example.org"]

[[webhooks.route]]
match = {severity = "info"}
to = ["never@example.org"]
`, host)
	rec := e.post("/am", amBody("g", "firing:A:critical:web1", "firing:B:warning:web2", "firing:C:critical:db1", "firing:D:info:db2"))
	if rec.Code != 200 {
		t.Fatal(rec.Code, rec.Body)
	}
	got := map[string]plugins.Message{}
	for _, m := range host.messages() {
		got[m.To] = m
	}
	want := map[string][]string{
		"oncall@conference.example.org": {"A on web1", "C on db1"},
		"dba@example.org":               {"C on db1", "D on db2"},
		"ops@example.org":               {"B on web2"},
	}
	if len(got) != len(want) {
		t.Fatalf("sent to %v, want %v", keys(got), want)
	}
	for to, sums := range want {
		m := got[to]
		for _, s := range sums {
			if !strings.Contains(m.Body, s) {
				t.Errorf("%s: body %q lacks %q", to, m.Body, s)
			}
		}
		if n := strings.Count(m.Body, "\n- "); n != len(sums) {
			t.Errorf("%s: %d alerts listed, want %d:\n%s", to, n, len(sums), m.Body)
		}
	}
	if m := got["oncall@conference.example.org"]; m.Type != "groupchat" || m.Subject != "" || m.Work {
		t.Errorf("room got type %q subject %q work %v, want groupchat without subject, the leader's", m.Type, m.Subject, m.Work)
	}
	if m := got["ops@example.org"]; m.Type != "headline" || !strings.Contains(m.Subject, "[FIRING:1] B") || !m.Work {
		t.Errorf("user got type %q subject %q work %v, want shared work any [ha] instance delivers", m.Type, m.Subject, m.Work)
	}
}

// TestRoutingJSON routes JSON payloads by their fields.
func TestRoutingJSON(t *testing.T) {
	e := start(t, `
[[webhooks]]
path = "/j"
format = "json"
to = ["ops@example.org"]
rate = "0"
[[webhooks.route]]
match = {team = "db"}
to = ["dba@example.org"]
`, nil)
	for _, c := range []struct{ body, to string }{
		{`{"title":"t","team":"db"}`, "dba@example.org"},
		{`{"title":"t","team":"web"}`, "ops@example.org"},
		{`{"title":"t","to":"x@example.org"}`, "x@example.org"},
	} {
		before := len(e.host.messages())
		if rec := e.post("/j", c.body); rec.Code != 200 {
			t.Fatal(rec.Code, rec.Body)
		}
		ms := e.host.messages()[before:]
		if len(ms) != 1 || ms[0].To != c.to {
			t.Errorf("%s went to %v, want %s", c.body, ms, c.to)
		}
	}
}

// TestRateLimitGroupsBurst checks that a burst to one recipient is held to
// the rate and that what waited goes out together in one message, each
// request answered 200 once its part is acknowledged.
func TestRateLimitGroupsBurst(t *testing.T) {
	e := start(t, `
[[webhooks]]
path = "/t"
format = "text"
to = ["ops@example.org"]
rate = "1/300ms"
timeout = "5s"
`, nil)
	const n = 8
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- e.post("/t", fmt.Sprintf("note %d", i)).Code
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("code %d, want 200", c)
		}
	}
	ms := e.host.messages()
	if len(ms) > 3 {
		t.Errorf("%d stanzas for a burst of %d at 1/300ms, want at most 3", len(ms), n)
	}
	all := ""
	for _, m := range ms {
		all += m.Body + "\n"
	}
	for i := range n {
		if strings.Count(all, fmt.Sprintf("note %d\n", i)) != 1 {
			t.Errorf("note %d not sent exactly once:\n%s", i, all)
		}
	}
	if got := e.counter("batched", "/t"); got < n-2 {
		t.Errorf("batched = %v, want at least %d", got, n-2)
	}
}

// TestRateLimitStorm checks that a storm beyond the rate answers 503 for
// what cannot go out in time (the sender retries), that the recipient gets
// no more stanzas than the bucket allows, each carrying at most maxBatch
// notifications, and that every notification answered 200 is in one.
func TestRateLimitStorm(t *testing.T) {
	e := start(t, `
[[webhooks]]
path = "/am"
to = ["ops@example.org"]
rate = "2/1h"
timeout = "500ms"
`, nil)
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := map[int]int{}
	ok := map[string]bool{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("S%d", i)
			c := e.post("/am", amBody(name, "firing:"+name+":critical:x")).Code
			mu.Lock()
			count[c]++
			if c == 200 {
				ok[name] = true
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	ms := e.host.messages()
	if len(ms) > 2 {
		t.Errorf("%d stanzas in the storm, want at most 2 (the bucket)", len(ms))
	}
	seen := map[string]int{}
	for _, m := range ms {
		parts := strings.Split(m.Body, "\n\n")
		if len(parts) > maxBatch {
			t.Errorf("a stanza carries %d notifications, more than %d", len(parts), maxBatch)
		}
		for _, part := range parts {
			seen[strings.Fields(part)[1]]++
		}
	}
	for name := range ok {
		if seen[name] != 1 {
			t.Errorf("%s answered 200 but sent %d times", name, seen[name])
		}
	}
	if count[200]+count[503] != n || count[503] == 0 || count[200] == 0 || count[200] > 2*maxBatch {
		t.Errorf("codes %v: want at most %d 200 and the rest 503", count, 2*maxBatch)
	}
}

// TestTemplateErrorFallsBack checks that a template failing at run time is
// logged and counted and the default template used: the alert still goes
// out and the request gets 200.
func TestTemplateErrorFallsBack(t *testing.T) {
	e := start(t, `
[[webhooks]]
path = "/am"
to = ["ops@example.org"]
rate = "0"
template = '{{if .Firing}}custom {{(index .Firing 0).Name}}{{else}}{{(index .Resolved 3).Name}}{{end}}'
`, nil)
	if rec := e.post("/am", amBody("g", "firing:A:critical:x")); rec.Code != 200 {
		t.Fatal(rec.Code)
	}
	if rec := e.post("/am", amBody("g", "resolved:A:critical:x")); rec.Code != 200 {
		t.Fatal(rec.Code, rec.Body)
	}
	ms := e.host.messages()
	if len(ms) != 2 || ms[0].Body != "custom A" || !strings.HasPrefix(ms[1].Body, "[RESOLVED:1] A") {
		t.Fatalf("messages %+v", ms)
	}
	if got := e.counter("template_errors", "/am"); got != 1 {
		t.Errorf("template errors = %v, want 1", got)
	}
	if !strings.Contains(e.logs.String(), "default template") {
		t.Error("the template failure is not logged")
	}
}

// TestHostileLabels checks that label values cannot forge lines or hide
// text with control or bidirectional characters, and that markup stays
// text (the bot escapes it on the wire).
func TestHostileLabels(t *testing.T) {
	e := start(t, "[[webhooks]]\npath = \"/am\"\nto = [\"ops@example.org\"]\nrate = \"0\"\n", nil)
	body := amBody("g", "firing:<b>Name</b>\n[RESOLVED 9] fake:crit\x1b[31m:inst\u202egnp.exe\u0000")
	rec := e.post("/am", body)
	if rec.Code != 200 {
		t.Fatal(rec.Code, rec.Body)
	}
	m := e.host.messages()[0]
	if strings.ContainsAny(m.Body+m.Subject, "\x1b\u202e\x00") {
		t.Errorf("control characters in %q", m.Body)
	}
	if strings.Contains(m.Body, "\n[RESOLVED 9]") {
		t.Errorf("a label forged a line: %q", m.Body)
	}
	if !strings.Contains(m.Body, "<b>Name</b> [RESOLVED 9] fake") {
		t.Errorf("markup not kept as text: %q", m.Body)
	}
}

// TestUnknownFormat checks the load-time errors of bad tables.
func TestLoadErrors(t *testing.T) {
	cases := []struct{ tables, want string }{
		{"[[webhooks]]\npath = \"/x\"\nformat = \"xml\"\nto = [\"a@example.org\"]\n", `test.toml:7: webhooks.format: must be "alertmanager", "json" or "text", not "xml"`},
		{"[[webhooks]]\npath = \"/x\"\nformat = \"grafana\"\nto = [\"a@example.org\"]\n", `use "alertmanager"`},
		{"[[webhooks]]\npath = \"/x\"\nto = [\"a@example.org\"]\ntemplate = \"{{.Nope}}\"\n", "test.toml:8: webhooks.template: template: alertmanager:1:2: executing \"alertmanager\" at <.Nope>"},
		{"[[webhooks]]\npath = \"/x\"\n", "test.toml:5: webhooks.to: must name at least one JID"},
		{"[[webhooks]]\npath = \"/-/ready\"\nto = [\"a@example.org\"]\n", "is the bot's own"},
		{"[[webhooks]]\npath = \"/x\"\nto = [\"a@example.org\"]\n[[webhooks]]\npath = \"/x\"\nto = [\"a@example.org\"]\n", "already served"},
		{"[[webhooks]]\npath = \"/x\"\nto = [\"a@example.org\"]\ntoken = \"a\"\ntoken_file = \"b\"\n", "not both"},
		{"[[webhooks]]\npath = \"/x\"\nto = [\"a@example.org\"]\n[[webhooks.route]]\nmatch_re = {a = \"(\"}\nto = [\"b@example.org\"]\n", "test.toml:9: webhooks.route.match_re: a: error parsing regexp"},
		{"[[webhooks]]\npath = \"/x\"\nto = [\"a@example.org\"]\nrate = \"fast\"\n", "rate"},
		{"[[webhooks]]\npath = \"/x\"\nto = [\"a@example.org\"]\nbogus = 1\n", "unknown key"},
	}
	for _, c := range cases {
		_, _, err := loadWebhooks(t, c.tables)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.tables, err, c.want)
		}
	}
}

// TestFloodOfPOSTs sends many concurrent requests, half of them with a bad
// token, while the host is slow: every good one is answered 200 or 503 and
// every 200 was sent exactly once; the bad ones are 401 and the log stays
// short.
func TestFloodOfPOSTs(t *testing.T) {
	e := start(t, `
[[webhooks]]
path = "/am"
to = ["ops@example.org"]
token = "tok"
rate = "0"
timeout = "2s"
`, nil)
	const n = 400
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	ok := map[string]bool{}
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tok := "tok"
			if i%2 == 1 {
				tok = "bad"
			}
			name := fmt.Sprintf("F%d", i)
			c := e.post("/am", amBody(name, "firing:"+name+":critical:x"), "Authorization", "Bearer "+tok).Code
			mu.Lock()
			codes[c]++
			if c == 200 {
				ok[name] = true
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[401] != n/2 || codes[200]+codes[503] != n/2 {
		t.Fatalf("codes %v", codes)
	}
	// Messages that waited together went out as one stanza: count the
	// headlines.
	seen := map[string]int{}
	for _, m := range e.host.messages() {
		for _, part := range strings.Split(m.Body, "\n\n") {
			seen[strings.Fields(part)[1]]++
		}
	}
	for name := range ok {
		if seen[name] != 1 {
			t.Errorf("%s answered 200 but sent %d times", name, seen[name])
		}
	}
	if lines := strings.Count(e.logs.String(), "not delivered"); lines > 10 {
		t.Errorf("%d log lines for the flood, want a few", lines)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDefaults checks the defaults of keys not written: the rate limit is
// on, and "0" turns it off.
func TestDefaults(t *testing.T) {
	c, _, err := loadWebhooks(t, "[[webhooks]]\npath = \"/a\"\nto = [\"a@example.org\"]\n[[webhooks]]\npath = \"/b\"\nto = [\"a@example.org\"]\nrate = \"0\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if c[0].Rate != DefaultRate || !c[1].Rate.IsZero() || c[0].Format != FormatAlertmanager {
		t.Errorf("rates %v, %v; format %q", c[0].Rate, c[1].Rate, c[0].Format)
	}
}

// TestEmptyTemplateFallsBack checks that a template rendering nothing is
// treated as a failure: the default template is used.
func TestEmptyTemplateFallsBack(t *testing.T) {
	e := start(t, "[[webhooks]]\npath = \"/am\"\nto = [\"ops@example.org\"]\nrate = \"0\"\ntemplate = '{{if .Resolved}}gone{{end}}'\n", nil)
	if rec := e.post("/am", amBody("g", "firing:A:critical:x")); rec.Code != 200 {
		t.Fatal(rec.Code, rec.Body)
	}
	if ms := e.host.messages(); len(ms) != 1 || !strings.HasPrefix(ms[0].Body, "[FIRING:1] A") {
		t.Fatalf("messages %+v", ms)
	}
	if got := e.counter("template_errors", "/am"); got != 1 {
		t.Errorf("template errors = %v, want 1", got)
	}
}
