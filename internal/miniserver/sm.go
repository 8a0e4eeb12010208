package miniserver

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/stream"
)

// Stream management (XEP-0198, urn:xmpp:sm:3), with resumption.
//
// The feature is advertised after SASL, next to bind, unless Config.NoSM is
// set. mellium's negotiator ends with bind, so <enable/> and the rest arrive
// in readLoop like stanzas and are handled here, under s.mu like every
// stanza: that lock orders them against routing, which is what makes the
// counts exact.
//
//   - h (handled) counts the client's stanzas once process has routed them,
//     as Prosody does: <a h="N"/> means "the server has it", not merely "the
//     bytes arrived". Stanzas ignored while the server is deaf are not
//     counted, and a deaf server answers no <r/>.
//   - sent counts the stanzas deliver queued for the client after
//     <enabled/>; RequestAck sends <r/>, and the client's <a h="N"/> is
//     checked against sent (a count above it ends the stream). Raw bytes
//     from SendRaw are not counted.
//   - Resumption: <enable resume='true'/> is answered with
//     <enabled resume='true' max='N'/> (unless Config.NoResume). The
//     stanzas sent and not yet acknowledged are kept (queue). When such a
//     session's connection is cut (not closed), it hibernates: it stays
//     bound, available and in its rooms, and what is sent to it waits in
//     the queue. <resume previd h/> on a new connection, in place of bind,
//     takes it up again: <resumed h/>, then the queue after the client's h
//     is written first. After Config.ResumeTimeout the session ends as a
//     lost one does. The queue is bounded (outQueue): a session that
//     overflows it cannot be resumed.
//   - When a session ends otherwise than by a crash (its stream closed, a
//     login replaced it, its window passed), the one-to-one messages it
//     never acknowledged go where a message to the account would go now:
//     another resource, or offline storage (Stats.Rescued counts them).

const nsSM = "urn:xmpp:sm:3"

// smSession is the stream management state of one client. It is guarded
// by srv.mu.
type smSession struct {
	enabled bool
	id      string
	handled uint32 // client stanzas processed since <enable/>
	sent    uint32 // stanzas queued to the client since <enabled/>
	acked   uint32 // the client's last <a h="N"/>
	acks    int    // <a/> received from the client

	resumable bool     // the client asked for resumption and it was granted
	queue     [][]byte // stanzas sent after acked, in order (when resumable)
	overflow  bool     // the queue overflowed: the session cannot be resumed
}

// SMState describes the stream management state of one session, as the
// server sees it.
type SMState struct {
	// Enabled tells whether the client enabled stream management.
	Enabled bool
	// Handled counts the client's stanzas the server processed since.
	Handled uint32
	// Sent counts the stanzas queued to the client since <enabled/>.
	Sent uint32
	// Acked is the client's last acknowledged count.
	Acked uint32
	// Acks counts the <a/> elements the client sent.
	Acks int
	// Resumable tells whether the session may be resumed.
	Resumable bool
	// Hibernating tells whether the session lost its connection and waits
	// to be resumed.
	Hibernating bool
	// ID is the stream management id.
	ID string
}

// smFeature advertises urn:xmpp:sm:3 in the stream features after SASL.
// mellium's negotiator hands it a <resume/> sent in place of bind; <enable/>
// comes after bind, when mellium's negotiation is over, and is handled in
// readLoop (smElement).
func (s *Server) smFeature(a *authState) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsSM, Local: "sm"},
		Necessary:  xmpp.Secure | xmpp.Authn,
		Prohibited: xmpp.Ready,
		// Listed as "required" for mellium's sake only (nothing says so on
		// the wire): after a feature it does not deem required, mellium's
		// server goes on reading features, even when a <resume/> has made
		// the session ready. A client that binds is not held up by it.
		List: func(_ context.Context, w xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			if err := w.EncodeToken(start); err != nil {
				return false, err
			}
			return true, w.EncodeToken(start.End())
		},
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return false, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, sess *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			return s.negotiateResume(ctx, sess, a)
		},
	}
}

// negotiateResume reads a <resume previd h/> and takes the session up
// again, or answers <failed/> and lets the client bind.
func (s *Server) negotiateResume(ctx context.Context, sess *xmpp.Session, a *authState) (xmpp.SessionState, io.ReadWriter, error) {
	r := sess.TokenReader()
	d := xml.NewTokenDecoder(r)
	tok, err := d.Token()
	if err != nil {
		r.Close()
		return 0, nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok || start.Name.Local != "resume" {
		r.Close()
		return 0, nil, stream.UnsupportedStanzaType
	}
	var v struct {
		PrevID string `xml:"previd,attr"`
		H      string `xml:"h,attr"`
	}
	err = d.DecodeElement(&v, &start)
	r.Close()
	if err != nil {
		return 0, nil, err
	}
	fail := func(cond string, extra ...string) (xmpp.SessionState, io.ReadWriter, error) {
		s.log.Debug("resumption refused", "previd", v.PrevID, "condition", cond)
		f := elem(nsSM, "failed", extra...).add(elem(nsStanzas, cond))
		if err := writeElem(sess, f); err != nil {
			return 0, nil, err
		}
		// The client binds next. mellium's negotiator, done with this
		// feature set, would list the features again instead of taking the
		// bind request, so it is answered here.
		return s.bindAfterFailed(sess, a)
	}
	h, err := strconv.ParseUint(v.H, 10, 32)
	if err != nil || v.PrevID == "" || s.cfg.NoResume {
		return fail("bad-request")
	}
	user := a.getUser()

	// Find the session; a connection the server still thinks alive is
	// cut first (the client knows better), and its reader hibernates it.
	var c *client
	for tries := 0; ; tries++ {
		s.mu.Lock()
		c = nil
		for _, x := range s.clients {
			if x.sm.id == v.PrevID && !x.gone {
				c = x
				break
			}
		}
		switch {
		case c == nil || c.full.Localpart() != user || !c.sm.resumable || c.sm.overflow:
			s.mu.Unlock()
			return fail("item-not-found")
		case c.hibernating:
		case tries == 0:
			_ = c.tc.Close()
			s.mu.Unlock()
			continue
		case tries > 200:
			s.mu.Unlock()
			return fail("item-not-found")
		default:
			s.mu.Unlock()
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return 0, nil, ctx.Err()
			}
			continue
		}
		break
	}
	// c is hibernating; s.mu is held.
	if int32(uint32(h)-c.sm.sent) > 0 {
		sent := c.sm.sent
		s.mu.Unlock()
		return fail("unexpected-request", "h", strconv.FormatUint(uint64(sent), 10))
	}
	c.sm.trimLocked(uint32(h))
	c.hibGen++ // the expiry timer no longer applies
	handled := c.sm.handled
	wdone := c.wdone
	resent := len(c.sm.queue) // read under the lock: deliveries append to it
	s.mu.Unlock()
	// The old connection's writer must be gone before this one takes over.
	select {
	case <-wdone:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	if err := writeElem(sess, elem(nsSM, "resumed", "previd", v.PrevID, "h", strconv.FormatUint(uint64(handled), 10))); err != nil {
		return 0, nil, err
	}
	a.mu.Lock()
	a.client, a.resumed = c, true
	a.mu.Unlock()
	s.stats.resumed.Add(1)
	s.log.Debug("session resumed", "jid", c.full.String(), "h", h, "resent", resent)
	return xmpp.Ready, nil, nil
}

// writeElem writes e on the session during negotiation and flushes it.
func writeElem(sess *xmpp.Session, e *el) error {
	w := sess.TokenWriter()
	_, err := xmlstream.Copy(w, rawTokens(e))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// rawTokens reads e back as tokens for a session's token writer, its
// xmlns attributes kept as written (no namespace resolution, which would
// make the encoder write them twice).
func rawTokens(e *el) xml.TokenReader {
	return rawReader{xml.NewDecoder(bytes.NewReader(e.bytes()))}
}

type rawReader struct{ d *xml.Decoder }

func (r rawReader) Token() (xml.Token, error) { return r.d.RawToken() }

// bindAfterFailed reads the bind request that follows a failed <resume/>
// and answers it as xmpp.BindCustom would.
func (s *Server) bindAfterFailed(sess *xmpp.Session, a *authState) (xmpp.SessionState, io.ReadWriter, error) {
	r := sess.TokenReader()
	d := xml.NewTokenDecoder(r)
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			r.Close()
			return 0, nil, err
		}
		if st, ok := tok.(xml.StartElement); ok {
			start = st
			break
		}
	}
	var iq struct {
		ID   string `xml:"id,attr"`
		Type string `xml:"type,attr"`
		Bind *struct {
			Resource string `xml:"resource"`
		} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	}
	err := d.DecodeElement(&iq, &start)
	r.Close()
	if err != nil {
		return 0, nil, err
	}
	if start.Name.Local != "iq" || iq.Type != "set" || iq.Bind == nil {
		return 0, nil, stream.PolicyViolation
	}
	j, err := s.bind(a, iq.Bind.Resource)
	if err != nil {
		return 0, nil, err
	}
	res := elem(nsClient, "iq", "type", "result", "id", iq.ID).add(
		elem("urn:ietf:params:xml:ns:xmpp-bind", "bind").add(
			elem("urn:ietf:params:xml:ns:xmpp-bind", "jid").text(j.String())))
	if err := writeElem(sess, res); err != nil {
		return 0, nil, err
	}
	sess.UpdateAddr(j)
	return xmpp.Ready, nil, nil
}

// hibernateLocked keeps c, whose connection was cut, for resumption when
// it asked for it; it reports false when the session must end instead.
// It closes the connection. The caller holds s.mu.
func (s *Server) hibernateLocked(c *client) bool {
	if c.gone || !c.sm.enabled || !c.sm.resumable || c.sm.overflow || s.cfg.NoResume {
		return false
	}
	c.kill()
	c.hibernating = true
	c.hibGen++
	gen := c.hibGen
	wait := s.cfg.ResumeTimeout
	if wait <= 0 {
		wait = DefaultResumeTimeout
	}
	s.log.Debug("session hibernating", "jid", c.full.String(), "for", wait)
	time.AfterFunc(wait, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.hibernating && c.hibGen == gen && !c.gone {
			s.log.Debug("session not resumed in time; ending it", "jid", c.full.String())
			s.endLocked(c)
		}
	})
	return true
}

// endLocked ends the session c (its stream closed, it was replaced, or its
// resumption window passed) and passes on the messages it had not
// acknowledged: a one-to-one message goes where one sent to the account now
// would (another resource, or offline storage), as Prosody's mod_smacks
// does, so that none is lost with the session. Presence, iq and room
// messages belonged to the session and are not. A crash (DropAll,
// Restart) uses detachLocked and loses them. The caller holds s.mu.
func (s *Server) endLocked(c *client) {
	if c.gone {
		return
	}
	s.detachLocked(c)
	q := c.sm.queue
	c.sm.queue = nil
	for _, b := range q {
		e, err := readElement(xml.NewDecoder(bytes.NewReader(b)), len(b)+1) // written by this server: within its limits
		if err != nil || e.Name.Local != "message" || e.child(nsClient, "body") == nil && e.child("", "body") == nil {
			continue
		}
		typ := e.attr("type")
		if typ != "" && typ != "chat" && typ != "normal" {
			continue
		}
		if typ == "" {
			typ = "normal"
		}
		s.stats.rescued.Add(1)
		s.userMessageLocked(c, e, c.full.Bare(), typ)
	}
}

// reattachLocked gives the resumed session c the new connection and
// queues what it had not acknowledged. The caller holds s.mu.
func (s *Server) reattachLocked(c *client, tc *trackedConn, lc *limitConn, sess *xmpp.Session) {
	c.sess = sess
	c.conn = sess.Conn()
	c.tc, c.lc = tc, lc
	c.out = make(chan []byte, outQueue)
	c.quit = make(chan struct{})
	c.wdone = make(chan struct{})
	c.closeOnce = sync.Once{}
	c.final = nil
	c.hibernating = false
	for _, b := range c.sm.queue {
		c.send(b)
	}
}

// smElement handles one element of the urn:xmpp:sm:3 namespace from c; it
// reports false when the stream must stop being read.
func (s *Server) smElement(c *client, e *el) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deaf {
		s.stats.drops.Add(1)
		return true
	}
	if c.gone {
		return false
	}
	sm := &c.sm
	switch e.Name.Local {
	case "enable":
		if s.cfg.NoSM || sm.enabled {
			c.send(smFailed("unexpected-request"))
			return true
		}
		*sm = smSession{enabled: true, id: randomID()}
		if r := e.attr("resume"); (r == "true" || r == "1") && !s.cfg.NoResume && c.comp == nil {
			sm.resumable = true
			wait := s.cfg.ResumeTimeout
			if wait <= 0 {
				wait = DefaultResumeTimeout
			}
			c.send(elem(nsSM, "enabled", "id", sm.id, "resume", "true", "max", strconv.Itoa(int(wait.Seconds()))).bytes())
			return true
		}
		c.send(elem(nsSM, "enabled", "id", sm.id).bytes())
	case "resume":
		c.send(smFailed("unexpected-request"))
	case "r":
		if !sm.enabled {
			c.closeStream("unsupported-stanza-type")
			return false
		}
		c.send(elem(nsSM, "a", "h", strconv.FormatUint(uint64(sm.handled), 10)).bytes())
	case "a":
		if !sm.enabled {
			c.closeStream("unsupported-stanza-type")
			return false
		}
		h, err := strconv.ParseUint(e.attr("h"), 10, 32)
		if err != nil || int32(uint32(h)-sm.sent) > 0 {
			s.log.Info("client acknowledged more than was sent", "jid", c.full.String(), "h", e.attr("h"), "sent", sm.sent)
			c.closeStream("undefined-condition")
			return false
		}
		sm.trimLocked(uint32(h))
		sm.acks++
	default:
		c.closeStream("unsupported-stanza-type")
		return false
	}
	return true
}

// smFailed builds <failed/> with a stanza error condition.
func smFailed(cond string) []byte {
	return elem(nsSM, "failed").add(elem(nsStanzas, cond)).bytes()
}

// smHandledLocked counts one stanza of c as handled. The caller holds
// s.mu.
func (c *client) smHandledLocked() {
	if c.owner != nil {
		c = c.owner // an address of a component: its connection counts
	}
	if c.sm.enabled {
		c.sm.handled++
	}
}

// smSentLocked counts one stanza queued for c, and keeps it for a
// resumption. The caller holds s.mu.
func (c *client) smSentLocked(b []byte) {
	if c.owner != nil {
		c = c.owner
	}
	if !c.sm.enabled {
		return
	}
	c.sm.sent++
	if c.sm.resumable && !c.sm.overflow {
		if len(c.sm.queue) >= outQueue {
			c.sm.overflow, c.sm.queue = true, nil
			return
		}
		c.sm.queue = append(c.sm.queue, b)
	}
}

// trimLocked records the client's acknowledgement h (already checked
// against sent) and forgets the stanzas it covers.
func (sm *smSession) trimLocked(h uint32) {
	n := int(h - sm.acked)
	sm.acked = h
	if n <= 0 || sm.overflow {
		return
	}
	if n >= len(sm.queue) {
		sm.queue = sm.queue[:0]
		return
	}
	sm.queue = append(sm.queue[:0], sm.queue[n:]...)
}

// SM returns the stream management state of the session with the full JID
// addr, and false when no such session is bound.
func (s *Server) SM(addr string) (SMState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[addr]
	if c == nil || c.gone {
		return SMState{}, false
	}
	return SMState{
		Enabled:     c.sm.enabled,
		Handled:     c.sm.handled,
		Sent:        c.sm.sent,
		Acked:       c.sm.acked,
		Acks:        c.sm.acks,
		Resumable:   c.sm.resumable,
		Hibernating: c.hibernating,
		ID:          c.sm.id,
	}, true
}

// RequestAck sends <r xmlns='urn:xmpp:sm:3'/> to the session with the full
// JID addr. It returns ErrNoOccupant when no such session is bound, and
// ErrNoSM when the session did not enable stream management.
func (s *Server) RequestAck(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[addr]
	if c == nil || c.gone {
		return ErrNoOccupant
	}
	if !c.sm.enabled {
		return ErrNoSM
	}
	c.send(elem(nsSM, "r").bytes())
	return nil
}
