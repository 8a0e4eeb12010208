package bosh_test

import (
	"bytes"
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
		w.Header()[k] = v
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
	swapped  int
	replaced int
}

func newPeerQuirks() *peerQuirks {
	return &peerQuirks{swaps: map[uint64]chan recorded{}, back: map[uint64]chan recorded{}, endRIDs: map[uint64]bool{}}
}

func (q *peerQuirks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(data))
	rid, _ := strconv.ParseUint(ridOf(data), 10, 64)
	s := string(data)
	q.mu.Lock()
	switch {
	case strings.Contains(s, "xmpp:restart='true'"):
		q.swaps[rid-1] = make(chan recorded, 1)
		q.back[rid] = make(chan recorded, 1)
	case strings.Contains(s, "type='terminate'"):
		q.endRIDs[rid-1] = true
	}
	q.mu.Unlock()

	got := record(q.next, w, r)

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

// TestPeerQuirks logs in through a connection manager that answers a
// restart like Prosody and a terminate like ejabberd: the session still
// negotiates (the new stream's header comes before its features, whichever
// response carries them), carries messages, and ends cleanly.
func TestPeerQuirks(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHub(t)
	q := newPeerQuirks()
	srv, cm := startCM(t, h, boshcm.Config{}, func(next http.Handler) http.Handler { q.next = next; return q })
	alice := login(t, srv.URL, "alice", "apass", bosh.Config{})
	bob := login(t, srv.URL, "bob", "bpass", bosh.Config{})
	alice.send(t, "bob@"+domain, "after a prosody restart")
	bob.expect(t, "after a prosody restart")
	if err := alice.stop(t); err != nil {
		t.Errorf("alice's session did not end cleanly: %v", err)
	}
	if err := bob.stop(t); err != nil {
		t.Errorf("bob's session did not end cleanly: %v", err)
	}
	q.mu.Lock()
	swapped, replaced := q.swapped, q.replaced
	q.mu.Unlock()
	if swapped != 2 {
		t.Errorf("%d restarts answered on the older request, want 2 (one per login)", swapped)
	}
	if replaced < 1 {
		t.Errorf("no held request was answered with other-request at the end")
	}
	if c := alice.conn.Stats().Condition; c != "" {
		t.Errorf("alice's Stats().Condition = %q after her own terminate, want none", c)
	}
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
