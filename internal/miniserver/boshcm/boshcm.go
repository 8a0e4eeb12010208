package boshcm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"crier/internal/boshwire"
)

// Config wires the connection manager to the server.
type Config struct {
	Domain string
	// Serve runs one c2s stream over c until it ends (the server's ServeConn,
	// with the stream already counted as secure).
	Serve  func(c net.Conn)
	Logger *slog.Logger

	// MaxSessions caps the number of live sessions; 0 = 1000.
	MaxSessions int
	// MaxWait is the longest a request is held, in seconds; 0 = 60. A client
	// asking for less gets what it asked for.
	MaxWait int
	// Inactivity is how many seconds a session may go without any request
	// before it ends; 0 = 60.
	Inactivity int
	// Polling is the shortest allowed polling interval in seconds (XEP-0124
	// overactivity); 0 = 2.
	Polling int
	// MaxPause is the longest pause a client may ask for, in seconds; 0 = 120.
	MaxPause int
	// MaxBody is the largest request body in bytes; 0 = 256 KiB.
	MaxBody int
}

// Handler is the /http-bind endpoint. It is safe for concurrent use.
type Handler struct {
	cfg  Config
	log  *slog.Logger
	done chan struct{}

	mu       sync.Mutex
	sessions map[string]*session
	gone     map[string]string // recently ended sid -> its condition
	goneFIFO []string
	closed   bool
	wg       sync.WaitGroup // session goroutines
	active   atomic.Int64   // requests being answered (ServeHTTP calls)
}

var _ http.Handler = (*Handler)(nil)

// Protocol limits advertised in the session creation response.
const (
	maxHold  = 1
	requests = 2
	verMine  = "1.11"
	maxOut   = 1 << 20 // server output bytes buffered before Serve's writes block
	maxIn    = 4 << 20 // client input bytes buffered before the session fails
)

// New returns the handler for /http-bind.
func New(cfg Config) *Handler {
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1000
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 60
	}
	if cfg.Inactivity <= 0 {
		cfg.Inactivity = 60
	}
	if cfg.Polling <= 0 {
		cfg.Polling = 2
	}
	if cfg.MaxPause <= 0 {
		cfg.MaxPause = 120
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 256 << 10
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), sessions: map[string]*session{}, gone: map[string]string{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// Sessions returns the number of live sessions.
func (h *Handler) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// SIDs returns the ids of the live sessions, in no particular order.
func (h *Handler) SIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.sessions))
	for sid := range h.sessions {
		out = append(out, sid)
	}
	return out
}

// Terminate ends the live session sid as the connection manager would on a
// fatal error: its held requests are answered with a terminate carrying
// cond (a XEP-0124 terminal binding condition, such as
// "remote-connection-failed" or "policy-violation"; empty for a plain
// terminate), later requests learn cond too, and the server's side of the
// stream ends. It reports whether sid was live.
func (h *Handler) Terminate(sid, cond string) bool {
	h.mu.Lock()
	s := h.sessions[sid]
	h.mu.Unlock()
	if s == nil {
		return false
	}
	s.end(cond)
	return true
}

// Close ends every session with system-shutdown (answering their pending
// requests), refuses new ones and waits until every goroutine it started,
// Serve included, has returned. It is safe to call more than once.
func (h *Handler) Close() error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	list := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		list = append(list, s)
	}
	h.mu.Unlock()
	for _, s := range list {
		s.end("system-shutdown")
	}
	h.wg.Wait()
	// The answers to the held requests are on their way: give them a
	// moment to reach the wire before the caller closes the listener and
	// its connections.
	for range 400 {
		if h.active.Load() == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// ServeHTTP answers one BOSH request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.active.Add(1)
	defer h.active.Add(-1)
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	hd.Set("Access-Control-Allow-Headers", "Content-Type")
	hd.Set("Access-Control-Max-Age", "86400")
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodGet, http.MethodHead:
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "This is a BOSH (XEP-0124/XEP-0206) endpoint: POST <body/> documents here.\n")
		return
	case http.MethodPost:
	default:
		hd.Set("Allow", "GET, POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, int64(h.cfg.MaxBody)+1))
	if err != nil {
		return // the client went away
	}
	if len(data) > h.cfg.MaxBody {
		writeBody(w, http.StatusRequestEntityTooLarge, terminateBody("policy-violation", nil))
		return
	}
	b, err := boshwire.ParseBody(data)
	if err != nil {
		h.log.Debug("bad BOSH body", "err", err)
		writeBody(w, http.StatusBadRequest, terminateBody("bad-request", nil))
		return
	}
	rid, err := b.RID()
	if err != nil {
		writeBody(w, http.StatusBadRequest, terminateBody("bad-request", nil))
		return
	}
	sid := b.Get("sid")
	if sid == "" {
		h.create(w, r, b, rid)
		return
	}
	h.mu.Lock()
	s := h.sessions[sid]
	cond, gone := h.gone[sid]
	h.mu.Unlock()
	if s == nil {
		if !gone || cond == "" {
			// A request racing the end of its session learns why it ended.
			cond = "item-not-found"
		}
		writeBody(w, statusOf(cond), terminateBody(cond, nil))
		return
	}
	s.handle(w, r, b, rid)
}

// create starts a session for a creation request.
func (h *Handler) create(w http.ResponseWriter, r *http.Request, b *boshwire.Body, rid uint64) {
	if to := b.Get("to"); !strings.EqualFold(to, h.cfg.Domain) {
		writeBody(w, http.StatusOK, terminateBody("host-unknown", nil))
		return
	}
	wait := b.IntAttr("wait", h.cfg.MaxWait)
	if wait <= 0 || wait > h.cfg.MaxWait {
		wait = h.cfg.MaxWait
	}
	hold := min(b.IntAttr("hold", maxHold), maxHold)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		writeBody(w, http.StatusServiceUnavailable, terminateBody("system-shutdown", nil))
		return
	}
	if len(h.sessions) >= h.cfg.MaxSessions {
		h.mu.Unlock()
		writeBody(w, http.StatusServiceUnavailable, terminateBody("remote-connection-failed", nil))
		return
	}
	s := newSession(h, randomID(), rid, wait, hold, b)
	h.sessions[s.sid] = s
	h.wg.Add(2)
	h.mu.Unlock()
	h.log.Debug("BOSH session created", "sid", s.sid)
	go s.serve()
	go s.loop()
	s.handle(w, r, b, rid)
}

// maxGone is how many ended sessions are remembered with their condition.
const maxGone = 1024

// remove forgets a session that ended with cond.
func (h *Handler) remove(s *session, cond string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.sid] != s {
		return
	}
	delete(h.sessions, s.sid)
	h.gone[s.sid] = cond
	h.goneFIFO = append(h.goneFIFO, s.sid)
	if len(h.goneFIFO) > maxGone {
		delete(h.gone, h.goneFIFO[0])
		h.goneFIFO = h.goneFIFO[1:]
	}
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusOf is the HTTP status sent with a terminal binding condition.
func statusOf(cond string) int {
	switch cond {
	case "bad-request":
		return http.StatusBadRequest
	case "item-not-found":
		return http.StatusNotFound
	case "policy-violation":
		return http.StatusForbidden
	}
	return http.StatusOK
}

// writeBody sends one <body/> response.
func writeBody(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
	// Out now, not when the handler returns: Close counts on it.
	_ = http.NewResponseController(w).Flush()
}

// responseBody wraps children (and attributes already escaped, each with a
// leading space) in a response <body/>.
func responseBody(attrs string, children [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString("<body xmlns='" + boshwire.NSHTTPBind + "' xmlns:stream='" + boshwire.NSStream + "'")
	b.WriteString(attrs)
	if len(children) == 0 {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteByte('>')
	for _, c := range children {
		b.Write(c)
	}
	b.WriteString("</body>")
	return b.Bytes()
}

// terminateBody is a terminate response with an optional condition.
func terminateBody(cond string, children [][]byte) []byte {
	attrs := " type='terminate'"
	if cond != "" {
		attrs += " condition='" + boshwire.AttrEscape(cond) + "'"
	}
	return responseBody(attrs, children)
}

// negotiateVer returns the lower of the client's version and ours.
func negotiateVer(client string) string {
	cm, cn, ok := splitVer(client)
	if !ok {
		return verMine
	}
	mm, mn, _ := splitVer(verMine)
	if cm < mm || (cm == mm && cn < mn) {
		return fmt.Sprintf("%d.%d", cm, cn)
	}
	return verMine
}

func splitVer(v string) (int, int, bool) {
	a, b, ok := strings.Cut(v, ".")
	if !ok {
		return 0, 0, false
	}
	x, err1 := strconv.Atoi(a)
	y, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || x < 0 || y < 0 {
		return 0, 0, false
	}
	return x, y, true
}
