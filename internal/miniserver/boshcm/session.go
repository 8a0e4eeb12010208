package boshcm

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"crier/internal/boshwire"
	"crier/internal/xmlsplit"
)

// request is one HTTP request of a session, from its arrival until it is
// answered.
type request struct {
	rid      uint64
	b        *boshwire.Body
	deadline time.Time
	pause    bool // a pause request: answered at once and without payloads
	resp     chan reply
}

// reply is what the HTTP goroutine of a request writes.
type reply struct {
	status int
	data   []byte
}

func newRequest(rid uint64, b *boshwire.Body) *request {
	return &request{rid: rid, b: b, resp: make(chan reply, 1)}
}

// cached is a response kept for a repeated request (XEP-0124 §14.3).
type cached struct {
	data   []byte
	sentAt time.Time
}

// session is one BOSH session: a window of HTTP requests on one side, one
// XMPP stream run by Config.Serve on the other.
type session struct {
	h        *Handler
	sid      string
	first    uint64 // rid of the creation request
	wait     time.Duration
	hold     int
	requests int
	legacy   bool   // no 'ver' in the creation request: HTTP error codes
	acks     bool   // the client asked for acknowledgements (ack='1')
	content  string // Content-Type of every response
	lang     string
	ver      string
	conn     *serverConn
	serveOK  chan struct{} // closed when Serve returned

	mu           chanMutex
	cut          boshwire.Cutter
	authid       string
	key          string // the key the next request's key must hash to; "" = none
	nextRID      uint64 // next rid to process
	lastAnswered uint64 // every rid up to this one is answered
	pending      map[uint64]*request
	held         []*request // processed, waiting for output, oldest first
	cache        map[uint64]cached
	cacheOrder   []uint64
	out          [][]byte
	outBytes     int
	streamEnded  bool // the server ended its stream
	streamError  bool // ... with a stream error
	ended        bool
	endCond      string
	idleSince    time.Time
	pauseUntil   time.Time
	lastArrival  time.Time
	lastEmpty    bool // the last processed request was empty ...
	lastNoData   bool // ... and its answer carried no payload
	// Lingering (see flush): the answer to the request beyond 'hold' waits
	// until the server has handled the payload that came with the newer
	// request, at most until lingerCap.
	lingering bool
	lingerCap time.Time
	lingerIn  uint64 // input bytes the server must have read first
}

func newSession(h *Handler, sid string, rid uint64, p params, b *boshwire.Body) *session {
	s := &session{
		h:            h,
		sid:          sid,
		first:        rid,
		wait:         time.Duration(p.wait) * time.Second,
		hold:         p.hold,
		requests:     max(2, p.hold+1),
		legacy:       b.Get("ver") == "",
		acks:         b.Get("ack") == "1",
		content:      p.content,
		lang:         b.Get("xml:lang"),
		ver:          negotiateVer(b.Get("ver")),
		serveOK:      make(chan struct{}),
		key:          b.Get("newkey"),
		nextRID:      rid,
		lastAnswered: rid - 1,
		pending:      map[uint64]*request{},
		cache:        map[uint64]cached{},
		idleSince:    time.Now(),
	}
	s.mu.init()
	s.conn = newServerConn(s)
	s.conn.push([]byte(s.streamHeader()))
	return s
}

// serve runs the server's side of the stream.
func (s *session) serve() {
	defer s.h.wg.Done()
	defer close(s.serveOK)
	defer s.conn.Close()
	s.h.cfg.Serve(s.conn)
}

// Linger bounds (see flush).
const (
	// lingerGrace is how long after the server went back to reading the
	// answer still waits for the server's writers.
	lingerGrace = time.Millisecond
	// lingerMax is the longest an answer waits in any case.
	lingerMax = 10 * time.Millisecond
)

// loop expires held requests after 'wait', ends lingering, ends an inactive
// session and, once the session ended, makes sure Serve returns.
func (s *session) loop() {
	defer s.h.wg.Done()
	for {
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			break
		}
		now := time.Now()
		for len(s.held) > 0 && !now.Before(s.held[0].deadline) {
			s.answer(s.held[0], "")
		}
		s.flush()
		var next time.Time
		if len(s.held) > 0 {
			next = s.held[0].deadline
		}
		if s.lingering {
			at := s.lingerCap
			if t, ok := s.conn.blockedSince(s.lingerIn); ok && t.Add(lingerGrace).Before(at) {
				at = t.Add(lingerGrace)
			}
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		if len(s.held) == 0 && len(s.pending) == 0 {
			idle := s.idleSince.Add(time.Duration(s.h.cfg.Inactivity) * time.Second)
			if idle.Before(s.pauseUntil) {
				idle = s.pauseUntil
			}
			if !now.Before(idle) {
				s.h.log.Debug("BOSH session inactive", "sid", s.sid)
				s.endLocked("", nil)
				s.mu.Unlock()
				break
			}
			next = idle
		}
		ch := s.mu.changed
		s.mu.Unlock()
		var timeout <-chan time.Time
		var t *time.Timer
		if !next.IsZero() {
			t = time.NewTimer(max(time.Until(next), 50*time.Microsecond))
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
		case <-s.conn.idle:
		case <-s.h.done:
			s.end("system-shutdown")
		}
		if t != nil {
			t.Stop()
		}
	}
	// The stream input has ended; a server that still does not return gets
	// its connection closed under it.
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.serveOK:
	case <-t.C:
		s.h.log.Warn("BOSH session: Serve did not return, closing its connection", "sid", s.sid)
		s.conn.Close()
		<-s.serveOK
	}
}

// handle processes one request of this session and writes its answer.
func (s *session) handle(w http.ResponseWriter, r *http.Request, b *boshwire.Body, rid uint64) {
	req := newRequest(rid, b)
	// resp is read under the lock: a repeat of this rid hands this
	// channel to itself (see admit).
	s.mu.Lock()
	resp := req.resp
	s.admit(req)
	s.mu.Unlock()
	safety := time.NewTimer(s.wait + 5*time.Second)
	defer safety.Stop()
	select {
	case rp := <-resp:
		writeBody(w, rp.status, s.content, rp.data)
	case <-r.Context().Done():
		// The answer, when it comes, stays in the cache for a retry.
	case <-safety.C:
		writeBody(w, http.StatusOK, s.content, responseBody("", nil))
	}
}

// status is the HTTP status of an answer with a terminal condition: 200,
// or for a legacy client the deprecated HTTP error code (XEP-0124 §17.1).
func (s *session) status(cond string) int {
	if s.legacy {
		return legacyStatus(cond)
	}
	return http.StatusOK
}

// admit checks a request against the rid window and the overactivity
// rules, then queues it. Call with s.mu held.
func (s *session) admit(req *request) {
	now := time.Now()
	if s.ended {
		// XEP-0124 §10: after the end the session does not exist; a request
		// that raced an error end learns its condition.
		cond := s.endCond
		if cond == "" {
			cond = "item-not-found"
		}
		s.send(req, s.status(cond), terminateBody(cond, "", nil))
		return
	}
	rid := req.rid
	if rid <= s.lastAnswered {
		if c, ok := s.cache[rid]; ok {
			// §14.3: a repeated request whose answer was lost gets it again.
			s.send(req, http.StatusOK, c.data)
			return
		}
		s.terminate(req, "item-not-found")
		return
	}
	if old := s.find(rid); old != nil {
		// A repeated request still waiting: the new one takes its place and
		// the old one (whose client has given up on it) is answered empty.
		s.send(old, http.StatusOK, responseBody("", nil))
		old.resp = req.resp
		return
	}
	kind := req.b.Get("type")
	limit := uint64(s.requests)
	if kind == "terminate" || req.b.Get("pause") != "" {
		limit++ // §11 allows one more request to pause or terminate
	}
	if rid > s.lastAnswered+limit {
		if s.allPresent(s.lastAnswered+1, rid) {
			s.terminate(req, "policy-violation") // §11: too many simultaneous requests
		} else {
			s.terminate(req, "item-not-found") // §14.2: beyond the window
		}
		return
	}
	empty := len(req.b.Children) == 0 && kind == "" && req.b.Get("xmpp:restart") == "" && req.b.Get("pause") == ""
	polling := time.Duration(s.h.cfg.Polling) * time.Second
	// Judged on the newest request only: one that arrives after a later
	// one (out of order, §14.2) is not the last of the sequence.
	if empty && rid != s.first && !s.anyPendingAbove(rid) && now.Sub(s.lastArrival) < polling {
		open := len(s.held) + len(s.pending) + 1
		if open >= s.requests || (s.hold == 0 && s.lastEmpty && s.lastNoData) {
			// §11 overactivity, §12 polling too often: empty requests
			// faster than 'polling' while the server holds everything
			// the client may have open.
			s.terminate(req, "policy-violation")
			return
		}
	}
	if !s.anyPendingAbove(rid) {
		s.lastArrival = now
	}
	s.pending[rid] = req
	for !s.ended {
		next, ok := s.pending[s.nextRID]
		if !ok {
			break
		}
		delete(s.pending, s.nextRID)
		s.nextRID++
		s.process(next, now)
	}
	if !s.ended {
		s.flush()
	}
	s.mu.broadcast()
}

// anyPendingAbove reports whether a request with a higher rid is waiting.
func (s *session) anyPendingAbove(rid uint64) bool {
	for r := range s.pending {
		if r > rid {
			return true
		}
	}
	return false
}

// find returns the held or pending request with this rid.
func (s *session) find(rid uint64) *request {
	if r, ok := s.pending[rid]; ok {
		return r
	}
	for _, r := range s.held {
		if r.rid == rid {
			return r
		}
	}
	return nil
}

// allPresent reports whether every rid in [from, to) is held or pending.
func (s *session) allPresent(from, to uint64) bool {
	if to-from > uint64(s.requests)+1 {
		return false
	}
	for rid := from; rid < to; rid++ {
		if s.find(rid) == nil {
			return false
		}
	}
	return true
}

// checkKey verifies the key sequence of XEP-0124 §15.4 for a request whose
// turn has come and moves it on. Call with s.mu held.
func (s *session) checkKey(b *boshwire.Body) bool {
	if b.Get("rid") == strconv.FormatUint(s.first, 10) {
		return true // the creation request set the first key
	}
	key := b.Get("key")
	if s.key == "" && key == "" {
		if nk := b.Get("newkey"); nk != "" {
			s.key = nk // a client may start keys later; accept the new sequence
		}
		return true
	}
	if s.key == "" || key == "" {
		return s.key == ""
	}
	sum := sha1.Sum([]byte(key))
	if hex.EncodeToString(sum[:]) != s.key {
		return false
	}
	s.key = key
	if nk := b.Get("newkey"); nk != "" {
		s.key = nk // §15.5: a new key sequence
	}
	return true
}

// process acts on a request whose turn has come (rid order). Call with s.mu
// held.
func (s *session) process(req *request, now time.Time) {
	b := req.b
	if !s.checkKey(b) {
		// §15.4: not processed; the session ends with item-not-found.
		s.terminate(req, "item-not-found")
		return
	}
	s.lastEmpty = len(b.Children) == 0
	if req.rid != s.first {
		s.pauseUntil = time.Time{} // §10: a new request ends a pause
	}
	restart := b.Get("xmpp:restart") == "true" || b.Get("xmpp:restart") == "1"
	if restart {
		// Older requests are answered now, with what the old stream still
		// had: the restart's own answer must carry the new features.
		for len(s.held) > 0 {
			s.answer(s.held[0], "")
		}
		s.conn.push([]byte(s.streamHeader()))
	}
	for _, c := range b.Children {
		s.conn.push(c.Raw)
	}
	if s.conn.buffered() > maxIn {
		s.terminate(req, "policy-violation")
		return
	}
	if b.Get("type") == "terminate" {
		// §13: the payloads go to the server, then the stream ends; every
		// request still open learns that this one ended the session.
		s.conn.push([]byte("</stream:stream>"))
		s.endLocked("", req)
		return
	}
	if p, ok, err := b.UintAttr("pause"); ok && err == nil && p > 0 {
		// §10: every held request is answered now, the pause request
		// without payloads, and the inactivity period becomes the pause.
		p = min(p, s.h.cfg.MaxPause)
		s.pauseUntil = now.Add(time.Duration(p) * time.Second)
		for len(s.held) > 0 {
			s.answer(s.held[0], "")
		}
		req.pause = true
		s.held = append(s.held, req)
		s.answer(req, "")
		return
	}
	req.deadline = now.Add(s.wait)
	s.held = append(s.held, req)
	if (len(b.Children) > 0 || restart || req.rid == s.first) && len(s.held) > s.hold {
		// The request beyond 'hold' would be answered at once, empty; the
		// server's immediate answer to this request's payload (an iq
		// result, a room's echo) is due in a moment and is better carried
		// by it, leaving the new request held for what comes later.
		s.lingering = true
		s.lingerCap = now.Add(lingerMax)
		s.lingerIn = s.conn.pushed()
	}
}

// lingerOver reports whether a linger has ended: the server read the
// payload and went back to waiting for input lingerGrace ago, or lingerMax
// passed. Call with s.mu held.
func (s *session) lingerOver(now time.Time) bool {
	if !s.lingering {
		return true
	}
	if !now.Before(s.lingerCap) {
		return true
	}
	t, ok := s.conn.blockedSince(s.lingerIn)
	return ok && !now.Before(t.Add(lingerGrace))
}

// streamHeader is the stream header the server sees for this session.
func (s *session) streamHeader() string {
	h := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + boshwire.NSStream +
		"' version='1.0' to='" + boshwire.AttrEscape(s.h.cfg.Domain) + "'"
	if s.lang != "" {
		h += " xml:lang='" + boshwire.AttrEscape(s.lang) + "'"
	}
	return h + ">"
}

// flush answers held requests: the oldest gets every queued element, and
// requests beyond 'hold' are answered at once (XEP-0124 §8), unless a
// linger is on. A request whose 'wait' is zero is answered at once too.
// Call with s.mu held.
func (s *session) flush() {
	now := time.Now()
	for len(s.held) > 0 {
		switch {
		case len(s.out) > 0:
			s.answer(s.held[0], "")
		case len(s.held) > s.hold && s.lingerOver(now):
			s.answer(s.held[0], "")
		case !now.Before(s.held[0].deadline):
			s.answer(s.held[0], "")
		default:
			return
		}
	}
	s.lingering = false
}

// answer responds to held request req (which must be the oldest) with the
// queued output; a pause request gets none. With a non-empty cond the
// response is a terminate ("terminate" for one without a condition). Call
// with s.mu held.
func (s *session) answer(req *request, cond string) {
	if len(s.held) > 0 && s.held[0] == req {
		s.held = s.held[1:]
	}
	if len(s.held) <= s.hold {
		s.lingering = false
	}
	var out [][]byte
	if !req.pause {
		out = s.out
		s.out, s.outBytes = nil, 0
	}
	attrs := s.ackAttrs(req)
	var data []byte
	switch {
	case cond != "":
		if cond == "terminate" {
			cond = ""
		}
		data = terminateBody(cond, attrs, out)
	case req.rid == s.first:
		data = responseBody(s.creationAttrs()+attrs, out)
	default:
		data = responseBody(attrs, out)
	}
	s.lastNoData = len(out) == 0
	s.lastAnswered = req.rid
	if !req.pause && cond == "" {
		// §14.3: answers are kept for repeats, not those of pause requests
		// or errors.
		s.cache[req.rid] = cached{data: data, sentAt: time.Now()}
		s.cacheOrder = append(s.cacheOrder, req.rid)
		for len(s.cacheOrder) > s.requests {
			delete(s.cache, s.cacheOrder[0])
			s.cacheOrder = s.cacheOrder[1:]
		}
	}
	if len(s.held) == 0 && len(s.pending) == 0 {
		s.idleSince = time.Now()
	}
	status := http.StatusOK
	if cond != "" {
		status = s.status(cond)
	}
	s.send(req, status, data)
	s.mu.broadcast()
}

// ackAttrs are the acknowledgement attributes of the answer to req when the
// client asked for them (XEP-0124 §9.1): ack is the highest rid received
// with every lower one, left out when it is req's own rid. It also handles
// the client's own ack (§9.2): answers it has acknowledged leave the cache.
func (s *session) ackAttrs(req *request) string {
	if !s.acks {
		return ""
	}
	if a, err := boshwire.ParseRID(req.b.Get("ack")); err == nil {
		for len(s.cacheOrder) > 0 && s.cacheOrder[0] <= a {
			delete(s.cache, s.cacheOrder[0])
			s.cacheOrder = s.cacheOrder[1:]
		}
	}
	received := s.nextRID - 1
	if req.rid == s.first || received != req.rid {
		return " ack='" + strconv.FormatUint(received, 10) + "'"
	}
	return ""
}

// creationAttrs are the attributes of the session creation response.
func (s *session) creationAttrs() string {
	id := s.authid
	if id == "" {
		id = s.sid
	}
	return " sid='" + s.sid + "' wait='" + strconv.Itoa(int(s.wait/time.Second)) +
		"' requests='" + strconv.Itoa(s.requests) + "' hold='" + strconv.Itoa(s.hold) +
		"' inactivity='" + strconv.Itoa(s.h.cfg.Inactivity) + "' polling='" + strconv.Itoa(s.h.cfg.Polling) +
		"' maxpause='" + strconv.Itoa(s.h.cfg.MaxPause) + "' ver='" + s.ver + "' authid='" + boshwire.AttrEscape(id) +
		"' from='" + boshwire.AttrEscape(s.h.cfg.Domain) + "' secure='true' xmpp:version='1.0' xmlns:xmpp='" + boshwire.NSXBOSH + "'"
}

// send hands an answer to the HTTP goroutine waiting for req, if any.
func (s *session) send(req *request, status int, data []byte) {
	select {
	case req.resp <- reply{status, data}:
	default:
	}
}

// terminate answers req with a terminal binding error and ends the session.
// Call with s.mu held.
func (s *session) terminate(req *request, cond string) {
	s.h.log.Debug("BOSH session terminated", "sid", s.sid, "rid", req.rid, "condition", cond)
	s.send(req, s.status(cond), terminateBody(cond, "", nil))
	s.endLocked(cond, nil)
}

// end ends the session from outside a request.
func (s *session) end(cond string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(cond, nil)
}

// endLocked ends the session. With an error cond every open request gets a
// terminate with cond, the oldest held one with the queued output too. A
// client's terminate request (term) ends it without a condition: term is
// answered type='terminate' (§13), the requests held before it and those
// waiting beyond it learn condition='other-request' (§17.2). A plain end
// (cond "" and no term: inactivity, the server closed its stream) answers
// with type='terminate' alone. The server's stream input ends. Call with
// s.mu held.
func (s *session) endLocked(cond string, term *request) {
	if s.ended {
		return
	}
	others := cond
	switch {
	case others != "":
	case term != nil:
		others = "other-request"
	default:
		others = "terminate"
	}
	for len(s.held) > 0 {
		s.answer(s.held[0], others)
	}
	if term != nil {
		s.answer(term, "terminate")
	}
	if others == "terminate" {
		others = ""
	}
	for _, r := range s.pending {
		s.send(r, s.status(others), terminateBody(others, "", nil))
	}
	s.pending = map[uint64]*request{}
	s.ended = true
	s.endCond = cond
	s.conn.endInput()
	s.h.remove(s, cond)
	s.mu.broadcast()
}

// fromServer takes bytes the server wrote, cuts them into elements and
// answers held requests with them. It blocks (honouring the write deadline)
// while the client is not collecting them fast enough.
func (s *session) fromServer(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.outBytes > maxOut && !s.ended {
		// Lock order: session, then conn.
		if err := s.mu.wait(s.conn.writeDeadline()); err != nil {
			return 0, err
		}
	}
	if s.ended {
		return len(p), nil // nobody is listening: drop, the server ends on EOF
	}
	evs, err := s.cut.Feed(p)
	for _, ev := range evs {
		switch ev.Kind {
		case xmlsplit.StreamStart:
			if s.authid == "" {
				for _, a := range ev.Attr {
					if a.Name.Space == "" && a.Name.Local == "id" {
						s.authid = a.Value
					}
				}
			}
		case xmlsplit.Element:
			if ev.Name.Local == "error" && ev.Name.Space == "stream" {
				s.streamError = true
			}
			raw := boshwire.WithClientNS(ev)
			s.out = append(s.out, raw)
			s.outBytes += len(raw)
		case xmlsplit.StreamEnd:
			s.streamEnded = true
		}
	}
	switch {
	case err != nil:
		s.h.log.Warn("BOSH session: bad server output", "sid", s.sid, "err", err)
		s.endLocked("internal-server-error", nil)
	case s.streamEnded && s.streamError:
		s.endLocked("remote-stream-error", nil)
	case s.streamEnded:
		s.endLocked("", nil)
	default:
		s.flush()
	}
	s.mu.broadcast()
	return len(p), nil
}

// serverClosed is called when the server's side of the stream is closed.
func (s *session) serverClosed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ended:
	case s.streamError:
		s.endLocked("remote-stream-error", nil)
	default:
		s.endLocked("remote-connection-failed", nil)
	}
}

// String names the session in logs.
func (s *session) String() string { return fmt.Sprintf("bosh session %s", s.sid) }

var _ net.Conn = (*serverConn)(nil)
