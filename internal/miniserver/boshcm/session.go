package boshcm

import (
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
	resp     chan []byte // buffered: the answer never blocks
	status   chan int
}

func newRequest(rid uint64, b *boshwire.Body) *request {
	return &request{rid: rid, b: b, resp: make(chan []byte, 1), status: make(chan int, 1)}
}

// session is one BOSH session: a window of HTTP requests on one side, one
// XMPP stream run by Config.Serve on the other.
type session struct {
	h       *Handler
	sid     string
	first   uint64 // rid of the creation request
	wait    time.Duration
	hold    int
	lang    string
	ver     string
	conn    *serverConn
	serveOK chan struct{} // closed when Serve returned

	mu           chanMutex
	cut          boshwire.Cutter
	authid       string
	nextRID      uint64 // next rid to process
	lastAnswered uint64 // every rid up to this one is answered
	pending      map[uint64]*request
	held         []*request
	cache        map[uint64][]byte
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
	lastEmpty    bool
}

func newSession(h *Handler, sid string, rid uint64, wait, hold int, b *boshwire.Body) *session {
	s := &session{
		h:            h,
		sid:          sid,
		first:        rid,
		wait:         time.Duration(wait) * time.Second,
		hold:         hold,
		lang:         b.Get("xml:lang"),
		ver:          negotiateVer(b.Get("ver")),
		serveOK:      make(chan struct{}),
		nextRID:      rid,
		lastAnswered: rid - 1,
		pending:      map[uint64]*request{},
		cache:        map[uint64][]byte{},
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

// loop expires held requests after 'wait', ends an inactive session and,
// once the session ended, makes sure Serve returns.
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
			s.answer(s.held[0], "", nil)
		}
		var next time.Time
		if len(s.held) > 0 {
			next = s.held[0].deadline
		}
		if len(s.held) == 0 && len(s.pending) == 0 {
			idle := s.idleSince.Add(time.Duration(s.h.cfg.Inactivity) * time.Second)
			if idle.Before(s.pauseUntil) {
				idle = s.pauseUntil
			}
			if !now.Before(idle) {
				s.h.log.Debug("BOSH session inactive", "sid", s.sid)
				s.endLocked("")
				s.mu.Unlock()
				break
			}
			next = idle
		}
		ch := s.mu.changed
		s.mu.Unlock()
		t := time.NewTimer(max(time.Until(next), time.Millisecond))
		select {
		case <-ch:
		case <-t.C:
		case <-s.h.done:
			s.end("system-shutdown")
		}
		t.Stop()
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
	s.mu.Lock()
	s.admit(req)
	s.mu.Unlock()
	safety := time.NewTimer(s.wait + 5*time.Second)
	defer safety.Stop()
	select {
	case data := <-req.resp:
		writeBody(w, <-req.status, data)
	case <-r.Context().Done():
		// The answer, when it comes, stays in the cache for a retry.
	case <-safety.C:
		writeBody(w, http.StatusOK, responseBody("", nil))
	}
}

// admit checks a request against the rid window and the overactivity
// rules, then queues it. Call with s.mu held.
func (s *session) admit(req *request) {
	now := time.Now()
	if s.ended {
		cond := s.endCond
		if cond == "" {
			cond = "item-not-found"
		}
		s.reply(req, statusOf(cond), terminateBody(cond, nil))
		return
	}
	rid := req.rid
	if rid <= s.lastAnswered {
		if data, ok := s.cache[rid]; ok {
			// A repeated request whose answer was lost: send it again.
			s.reply(req, http.StatusOK, data)
			return
		}
		s.terminate(req, "item-not-found")
		return
	}
	if old := s.find(rid); old != nil {
		// A repeated request still waiting: the new one takes its place and
		// the old one (whose client has given up on it) is answered empty.
		s.reply(old.clone(), http.StatusOK, responseBody("", nil))
		old.resp, old.status = req.resp, req.status
		return
	}
	kind := req.b.Get("type")
	limit := uint64(requests)
	if kind == "terminate" || req.b.Get("pause") != "" {
		limit++ // XEP-0124 allows one more request to pause or terminate
	}
	if rid > s.lastAnswered+limit {
		if s.allPresent(s.lastAnswered+1, rid) {
			s.terminate(req, "policy-violation") // too many simultaneous requests
		} else {
			s.terminate(req, "item-not-found") // outside the window
		}
		return
	}
	empty := len(req.b.Children) == 0 && kind == "" && req.b.Get("xmpp:restart") == "" && req.b.Get("pause") == ""
	polling := time.Duration(s.h.cfg.Polling) * time.Second
	if empty && rid != s.first && now.Sub(s.lastArrival) < polling {
		open := len(s.held) + len(s.pending) + 1
		if open >= requests || (s.hold == 0 && s.lastEmpty) {
			// XEP-0124 overactivity: empty requests faster than 'polling'
			// while the server holds everything the client may have open.
			s.terminate(req, "policy-violation")
			return
		}
	}
	s.lastArrival = now
	s.pending[rid] = req
	for {
		next, ok := s.pending[s.nextRID]
		if !ok || s.ended {
			break
		}
		delete(s.pending, s.nextRID)
		s.nextRID++
		s.process(next, now)
	}
	s.flush()
	s.mu.broadcast()
}

func (r *request) clone() *request {
	return &request{rid: r.rid, b: r.b, resp: r.resp, status: r.status}
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
	if to-from > uint64(requests)+1 {
		return false
	}
	for rid := from; rid < to; rid++ {
		if s.find(rid) == nil {
			return false
		}
	}
	return true
}

// process acts on a request whose turn has come (rid order). Call with s.mu
// held.
func (s *session) process(req *request, now time.Time) {
	b := req.b
	s.lastEmpty = len(b.Children) == 0
	if b.Get("xmpp:restart") == "true" {
		// Older requests are answered now, with what the old stream still
		// had: the restart's own answer must carry the new features.
		for len(s.held) > 0 {
			s.answer(s.held[0], "", nil)
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
		s.conn.push([]byte("</stream:stream>"))
		s.held = append(s.held, req)
		s.endLocked("")
		return
	}
	if p := b.IntAttr("pause", 0); p > 0 {
		p = min(p, s.h.cfg.MaxPause)
		s.pauseUntil = now.Add(time.Duration(p) * time.Second)
		s.held = append(s.held, req)
		for len(s.held) > 0 {
			s.answer(s.held[0], "", nil)
		}
		return
	}
	req.deadline = now.Add(s.wait)
	s.held = append(s.held, req)
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
// requests beyond 'hold' are answered at once. Call with s.mu held.
func (s *session) flush() {
	for len(s.held) > 0 {
		switch {
		case len(s.out) > 0:
			s.answer(s.held[0], "", nil)
		case len(s.held) > s.hold:
			s.answer(s.held[0], "", nil)
		default:
			return
		}
	}
}

// answer responds to held request req (which must be the oldest) with the
// queued output. With a non-empty cond (or "terminate") the response ends
// the session. Call with s.mu held.
func (s *session) answer(req *request, cond string, _ []byte) {
	if len(s.held) > 0 && s.held[0] == req {
		s.held = s.held[1:]
	}
	out := s.out
	s.out, s.outBytes = nil, 0
	var data []byte
	switch {
	case cond != "":
		if cond == "terminate" {
			cond = ""
		}
		data = terminateBody(cond, out)
	case req.rid == s.first:
		data = responseBody(s.creationAttrs(), out)
	default:
		data = responseBody("", out)
	}
	s.lastAnswered = req.rid
	s.cache[req.rid] = data
	s.cacheOrder = append(s.cacheOrder, req.rid)
	for len(s.cacheOrder) > requests+1 {
		delete(s.cache, s.cacheOrder[0])
		s.cacheOrder = s.cacheOrder[1:]
	}
	if len(s.held) == 0 && len(s.pending) == 0 {
		s.idleSince = time.Now()
	}
	s.reply(req, statusOf(cond), data)
	s.mu.broadcast()
}

// creationAttrs are the attributes of the session creation response.
func (s *session) creationAttrs() string {
	id := s.authid
	if id == "" {
		id = s.sid
	}
	return " sid='" + s.sid + "' wait='" + strconv.Itoa(int(s.wait/time.Second)) +
		"' requests='" + strconv.Itoa(requests) + "' hold='" + strconv.Itoa(s.hold) +
		"' inactivity='" + strconv.Itoa(s.h.cfg.Inactivity) + "' polling='" + strconv.Itoa(s.h.cfg.Polling) +
		"' maxpause='" + strconv.Itoa(s.h.cfg.MaxPause) + "' ver='" + s.ver + "' authid='" + boshwire.AttrEscape(id) +
		"' from='" + boshwire.AttrEscape(s.h.cfg.Domain) + "' secure='true' xmpp:version='1.0' xmlns:xmpp='" + boshwire.NSXBOSH + "'"
}

// reply hands data to the HTTP goroutine waiting for req, if any.
func (s *session) reply(req *request, status int, data []byte) {
	select {
	case req.status <- status:
		req.resp <- data
	default:
	}
}

// terminate answers req with a terminal binding error and ends the session.
// Call with s.mu held.
func (s *session) terminate(req *request, cond string) {
	s.h.log.Debug("BOSH session terminated", "sid", s.sid, "rid", req.rid, "condition", cond)
	s.reply(req, statusOf(cond), terminateBody(cond, nil))
	s.endLocked(cond)
}

// end ends the session from outside a request.
func (s *session) end(cond string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(cond)
}

// endLocked ends the session: the oldest held request gets the queued output
// and the terminate, the others the terminate alone; the server's stream
// input ends. Call with s.mu held.
func (s *session) endLocked(cond string) {
	if s.ended {
		return
	}
	c := cond
	if c == "" {
		c = "terminate"
	}
	for len(s.held) > 0 {
		s.answer(s.held[0], c, nil)
	}
	for _, r := range s.pending {
		s.reply(r, statusOf(cond), terminateBody(cond, nil))
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
		s.endLocked("internal-server-error")
	case s.streamEnded && s.streamError:
		s.endLocked("remote-stream-error")
	case s.streamEnded:
		s.endLocked("")
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
		s.endLocked("remote-stream-error")
	default:
		s.endLocked("remote-connection-failed")
	}
}

// String names the session in logs.
func (s *session) String() string { return fmt.Sprintf("bosh session %s", s.sid) }

var _ net.Conn = (*serverConn)(nil)
