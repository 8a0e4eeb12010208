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
	// asking for less gets what it asked for (0: a polling session).
	MaxWait int
	// MaxHold is the most requests held at once; 0 = 2. A client asking for
	// less gets what it asked for.
	MaxHold int
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
	gone     map[string]goneSession // recently ended sessions
	goneFIFO []string
	closed   bool
	wg       sync.WaitGroup // session goroutines
	active   atomic.Int64   // requests being answered (ServeHTTP calls)
}

var _ http.Handler = (*Handler)(nil)

// goneSession is what is remembered of an ended session.
type goneSession struct {
	cond   string
	legacy bool
}

// Protocol constants.
const (
	verMine = "1.11"
	maxOut  = 1 << 20 // server output bytes buffered before Serve's writes block
	maxIn   = 4 << 20 // client input bytes buffered before the session fails
)

// New returns the handler for /http-bind.
func New(cfg Config) *Handler {
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1000
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 60
	}
	if cfg.MaxHold <= 0 {
		cfg.MaxHold = 2
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
	h := &Handler{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), sessions: map[string]*session{}, gone: map[string]goneSession{}}
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
	// Errors before a session is known are answered as XEP-0124 §17.2
	// terminal binding conditions with HTTP 200: the deprecated HTTP codes
	// of §17.1 are only for legacy clients, and only a session tells.
	if len(data) > h.cfg.MaxBody {
		writeBody(w, http.StatusOK, "", terminateBody("policy-violation", "", nil))
		return
	}
	b, err := boshwire.ParseBody(data)
	if err != nil {
		h.log.Debug("bad BOSH body", "err", err)
		writeBody(w, http.StatusOK, "", terminateBody("bad-request", "", nil))
		return
	}
	rid, err := b.RID()
	if err != nil {
		writeBody(w, http.StatusOK, "", terminateBody("bad-request", "", nil))
		return
	}
	sid := b.Get("sid")
	if sid == "" {
		h.create(w, r, b, rid)
		return
	}
	h.mu.Lock()
	s := h.sessions[sid]
	g, gone := h.gone[sid]
	h.mu.Unlock()
	if s == nil {
		// §10: an ended session is answered as one that does not exist;
		// a request racing an error end learns why it ended.
		cond := g.cond
		if !gone || cond == "" {
			cond = "item-not-found"
		}
		status := http.StatusOK
		if g.legacy {
			status = legacyStatus(cond)
		}
		writeBody(w, status, "", terminateBody(cond, "", nil))
		return
	}
	s.handle(w, r, b, rid)
}

// params are the negotiated parameters of a new session.
type params struct {
	wait, hold int
	content    string
}

// negotiate checks the creation request's 'wait', 'hold' and 'content'
// (XEP-0124 §7.1, §7.2): the answer's wait and hold are the client's values
// clamped to the maxima, never more than asked; a value that is not a
// non-negative integer is a bad-request.
func (h *Handler) negotiate(b *boshwire.Body) (params, error) {
	p := params{wait: h.cfg.MaxWait, hold: 1}
	wait, ok, err := b.UintAttr("wait")
	if err != nil {
		return p, err
	}
	if ok {
		p.wait = min(wait, h.cfg.MaxWait)
	}
	hold, ok, err := b.UintAttr("hold")
	if err != nil {
		return p, err
	}
	if ok {
		p.hold = hold
	}
	p.hold = min(p.hold, h.cfg.MaxHold)
	if c := b.Get("content"); validHeaderValue(c) {
		p.content = c
	}
	return p, nil
}

// validHeaderValue reports whether v is a plain, printable header value.
func validHeaderValue(v string) bool {
	if v == "" || len(v) > 200 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

// create starts a session for a creation request.
func (h *Handler) create(w http.ResponseWriter, r *http.Request, b *boshwire.Body, rid uint64) {
	status := func(cond string) int {
		if b.Get("ver") == "" {
			return legacyStatus(cond)
		}
		return http.StatusOK
	}
	to := b.Get("to")
	switch {
	case to == "":
		writeBody(w, http.StatusOK, "", terminateBody("improper-addressing", "", nil))
		return
	case !strings.EqualFold(to, h.cfg.Domain):
		writeBody(w, http.StatusOK, "", terminateBody("host-unknown", "", nil))
		return
	}
	p, err := h.negotiate(b)
	if err != nil {
		h.log.Debug("bad BOSH session request", "err", err)
		writeBody(w, status("bad-request"), "", terminateBody("bad-request", "", nil))
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		writeBody(w, http.StatusOK, "", terminateBody("system-shutdown", "", nil))
		return
	}
	if len(h.sessions) >= h.cfg.MaxSessions {
		h.mu.Unlock()
		writeBody(w, http.StatusOK, "", terminateBody("remote-connection-failed", "", nil))
		return
	}
	s := newSession(h, randomID(), rid, p, b)
	h.sessions[s.sid] = s
	h.wg.Add(2)
	h.mu.Unlock()
	h.log.Debug("BOSH session created", "sid", s.sid, "wait", p.wait, "hold", p.hold)
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
	h.gone[s.sid] = goneSession{cond: cond, legacy: s.legacy}
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

// legacyStatus is the deprecated HTTP error code of XEP-0124 §17.1 for a
// terminal binding condition, sent only to legacy clients (no 'ver').
func legacyStatus(cond string) int {
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

// writeBody sends one <body/> response with the session's Content-Type
// (XEP-0124 §7.1 'content'; "" = text/xml).
func writeBody(w http.ResponseWriter, status int, content string, data []byte) {
	if content == "" {
		content = "text/xml; charset=utf-8"
	}
	w.Header().Set("Content-Type", content)
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

// terminateBody is a terminate response with an optional condition, more
// attributes (escaped, each with a leading space) and children.
func terminateBody(cond, attrs string, children [][]byte) []byte {
	a := " type='terminate'"
	if cond != "" {
		a += " condition='" + boshwire.AttrEscape(cond) + "'"
	}
	return responseBody(a+attrs, children)
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
