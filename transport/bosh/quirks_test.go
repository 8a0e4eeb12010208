package bosh_test

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/internal/miniserver/boshcm"
	"crier/transport/bosh"
)

// recorded is a response captured from the connection manager.
type recorded struct {
	status int
	body   []byte
}

// record runs next on r and returns what it answered.
func record(next http.Handler, w http.ResponseWriter, r *http.Request) recorded {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		if k != "Content-Length" { // the body may be swapped for another
			w.Header()[k] = v
		}
	}
	return recorded{rec.Code, rec.Body.Bytes()}
}

// peerQuirks makes the connection manager behave like the real servers
// where they differ from it:
//   - prosody: the features of a restarted stream come in the answer to
//     the request held before the restart, and the restart is answered
//     empty;
//   - ejabberd: when the client terminates, the request held before the
//     terminate is answered with condition='other-request'.
type peerQuirks struct {
	next http.Handler

	mu       sync.Mutex
	swaps    map[uint64]chan recorded // rid before a restart -> the restart's answer
	back     map[uint64]chan recorded // restart rid -> the older request's answer
	endRIDs  map[uint64]bool          // rid before a terminate
	open     map[uint64]bool          // requests being answered
	swapped  int
	replaced int
}

func newPeerQuirks() *peerQuirks {
	return &peerQuirks{swaps: map[uint64]chan recorded{}, back: map[uint64]chan recorded{}, endRIDs: map[uint64]bool{}, open: map[uint64]bool{}}
}

func (q *peerQuirks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(data))
	rid, _ := strconv.ParseUint(ridOf(data), 10, 64)
	s := string(data)
	q.mu.Lock()
	switch {
	case strings.Contains(s, "xmpp:restart='true'") && q.open[rid-1]:
		q.swaps[rid-1] = make(chan recorded, 1)
		q.back[rid] = make(chan recorded, 1)
	case strings.Contains(s, "type='terminate'") && q.open[rid-1]:
		q.endRIDs[rid-1] = true
	}
	q.open[rid] = true
	q.mu.Unlock()

	got := record(q.next, w, r)
	q.mu.Lock()
	delete(q.open, rid)
	q.mu.Unlock()

	q.mu.Lock()
	toRestart, older := q.swaps[rid]
	fromOlder, restart := q.back[rid]
	end := q.endRIDs[rid]
	q.mu.Unlock()
	switch {
	case older:
		// Hand our answer to the restart, take the restart's answer.
		q.mu.Lock()
		back := q.back[rid+1]
		q.mu.Unlock()
		back <- got
		select {
		case got = <-toRestart:
			q.mu.Lock()
			q.swapped++
			q.mu.Unlock()
		case <-time.After(5 * time.Second):
		}
	case restart:
		q.swaps[rid-1] <- got
		select {
		case got = <-fromOlder:
		case <-time.After(5 * time.Second):
		}
	case end && strings.Contains(string(got.body), "type='terminate'"):
		got.body = []byte("<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' condition='other-request'/>")
		q.mu.Lock()
		q.replaced++
		q.mu.Unlock()
	}
	w.WriteHeader(got.status)
	_, _ = w.Write(got.body)
}

// streamReader reads the synthetic stream of a Conn token by token and
// reports what it sees at the top: stream headers, the names of the
// stream's children, stream errors and the end.
type streamReader struct {
	d     *xml.Decoder
	depth int
}

// next returns the next top-level event: "header", "end", or the local name
// of a child of the stream ("features", "success", "error", ...).
func (r *streamReader) next(t *testing.T) string {
	t.Helper()
	for {
		tok, err := r.d.RawToken()
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			r.depth++
			if tk.Name.Space == "stream" && tk.Name.Local == "stream" {
				r.depth = 0 // a header opens a new stream
				return "header"
			}
			if r.depth == 1 {
				return tk.Name.Local
			}
		case xml.EndElement:
			if tk.Name.Space == "stream" && tk.Name.Local == "stream" {
				return "end"
			}
			r.depth--
		}
	}
}

const streamHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='" + domain + "'>"

// TestPeerQuirks drives a Conn by hand through a connection manager that
// answers a restart like Prosody and a terminate like ejabberd: the new
// stream's header comes before its features although they arrive in the
// answer to an older request than the restart, and ejabberd's
// other-request on the held request after the client's own terminate ends
// the stream cleanly (no stream error, no condition).
func TestPeerQuirks(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHub(t)
	q := newPeerQuirks()
	srv, cm := startCM(t, h, boshcm.Config{}, func(next http.Handler) http.Handler { q.next = next; return q })
	nc, err := bosh.Dial(t.Context(), bosh.Config{URL: srv.URL, Domain: domain, Wait: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	r := &streamReader{d: xml.NewDecoder(nc)}
	write := func(s string) {
		t.Helper()
		if _, err := io.WriteString(nc, s); err != nil {
			t.Fatalf("write %q: %v", s, err)
		}
	}
	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			if got := r.next(t); got != w {
				t.Fatalf("stream: got %q, want %q", got, w)
			}
		}
	}
	// settle leaves time for the client to send its empty request, which
	// the connection manager then holds.
	settle := func() { time.Sleep(100 * time.Millisecond) }

	write(streamHeader)
	expect("header", "features")
	write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00apass")) + "</auth>")
	expect("success")
	settle()
	write(streamHeader)
	expect("header", "features")
	settle()
	write("</stream:stream>")
	expect("end")

	q.mu.Lock()
	swapped, replaced := q.swapped, q.replaced
	q.mu.Unlock()
	if swapped != 1 {
		t.Errorf("%d restarts answered on the older request, want 1", swapped)
	}
	if replaced != 1 {
		t.Errorf("%d held requests answered with other-request at the end, want 1", replaced)
	}
	if c := nc.(*bosh.Conn).Stats().Condition; c != "" {
		t.Errorf("Stats().Condition = %q after the client's own terminate, want none", c)
	}
	_ = nc.Close()
	_ = cm.Close()
	srv.Close()
	checkGoroutines(t, before)
}

// wrapped is a net.Conn wrapper that tells what it wraps, as *tls.Conn
// does.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

func TestStatsOfWrapped(t *testing.T) {
	nc, err := bosh.Dial(t.Context(), bosh.Config{URL: "http://127.0.0.1:1/http-bind", Domain: domain})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, ok := bosh.StatsOf(wrapped{wrapped{nc}}); !ok {
		t.Error("StatsOf does not look through NetConn wrappers")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := bosh.StatsOf(wrapped{a}); ok {
		t.Error("StatsOf of a wrapped pipe reports BOSH stats")
	}
}
