package bosh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stream"

	"crier/internal/miniserver/boshcm"
	"crier/transport/bosh"
)

func TestLoginAndMessages(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHub(t)
	srv, cm := startCM(t, h, boshcm.Config{}, nil)
	alice := login(t, srv.URL, "alice", "apass", bosh.Config{})
	bob := login(t, srv.URL, "bob", "bpass", bosh.Config{})
	alice.send(t, "bob@"+domain, "hello bob")
	bob.expect(t, "hello bob")
	bob.send(t, "alice@"+domain, "hi alice")
	alice.expect(t, "hi alice")
	if err := alice.stop(t); err != nil {
		t.Errorf("alice Serve: %v", err)
	}
	if err := bob.stop(t); err != nil {
		t.Errorf("bob Serve: %v", err)
	}
	_ = cm.Close()
	srv.Close()
	checkGoroutines(t, before)
}

func TestBatchingAndPush(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHub(t)
	srv, cm := startCM(t, h, boshcm.Config{}, nil)
	alice := login(t, srv.URL, "alice", "apass", bosh.Config{})
	bob := login(t, srv.URL, "bob", "bpass", bosh.Config{})

	// Push: bob only has his long poll pending when alice's message comes.
	time.Sleep(100 * time.Millisecond)
	bobReqs := bob.conn.Stats().Requests
	alice.send(t, "bob@"+domain, "pushed")
	bob.expect(t, "pushed")
	if got := bob.conn.Stats().Requests - bobReqs; got > 1 {
		t.Errorf("bob needed %d requests to receive one push, want at most 1 (the next long poll)", got)
	}

	// Batching: many stanzas written while requests are in flight share bodies.
	const n = 60
	start := alice.conn.Stats()
	var want []string
	for i := range n {
		body := fmt.Sprintf("m%03d", i)
		want = append(want, body)
		alice.send(t, "bob@"+domain, body)
	}
	bob.expect(t, want...)
	st := alice.conn.Stats()
	reqs := st.Requests - start.Requests
	stanzas := st.StanzasSent - start.StanzasSent
	if stanzas != n {
		t.Errorf("StanzasSent grew by %d, want %d", stanzas, n)
	}
	if reqs >= n/2 {
		t.Errorf("%d stanzas took %d requests: no batching", n, reqs)
	}
	t.Logf("%d stanzas in %d requests (%.2f requests/stanza)", n, reqs, float64(reqs)/float64(n))
	if bob.conn.Stats().StanzasReceived < n {
		t.Errorf("bob StanzasReceived = %d, want >= %d", bob.conn.Stats().StanzasReceived, n)
	}
	_ = alice.stop(t)
	_ = bob.stop(t)
	_ = cm.Close()
	srv.Close()
	checkGoroutines(t, before)
}

// dropper answers the first request whose body contains mark to the
// connection manager, then drops the HTTP connection instead of answering.
type dropper struct {
	next    http.Handler
	mark    string
	dropped atomic.Int32
	rids    chan string
}

func (d *dropper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(data))
	if strings.Contains(string(data), d.mark) {
		select {
		case d.rids <- ridOf(data):
		default:
		}
		if d.dropped.Add(1) == 1 {
			rec := httptest.NewRecorder()
			d.next.ServeHTTP(rec, r)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
	}
	d.next.ServeHTTP(w, r)
}

var ridRE = regexp.MustCompile(`rid='(\d+)'`)

func ridOf(b []byte) string {
	m := ridRE.FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func TestRetrySameRID(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHub(t)
	d := &dropper{mark: "drop-me", rids: make(chan string, 4)}
	srv, cm := startCM(t, h, boshcm.Config{}, func(next http.Handler) http.Handler { d.next = next; return d })
	alice := login(t, srv.URL, "alice", "apass", bosh.Config{Wait: 1, RetryDelay: 20 * time.Millisecond})
	bob := login(t, srv.URL, "bob", "bpass", bosh.Config{Wait: 1})
	alice.send(t, "bob@"+domain, "drop-me")
	bob.expect(t, "drop-me")
	alice.send(t, "bob@"+domain, "after")
	bob.expect(t, "after")
	select {
	case extra := <-bob.msgs:
		t.Fatalf("message delivered twice: %q", extra)
	case <-time.After(300 * time.Millisecond):
	}
	if err := waitFor(5*time.Second, func() bool { return alice.conn.Stats().Retries >= 1 }); err != nil {
		t.Fatalf("no retry counted: %v", err)
	}
	r1, r2 := <-d.rids, <-d.rids
	if r1 == "" || r1 != r2 {
		t.Errorf("retry used rid %s, first attempt %s", r2, r1)
	}
	_ = alice.stop(t)
	_ = bob.stop(t)
	_ = cm.Close()
	srv.Close()
	checkGoroutines(t, before)
}

// terminator answers every request after arm() with the given status and
// body.
type terminator struct {
	next   http.Handler
	armed  atomic.Bool
	status int
	body   string
}

func (x *terminator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if x.armed.Load() {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(x.status)
		_, _ = io.WriteString(w, x.body)
		return
	}
	x.next.ServeHTTP(w, r)
}

func TestTerminateConditions(t *testing.T) {
	const ns = "xmlns='http://jabber.org/protocol/httpbind'"
	for _, tc := range []struct {
		name, body, boshCond, streamCond string
		status                           int
	}{
		{"item-not-found", "<body type='terminate' condition='item-not-found' " + ns + "/>", "item-not-found", "connection-timeout", 404},
		{"policy-violation-bare-403", "", "policy-violation", "policy-violation", 403},
		{"host-unknown", "<body type='terminate' condition='host-unknown' " + ns + "/>", "host-unknown", "host-unknown", 200},
		{"system-shutdown", "<body type='terminate' condition='system-shutdown' " + ns + "/>", "system-shutdown", "system-shutdown", 200},
		{"other-request", "<body type='terminate' condition='other-request' " + ns + "/>", "other-request", "conflict", 200},
		{"remote-stream-error", "<body type='terminate' condition='remote-stream-error' " + ns +
			" xmlns:stream='http://etherx.jabber.org/streams'><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></body>",
			"remote-stream-error", "conflict", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			h := newHub(t)
			x := &terminator{status: tc.status, body: tc.body}
			srv, cm := startCM(t, h, boshcm.Config{}, func(next http.Handler) http.Handler { x.next = next; return x })
			alice := login(t, srv.URL, "alice", "apass", bosh.Config{Wait: 1})
			x.armed.Store(true)
			var err error
			select {
			case err = <-alice.done:
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not end after the terminate")
			}
			var se stream.Error
			if !errors.As(err, &se) || se.Err != tc.streamCond {
				t.Fatalf("Serve returned %v, want stream error %s", err, tc.streamCond)
			}
			if got := alice.conn.Stats().Condition; got != tc.boshCond {
				t.Errorf("Stats().Condition = %q, want %q", got, tc.boshCond)
			}
			_ = alice.conn.Close()
			_ = cm.Close()
			srv.Close()
			checkGoroutines(t, before)
		})
	}
}

func TestShutdownOfConnectionManager(t *testing.T) {
	h := newHub(t)
	srv, cm := startCM(t, h, boshcm.Config{}, nil)
	alice := login(t, srv.URL, "alice", "apass", bosh.Config{Wait: 5})
	_ = cm.Close()
	select {
	case err := <-alice.done:
		if !errors.Is(err, stream.SystemShutdown) {
			t.Fatalf("Serve returned %v, want system-shutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not end when the connection manager closed")
	}
	_ = alice.conn.Close()
}

func TestDeadlinesAndClose(t *testing.T) {
	before := runtime.NumGoroutine()
	nc, err := bosh.Dial(context.Background(), bosh.Config{URL: "http://127.0.0.1:1/http-bind", Domain: domain})
	if err != nil {
		t.Fatal(err)
	}
	// A deadline in the future times out a blocked Read.
	_ = nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = nc.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Read took %v", d)
	}
	// Moving the deadline to the past unblocks a pending Read.
	_ = nc.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := nc.(io.ByteReader).ReadByte()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	_ = nc.SetDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("ReadByte: %v, want deadline exceeded", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("SetDeadline did not unblock ReadByte")
	}
	if _, err := nc.Write([]byte("<x/>")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past the deadline: %v", err)
	}
	// Close unblocks a pending Read.
	_ = nc.SetDeadline(time.Time{})
	go func() {
		_, err := nc.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	_ = nc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	checkGoroutines(t, before)
}

func TestUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/http-bind"
	_ = l.Close()
	nc, err := bosh.Dial(context.Background(), bosh.Config{URL: url, Domain: domain, RetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='example.test'>"); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = nc.Read(make([]byte, 10))
	var oe *net.OpError
	if !errors.Is(err, bosh.ErrHTTP) || !errors.As(err, &oe) {
		t.Fatalf("Read: %v, want ErrHTTP wrapping the dial error", err)
	}
	if st := nc.(*bosh.Conn).Stats(); st.Retries != 3 || st.Requests != 4 {
		t.Errorf("stats %+v: want 3 retries of 4 requests", st)
	}
}

// arrivals records, for each session, the rids in the order their requests
// reached the HTTP server, and whether two were ever open at once.
type arrivals struct {
	next http.Handler

	mu      sync.Mutex
	rids    map[string][]uint64 // sid -> rids in arrival order
	open    int
	maxOpen int
	attrs   []string // the creation requests' attributes
}

var sidRE = regexp.MustCompile(`sid='([^']+)'`)

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(data))
	rid, _ := strconv.ParseUint(ridOf(data), 10, 64)
	sid := ""
	if m := sidRE.FindSubmatch(data); m != nil {
		sid = string(m[1])
	}
	a.mu.Lock()
	if sid == "" {
		a.attrs = append(a.attrs, string(data))
	} else {
		a.rids[sid] = append(a.rids[sid], rid)
	}
	a.open++
	a.maxOpen = max(a.maxOpen, a.open)
	a.mu.Unlock()
	a.next.ServeHTTP(w, r)
	a.mu.Lock()
	a.open--
	a.mu.Unlock()
}

// jitterConn delays every write by a random 0-2 ms.
type jitterConn struct{ net.Conn }

func (c jitterConn) Write(p []byte) (int, error) {
	time.Sleep(time.Duration(rand.Int64N(int64(2 * time.Millisecond))))
	return c.Conn.Write(p)
}

// TestRequestsReachServerInOrder: with no fixed gap between requests, the
// next one still never reaches the server before the one before it (the
// ordering that ejabberd needs), while requests do overlap; the client asks
// for acks and uses a key sequence over plain http.
func TestRequestsReachServerInOrder(t *testing.T) {
	h := newHub(t)
	a := &arrivals{rids: map[string][]uint64{}}
	srv, cm := startCM(t, h, boshcm.Config{}, func(next http.Handler) http.Handler { a.next = next; return a })
	// The network delays each write by a random 0-2 ms, so requests sent
	// together on two connections would overtake each other.
	jitter := func() *http.Client {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		d := &net.Dialer{}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return jitterConn{c}, nil
		}
		return &http.Client{Transport: tr}
	}
	alice := login(t, srv.URL, "alice", "apass", bosh.Config{Client: jitter()})
	bob := login(t, srv.URL, "bob", "bpass", bosh.Config{Client: jitter()})
	// Ping-pong: every message is answered at once, the worst case for a
	// fresh long poll racing the reply.
	// Each answer comes just after the client gave up waiting for one and
	// sent a long poll: the poll and the answer's request are sent close
	// together.
	pause := func() { time.Sleep(2*time.Millisecond + time.Duration(rand.Int64N(int64(time.Millisecond)))) }
	for i := range 40 {
		body := fmt.Sprintf("ping %d", i)
		alice.send(t, "bob@"+domain, body)
		bob.expect(t, body)
		pause()
		bob.send(t, "alice@"+domain, "re "+body)
		alice.expect(t, "re "+body)
		pause()
	}
	_ = alice.stop(t)
	_ = bob.stop(t)
	_ = cm.Close()
	srv.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	for sid, rids := range a.rids {
		for i := 1; i < len(rids); i++ {
			if rids[i] < rids[i-1] {
				t.Errorf("session %s: rid %d reached the server after rid %d: %v", sid, rids[i], rids[i-1], rids)
				break
			}
		}
	}
	if a.maxOpen < 2 {
		t.Errorf("at most %d request open at a time: the test did not exercise overlapping requests", a.maxOpen)
	}
	for _, c := range a.attrs {
		if !strings.Contains(c, "ack='1'") || !strings.Contains(c, "newkey='") {
			t.Errorf("creation request without ack='1' or newkey: %s", c)
		}
	}
}

// BenchmarkPingPong measures one message and its answer between two BOSH
// clients of the connection manager, one at a time. The answer comes at
// once ("now") or 3 ms later ("3ms", after the client's reply window, so
// that a fresh long poll and the answer's request follow each other
// closely: where a fixed gap between requests costs); ns/op includes the
// two 3 ms pauses.
//
//	go test -run '^$' -bench PingPong -count 5 ./transport/bosh/
func BenchmarkPingPong(b *testing.B) {
	for _, tc := range []struct {
		name  string
		pause time.Duration
	}{{"now", 0}, {"3ms", 3 * time.Millisecond}} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHub(b)
			srv, _ := startCM(b, h, boshcm.Config{}, nil)
			alice := login(b, srv.URL, "alice", "apass", bosh.Config{})
			bob := login(b, srv.URL, "bob", "bpass", bosh.Config{})
			for b.Loop() {
				alice.send(b, "bob@"+domain, "ping")
				bob.expect(b, "ping")
				time.Sleep(tc.pause)
				bob.send(b, "alice@"+domain, "pong")
				alice.expect(b, "pong")
				time.Sleep(tc.pause)
			}
			b.StopTimer()
			_ = alice.stop(b)
			_ = bob.stop(b)
		})
	}
}
