package boshcm

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/internal/boshwire"
)

// echoServe is a scripted server: it answers the stream header with its own
// header and empty features, and echoes every <message/> it reads.
func echoServe(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	var seen bytes.Buffer
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		seen.Write(buf[:n])
		for {
			s := seen.String()
			switch {
			case strings.HasPrefix(s, "<?xml"):
				i := strings.Index(s, "?>")
				if i < 0 {
					goto more
				}
				seen.Next(i + 2)
			case strings.HasPrefix(s, "<stream:stream"):
				i := strings.IndexByte(s, '>')
				if i < 0 {
					goto more
				}
				seen.Next(i + 1)
				fmt.Fprintf(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' version='1.0'><stream:features/>")
			case strings.HasPrefix(s, "</stream:stream>"):
				_, _ = io.WriteString(c, "</stream:stream>")
				return
			default:
				i := strings.Index(s, "</message>")
				if i < 0 {
					goto more
				}
				_, _ = io.WriteString(c, s[:i+len("</message>")])
				seen.Next(i + len("</message>"))
			}
		}
	more:
	}
}

const ns = "xmlns='http://jabber.org/protocol/httpbind'"

type tester struct {
	t   *testing.T
	url string
	h   *Handler
}

func newTester(t *testing.T, cfg Config) *tester {
	cfg.Domain = "example.test"
	if cfg.Serve == nil {
		cfg.Serve = echoServe
	}
	h := New(cfg)
	srv := httptest.NewUnstartedServer(h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(func() { _ = h.Close(); srv.Close() })
	return &tester{t: t, url: srv.URL, h: h}
}

func (x *tester) post(body string) (int, *boshwire.Body, string) {
	x.t.Helper()
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Post(x.url, "text/xml; charset=utf-8", strings.NewReader(body))
	if err != nil {
		x.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	b, _ := boshwire.ParseBody(data)
	return resp.StatusCode, b, string(data)
}

func (x *tester) create(rid int) string {
	x.t.Helper()
	code, b, raw := x.post(fmt.Sprintf("<body rid='%d' to='example.test' wait='1' hold='1' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh' %s/>", rid, ns))
	if code != 200 || b == nil || b.Get("sid") == "" {
		x.t.Fatalf("creation: %d %s", code, raw)
	}
	if !strings.Contains(raw, "<stream:features") || b.Get("requests") != "2" || b.Get("hold") != "1" || b.Get("authid") != "s1" {
		x.t.Fatalf("creation response lacks features or attributes: %s", raw)
	}
	return b.Get("sid")
}

func TestBadInput(t *testing.T) {
	before := runtime.NumGoroutine()
	x := newTester(t, Config{MaxBody: 1024})
	sid := x.create(100)
	for _, tc := range []struct {
		name, body string
		code       int
		cond       string
	}{
		{"not xml", "hello", 200, "bad-request"},
		{"wrong namespace", "<body rid='1' xmlns='urn:other'/>", 200, "bad-request"},
		{"mismatched tags", "<body rid='1' " + ns + "><a></b></body>", 200, "bad-request"},
		{"missing rid", "<body sid='" + sid + "' " + ns + "/>", 200, "bad-request"},
		{"huge body", "<body rid='1' " + ns + ">" + strings.Repeat("<a/>", 1000) + "</body>", 200, "policy-violation"},
		{"unknown sid", "<body rid='1' sid='nope' " + ns + "/>", 200, "item-not-found"},
		{"wrong host", "<body rid='1' to='other.test' " + ns + "/>", 200, "host-unknown"},
		{"no host", "<body rid='1' ver='1.6' " + ns + "/>", 200, "improper-addressing"},
		{"bad wait", "<body rid='1' to='example.test' ver='1.6' wait='-1' " + ns + "/>", 200, "bad-request"},
		{"bad hold, legacy client", "<body rid='1' to='example.test' hold='x' " + ns + "/>", 400, "bad-request"},
		{"rid outside window", fmt.Sprintf("<body rid='%d' sid='%s' %s/>", 150, sid, ns), 200, "item-not-found"},
	} {
		code, b, raw := x.post(tc.body)
		if code != tc.code || b == nil || b.Get("type") != "terminate" || b.Get("condition") != tc.cond {
			t.Errorf("%s: got %d %s, want %d terminate %s", tc.name, code, raw, tc.code, tc.cond)
		}
	}
	// The window error ended the session.
	if code, b, raw := x.post(fmt.Sprintf("<body rid='101' sid='%s' %s/>", sid, ns)); code != 200 || b == nil || b.Get("condition") != "item-not-found" {
		t.Errorf("after item-not-found: %d %s", code, raw)
	}
	_ = x.h.Close()
	checkGoroutines(t, before)
}

func TestRepeatedRIDAndEcho(t *testing.T) {
	x := newTester(t, Config{})
	sid := x.create(200)
	msg := "<message xmlns='jabber:client' to='a@example.test'><body>hi</body></message>"
	code, b, raw := x.post(fmt.Sprintf("<body rid='201' sid='%s' %s>%s</body>", sid, ns, msg))
	if code != 200 || b == nil || len(b.Children) != 1 || !strings.Contains(raw, "<body>hi</body>") {
		t.Fatalf("echo: %d %s", code, raw)
	}
	// The same rid again gets the same answer.
	_, _, again := x.post(fmt.Sprintf("<body rid='201' sid='%s' %s>%s</body>", sid, ns, msg))
	if again != raw {
		t.Fatalf("repeated rid: got %s, want %s", again, raw)
	}
	// An empty request is held for 'wait' (1s) and answered empty.
	start := time.Now()
	code, b, raw = x.post(fmt.Sprintf("<body rid='202' sid='%s' %s/>", sid, ns))
	if d := time.Since(start); code != 200 || len(b.Children) != 0 || d < 900*time.Millisecond || d > 3*time.Second {
		t.Fatalf("held request: %d %s after %v", code, raw, d)
	}
	// Terminate closes the stream.
	code, b, raw = x.post(fmt.Sprintf("<body rid='203' sid='%s' type='terminate' %s/>", sid, ns))
	if code != 200 || b.Get("type") != "terminate" || b.Get("condition") != "" {
		t.Fatalf("terminate: %d %s", code, raw)
	}
	if err := waitSessions(x.h, 0); err != nil {
		t.Fatal(err)
	}
}

func TestFloodIsPolicyViolation(t *testing.T) {
	x := newTester(t, Config{})
	sid := x.create(300)
	var wg sync.WaitGroup
	conds := make(chan string, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, b, _ := x.post(fmt.Sprintf("<body rid='%d' sid='%s' %s/>", 301+i, sid, ns))
			if b != nil {
				conds <- b.Get("condition")
			}
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	close(conds)
	var got []string
	for c := range conds {
		got = append(got, c)
	}
	if !strings.Contains(strings.Join(got, ","), "policy-violation") {
		t.Fatalf("flood conditions: %v, want a policy-violation", got)
	}
}

func TestInactivityEndsSession(t *testing.T) {
	x := newTester(t, Config{Inactivity: 1})
	x.create(400)
	if x.h.Sessions() != 1 {
		t.Fatal("no session")
	}
	if err := waitSessions(x.h, 0); err != nil {
		t.Fatal(err)
	}
}

func TestCORSAndGet(t *testing.T) {
	x := newTester(t, Config{})
	req, _ := http.NewRequest(http.MethodOptions, x.url, nil)
	req.Header.Set("Origin", "http://elsewhere.test")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Get(x.url)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(data), "BOSH") {
		t.Fatalf("GET: %d %s", resp.StatusCode, data)
	}
}

func TestSessionCap(t *testing.T) {
	x := newTester(t, Config{MaxSessions: 1})
	x.create(500)
	code, b, raw := x.post("<body rid='600' to='example.test' " + ns + "/>")
	if code != 200 || b == nil || b.Get("type") != "terminate" || b.Get("condition") != "remote-connection-failed" {
		t.Fatalf("over the cap: %d %s", code, raw)
	}
}

func waitSessions(h *Handler, n int) error {
	for range 500 {
		if h.Sessions() == n {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%d sessions, want %d", h.Sessions(), n)
}

func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	for range 250 {
		http.DefaultClient.CloseIdleConnections()
		if runtime.NumGoroutine() <= before+2 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
}

func TestStaleRID(t *testing.T) {
	before := runtime.NumGoroutine()
	x := newTester(t, Config{})
	sid := x.create(700)
	msg := "<message xmlns='jabber:client' to='a@example.test'><body>hi</body></message>"
	for rid := 701; rid <= 705; rid++ {
		if code, _, raw := x.post(fmt.Sprintf("<body rid='%d' sid='%s' %s>%s</body>", rid, sid, ns, msg)); code != 200 {
			t.Fatalf("rid %d: %d %s", rid, code, raw)
		}
	}
	// rid 701 was answered long ago and its answer is no longer kept: the
	// repeat cannot be answered, and the session ends.
	code, b, raw := x.post(fmt.Sprintf("<body rid='701' sid='%s' %s/>", sid, ns))
	if code != 200 || b == nil || b.Get("type") != "terminate" || b.Get("condition") != "item-not-found" {
		t.Fatalf("stale rid: %d %s, want 200 terminate item-not-found", code, raw)
	}
	if err := waitSessions(x.h, 0); err != nil {
		t.Fatal(err)
	}
	if code, b, raw := x.post(fmt.Sprintf("<body rid='706' sid='%s' %s/>", sid, ns)); code != 200 || b == nil || b.Get("condition") != "item-not-found" {
		t.Errorf("after the stale rid: %d %s", code, raw)
	}
	_ = x.h.Close()
	checkGoroutines(t, before)
}

func TestTerminateLiveSession(t *testing.T) {
	before := runtime.NumGoroutine()
	x := newTester(t, Config{})
	sid := x.create(800)
	if got := x.h.SIDs(); len(got) != 1 || got[0] != sid {
		t.Fatalf("SIDs() = %v, want [%s]", got, sid)
	}
	type answer struct {
		code int
		b    *boshwire.Body
		raw  string
	}
	held := make(chan answer, 1)
	go func() {
		// Not x.post: it may not fail the test from this goroutine.
		resp, err := http.Post(x.url, "text/xml; charset=utf-8", strings.NewReader(fmt.Sprintf("<body rid='801' sid='%s' %s/>", sid, ns)))
		if err != nil {
			held <- answer{raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		b, _ := boshwire.ParseBody(data)
		held <- answer{resp.StatusCode, b, string(data)}
	}()
	time.Sleep(100 * time.Millisecond) // the request is held (wait is 1s)
	start := time.Now()
	if !x.h.Terminate(sid, "policy-violation") {
		t.Fatal("Terminate: session not live")
	}
	if x.h.Terminate(sid, "policy-violation") {
		t.Error("Terminate of an ended session reported it live")
	}
	select {
	case a := <-held:
		if a.code != 200 || a.b == nil || a.b.Get("type") != "terminate" || a.b.Get("condition") != "policy-violation" {
			t.Fatalf("held request: %d %s, want 200 terminate policy-violation", a.code, a.raw)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("the held request was answered after %v, not at once", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held request was not answered")
	}
	// A request racing the end learns the same condition.
	if code, b, raw := x.post(fmt.Sprintf("<body rid='802' sid='%s' %s/>", sid, ns)); code != 200 || b == nil || b.Get("condition") != "policy-violation" {
		t.Errorf("after Terminate: %d %s", code, raw)
	}
	if err := waitSessions(x.h, 0); err != nil {
		t.Fatal(err)
	}
	_ = x.h.Close()
	checkGoroutines(t, before)
}

// async posts body in the background.
func (x *tester) async(body string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		resp, err := http.Post(x.url, "text/xml; charset=utf-8", strings.NewReader(body))
		if err != nil {
			ch <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		ch <- fmt.Sprintf("%d %s", resp.StatusCode, data)
	}()
	return ch
}

// within returns what ch delivers within d, or "" when nothing came.
func within(ch <-chan string, d time.Duration) string {
	select {
	case s := <-ch:
		return s
	case <-time.After(d):
		return ""
	}
}

func msg(body string) string {
	return "<message xmlns='jabber:client' to='a@example.test'><body>" + body + "</body></message>"
}

// TestRIDWindow covers XEP-0124 §14 on its own: requests within the window
// arriving out of order are buffered and answered in rid order; a repeated
// rid still waiting replaces the original; the window is 'requests' wide
// (one more for a terminate) above the last answered rid.
func TestRIDWindow(t *testing.T) {
	x := newTester(t, Config{})
	sid := x.create(1000)
	// 1002 before 1001: buffered, not an error.
	late := x.async(fmt.Sprintf("<body rid='1002' sid='%s' %s>%s</body>", sid, ns, msg("two")))
	if got := within(late, 200*time.Millisecond); got != "" {
		t.Fatalf("rid 1002 answered before 1001 arrived: %s", got)
	}
	code, _, raw := x.post(fmt.Sprintf("<body rid='1001' sid='%s' %s>%s</body>", sid, ns, msg("one")))
	if code != 200 || !strings.Contains(raw, "<body>one</body>") || strings.Contains(raw, "terminate") {
		t.Fatalf("rid 1001: %d %s", code, raw)
	}
	got := within(late, 5*time.Second)
	if !strings.HasPrefix(got, "200 ") || !strings.Contains(got, "<body>two</body>") || strings.Contains(got, "terminate") {
		t.Fatalf("rid 1002 after 1001: %q", got)
	}
	if strings.Contains(raw, "<body>two</body>") {
		t.Errorf("rid 1001's answer carries rid 1002's echo: %s", raw)
	}
	// A repeat of a held rid takes its place; the original is answered.
	first := x.async(fmt.Sprintf("<body rid='1003' sid='%s' %s/>", sid, ns))
	time.Sleep(100 * time.Millisecond)
	again := x.async(fmt.Sprintf("<body rid='1003' sid='%s' %s/>", sid, ns))
	if got := within(first, 2*time.Second); !strings.HasPrefix(got, "200 ") || strings.Contains(got, "terminate") {
		t.Fatalf("the replaced original: %q", got)
	}
	// Beyond the window (last answered 1002, requests 2: up to 1004): 1005
	// ends the session with item-not-found, and the held 1003 learns it.
	code, b, raw := x.post(fmt.Sprintf("<body rid='1005' sid='%s' %s/>", sid, ns))
	if code != 200 || b == nil || b.Get("condition") != "item-not-found" {
		t.Fatalf("rid beyond the window: %d %s", code, raw)
	}
	if got := within(again, 2*time.Second); !strings.Contains(got, "condition='item-not-found'") {
		t.Fatalf("the held request at the window error: %q", got)
	}
}

// TestTerminateMayExceedWindow: a terminate may be one request beyond
// 'requests' (XEP-0124 §11); it waits for the missing rid like any other,
// is answered type='terminate', and the requests open before it learn
// other-request (§17.2).
func TestTerminateMayExceedWindow(t *testing.T) {
	x := newTester(t, Config{})
	sid := x.create(1100)
	held := x.async(fmt.Sprintf("<body rid='1101' sid='%s' %s/>", sid, ns))
	time.Sleep(100 * time.Millisecond)
	term := x.async(fmt.Sprintf("<body rid='1103' sid='%s' type='terminate' %s/>", sid, ns))
	if got := within(term, 200*time.Millisecond); got != "" {
		t.Fatalf("the terminate was answered before rid 1102 arrived: %s", got)
	}
	code, b, raw := x.post(fmt.Sprintf("<body rid='1102' sid='%s' %s>%s</body>", sid, ns, msg("x")))
	if code != 200 || b == nil || b.Get("type") != "terminate" || b.Get("condition") != "other-request" {
		t.Errorf("the request before the terminate: %d %s, want terminate other-request", code, raw)
	}
	if got := within(held, 2*time.Second); !strings.Contains(got, "condition='other-request'") {
		t.Errorf("the held request at the terminate: %q", got)
	}
	got := within(term, 2*time.Second)
	if !strings.HasPrefix(got, "200 ") || !strings.Contains(got, "type='terminate'") || strings.Contains(got, "condition") {
		t.Errorf("the terminate: %q, want 200 type='terminate' without a condition", got)
	}
	if err := waitSessions(x.h, 0); err != nil {
		t.Fatal(err)
	}
}

// TestLegacyClientGetsHTTPCodes: a client without 'ver' is a legacy client
// (XEP-0124 §17.1) and gets the deprecated HTTP error codes.
func TestLegacyClientGetsHTTPCodes(t *testing.T) {
	x := newTester(t, Config{})
	code, b, raw := x.post("<body rid='1200' to='example.test' wait='1' hold='1' " + ns + "/>")
	if code != 200 || b == nil || b.Get("sid") == "" {
		t.Fatalf("creation: %d %s", code, raw)
	}
	sid := b.Get("sid")
	code, b, raw = x.post(fmt.Sprintf("<body rid='1250' sid='%s' %s/>", sid, ns))
	if code != 404 || b == nil || b.Get("condition") != "item-not-found" {
		t.Errorf("legacy client, rid beyond the window: %d %s, want 404 item-not-found", code, raw)
	}
	code, _, raw = x.post(fmt.Sprintf("<body rid='1201' sid='%s' %s/>", sid, ns))
	if code != 404 {
		t.Errorf("legacy client, after the end: %d %s, want 404", code, raw)
	}
}

// TestHoldNegotiation: hold is clamped to MaxHold and that many requests
// are kept waiting, no more; requests is one more than hold.
func TestHoldNegotiation(t *testing.T) {
	x := newTester(t, Config{MaxHold: 2, Polling: 1})
	code, b, raw := x.post("<body rid='1300' to='example.test' wait='5' hold='5' ver='1.6' " + ns + "/>")
	if code != 200 || b == nil || b.Get("hold") != "2" || b.Get("requests") != "3" || b.Get("wait") != "5" {
		t.Fatalf("creation with hold='5' and MaxHold 2: %d %s", code, raw)
	}
	sid := b.Get("sid")
	r1 := x.async(fmt.Sprintf("<body rid='1301' sid='%s' %s/>", sid, ns))
	time.Sleep(50 * time.Millisecond)
	r2 := x.async(fmt.Sprintf("<body rid='1302' sid='%s' %s>%s</body>", sid, ns, msg("m")))
	if got := within(r1, 300*time.Millisecond); !strings.Contains(got, "<body>m</body>") {
		t.Fatalf("the oldest held request should carry the echo: %q", got)
	}
	// Now 1302 is held alone; a third keeps both 1302 and 1303 waiting.
	r3 := x.async(fmt.Sprintf("<body rid='1303' sid='%s' %s>%s</body>", sid, ns, "<presence xmlns='jabber:client'/>"))
	if got := within(r2, 500*time.Millisecond); got != "" {
		t.Fatalf("with hold 2, the second of two held requests was answered: %q", got)
	}
	if got := within(r3, 100*time.Millisecond); got != "" {
		t.Fatalf("with hold 2, a request was answered at once: %q", got)
	}
	r4 := x.async(fmt.Sprintf("<body rid='1304' sid='%s' %s>%s</body>", sid, ns, msg("n")))
	if got := within(r2, 2*time.Second); got == "" {
		t.Fatal("a third held request did not push out the oldest")
	}
	for _, ch := range []<-chan string{r3, r4} {
		if got := within(ch, 7*time.Second); !strings.HasPrefix(got, "200 ") {
			t.Errorf("held request: %q", got)
		}
	}
}

// TestLingerCarriesImmediateAnswer: with hold='1', the request held when a
// new one brings a stanza is answered with the server's immediate answer to
// it (here the echo), and the new request stays held for what comes later.
// This is what makes a browser's round trip fast: its next poll is not
// needed for the reply that follows.
func TestLingerCarriesImmediateAnswer(t *testing.T) {
	x := newTester(t, Config{})
	sid := x.create(1400)
	held := x.async(fmt.Sprintf("<body rid='1401' sid='%s' %s/>", sid, ns))
	time.Sleep(100 * time.Millisecond)
	next := x.async(fmt.Sprintf("<body rid='1402' sid='%s' %s>%s</body>", sid, ns, msg("echo me")))
	got := within(held, 2*time.Second)
	if !strings.Contains(got, "<body>echo me</body>") {
		t.Fatalf("the held request: %q, want the echo", got)
	}
	if got := within(next, 300*time.Millisecond); got != "" {
		t.Fatalf("the new request was answered instead of held: %q", got)
	}
	// Without an immediate answer the held request is answered soon anyway.
	third := x.async(fmt.Sprintf("<body rid='1403' sid='%s' %s>%s</body>", sid, ns, "<presence xmlns='jabber:client'/>"))
	if got := within(next, 500*time.Millisecond); !strings.HasPrefix(got, "200 ") {
		t.Fatalf("a held request without an answer to carry: %q", got)
	}
	_ = within(third, 2*time.Second)
}

// TestAcks: a client asking for acks (ack='1') gets ack on the creation
// response (the creation rid) and on answers to older requests (the highest
// rid received in order, XEP-0124 §9.1); an answer acknowledged by the
// client is dropped from the repeat buffer (§9.2, §14.3).
func TestAcks(t *testing.T) {
	x := newTester(t, Config{})
	code, b, raw := x.post("<body rid='1500' to='example.test' wait='2' hold='1' ver='1.6' ack='1' " + ns + "/>")
	if code != 200 || b == nil || b.Get("ack") != "1500" {
		t.Fatalf("creation with ack='1': %d %s", code, raw)
	}
	sid := b.Get("sid")
	held := x.async(fmt.Sprintf("<body rid='1501' sid='%s' %s/>", sid, ns))
	time.Sleep(100 * time.Millisecond)
	next := x.async(fmt.Sprintf("<body rid='1502' sid='%s' ack='1500' %s>%s</body>", sid, ns, msg("a")))
	if got := within(held, 2*time.Second); !strings.Contains(got, "ack='1502'") {
		t.Errorf("answer to 1501 after 1502 arrived: %q, want ack='1502'", got)
	}
	if got := within(next, 4*time.Second); strings.Contains(got, "ack=") {
		t.Errorf("answer to 1502 names its own rid as ack: %q", got)
	}
	// The client acknowledged 1500: a repeat of it is no longer answered.
	code, b, raw = x.post(fmt.Sprintf("<body rid='1503' sid='%s' ack='1502' %s/>", sid, ns))
	if code != 200 || b == nil || b.Get("type") == "terminate" {
		t.Fatalf("1503: %d %s", code, raw)
	}
	code, b, raw = x.post(fmt.Sprintf("<body rid='1501' sid='%s' %s/>", sid, ns))
	if b == nil || b.Get("condition") != "item-not-found" {
		t.Errorf("repeat of an acknowledged answer: %d %s, want item-not-found", code, raw)
	}
}

// TestKeySequence: keys are checked against the previous key (XEP-0124
// §15.4), a new sequence may start with newkey (§15.5), and a wrong key ends
// the session with item-not-found without processing the request.
func TestKeySequence(t *testing.T) {
	x := newTester(t, Config{})
	keys := make([]string, 5)
	k := "seed"
	for i := range keys {
		sum := sha1.Sum([]byte(k))
		k = hex.EncodeToString(sum[:])
		keys[i] = k
	}
	code, b, raw := x.post("<body rid='1600' to='example.test' wait='1' hold='1' ver='1.6' newkey='" + keys[4] + "' " + ns + "/>")
	if code != 200 || b == nil || b.Get("sid") == "" {
		t.Fatalf("creation: %d %s", code, raw)
	}
	sid := b.Get("sid")
	for i, key := range []string{keys[3], keys[2]} {
		code, b, raw = x.post(fmt.Sprintf("<body rid='%d' sid='%s' key='%s' %s>%s</body>", 1601+i, sid, key, ns, msg("k")))
		if code != 200 || b == nil || b.Get("type") == "terminate" {
			t.Fatalf("request %d with the right key: %d %s", i+1, code, raw)
		}
	}
	code, b, raw = x.post(fmt.Sprintf("<body rid='1603' sid='%s' key='%s' %s>%s</body>", sid, keys[3], ns, msg("replayed")))
	if b == nil || b.Get("condition") != "item-not-found" || strings.Contains(raw, "replayed") {
		t.Fatalf("a replayed key: %d %s, want item-not-found", code, raw)
	}
}

// TestOutOfOrderIsNotOveractivity: an empty request that arrives after a
// later one (out of order) is not the last of a too-fast sequence (XEP-0124
// §11 judges the newest): the session goes on.
func TestOutOfOrderIsNotOveractivity(t *testing.T) {
	x := newTester(t, Config{})
	sid := x.create(1700)
	// Make 1701 the held request and answer it with a message.
	code, _, raw := x.post(fmt.Sprintf("<body rid='1701' sid='%s' %s>%s</body>", sid, ns, msg("a")))
	if code != 200 || !strings.Contains(raw, "<body>a</body>") {
		t.Fatalf("1701: %d %s", code, raw)
	}
	// Now 1703 (a stanza) overtakes 1702 (an empty poll).
	late := x.async(fmt.Sprintf("<body rid='1703' sid='%s' %s>%s</body>", sid, ns, msg("b")))
	time.Sleep(50 * time.Millisecond)
	early := x.async(fmt.Sprintf("<body rid='1702' sid='%s' %s/>", sid, ns))
	for i, ch := range []<-chan string{early, late} {
		got := within(ch, 5*time.Second)
		if !strings.HasPrefix(got, "200 ") || strings.Contains(got, "terminate") {
			t.Errorf("request %d of the out-of-order pair: %q", i+1, got)
		}
	}
}

// TestRepeatBuffer: the answers to the last 'requests' requests are kept
// for repeats (XEP-0124 §14.3), those to pause requests are not.
func TestRepeatBuffer(t *testing.T) {
	x := newTester(t, Config{MaxPause: 10})
	sid := x.create(1800)
	var answers []string
	for rid := 1801; rid <= 1802; rid++ {
		code, _, raw := x.post(fmt.Sprintf("<body rid='%d' sid='%s' %s>%s</body>", rid, sid, ns, msg(fmt.Sprint(rid))))
		if code != 200 || !strings.Contains(raw, fmt.Sprint(rid)) {
			t.Fatalf("rid %d: %d %s", rid, code, raw)
		}
		answers = append(answers, raw)
	}
	// Both answers were lost: the client sends both again.
	for i, rid := range []int{1801, 1802} {
		if _, _, raw := x.post(fmt.Sprintf("<body rid='%d' sid='%s' %s>%s</body>", rid, sid, ns, msg(fmt.Sprint(rid)))); raw != answers[i] {
			t.Errorf("repeat of rid %d: %s, want the kept answer %s", rid, raw, answers[i])
		}
	}
	code, b, raw := x.post(fmt.Sprintf("<body rid='1803' sid='%s' pause='5' %s/>", sid, ns))
	if code != 200 || b == nil || b.Get("type") == "terminate" {
		t.Fatalf("pause: %d %s", code, raw)
	}
	if _, b, raw := x.post(fmt.Sprintf("<body rid='1803' sid='%s' pause='5' %s/>", sid, ns)); b == nil || b.Get("condition") != "item-not-found" {
		t.Errorf("repeat of a pause request: %s, want item-not-found (pause answers are not kept)", raw)
	}
}

// TestPauseEndsWithNextRequest: a pause stretches the inactivity period
// only until the next request (XEP-0124 §10).
func TestPauseEndsWithNextRequest(t *testing.T) {
	x := newTester(t, Config{Inactivity: 1, MaxPause: 30})
	sid := x.create(1900)
	if code, b, raw := x.post(fmt.Sprintf("<body rid='1901' sid='%s' pause='20' %s/>", sid, ns)); code != 200 || b == nil || b.Get("type") == "terminate" {
		t.Fatalf("pause: %d %s", code, raw)
	}
	// Back after the pause: the next request is answered (wait='1') and
	// then, idle again, the session ends after the normal inactivity.
	if code, b, raw := x.post(fmt.Sprintf("<body rid='1902' sid='%s' %s/>", sid, ns)); code != 200 || b == nil || b.Get("type") == "terminate" {
		t.Fatalf("after the pause: %d %s", code, raw)
	}
	if err := waitSessions(x.h, 0); err != nil {
		t.Fatalf("the pause still stretches inactivity after the next request: %v", err)
	}
}

// TestPauseAnswerHasNoPayloads: the answer to a pause request carries no
// payloads (XEP-0124 §10); what the server sent waits for the next request.
func TestPauseAnswerHasNoPayloads(t *testing.T) {
	pushed := make(chan struct{})
	serve := func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 4096)
		if _, err := c.Read(buf); err != nil {
			return
		}
		_, _ = io.WriteString(c, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' version='1.0'><stream:features/>")
		<-pushed
		_, _ = io.WriteString(c, "<message xmlns='jabber:client'><body>pushed</body></message>")
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}
	x := newTester(t, Config{Serve: serve, MaxPause: 10})
	sid := x.create(2000)
	close(pushed) // no request is held: the message waits
	time.Sleep(100 * time.Millisecond)
	code, b, raw := x.post(fmt.Sprintf("<body rid='2001' sid='%s' pause='5' %s/>", sid, ns))
	if code != 200 || b == nil || len(b.Children) != 0 {
		t.Fatalf("pause answer: %d %s, want no payloads", code, raw)
	}
	if _, _, raw := x.post(fmt.Sprintf("<body rid='2002' sid='%s' %s/>", sid, ns)); !strings.Contains(raw, "pushed") {
		t.Errorf("the request after the pause: %s, want the pushed message", raw)
	}
}
