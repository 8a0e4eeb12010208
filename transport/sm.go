package transport

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// Stream management (XEP-0198) lives entirely in the transport, because only
// the tap sees every element: mellium hands iq results to the SendIQ call
// that waits for them and never to a handler, yet they are stanzas the
// server counts.
//
// The life of one connection:
//
//  1. The tap notes whether the last <stream:features> (the one after SASL,
//     which also offers bind) carries <sm xmlns='urn:xmpp:sm:3'/>.
//  2. When Connect has bound the resource, it injects <enable/> and returns
//     at once with stream management "pending". It cannot wait for the
//     answer itself: after Connect, only the caller's Serve reads the
//     stream, and a stanza arriving before <enabled/> must reach the
//     handler rather than be swallowed by a reader inside Connect.
//  3. The tap sees <enabled/> (or <failed/>) when Serve reads it. From the
//     injected <enable/> on, every stanza written is counted (sent); from
//     <enabled/> on, every stanza read is counted (handled). Counting in
//     the tap follows the byte order of each direction exactly, which is
//     what the protocol's counters are defined on.
//  4. The server's <r/> is answered with <a h='handled'/> from a goroutine
//     of the connection (a tap callback must not inject), not at once but
//     after answerDelay, or as soon as answerCount stanzas were read since
//     the last answer: servers ask after every stanza they send while no
//     request is outstanding (Prosody), so an answer per request would
//     cost a write, and the server a request and a read, per stanza of a
//     quiet chat. Its <a h="N"/>
//     moves the acknowledged count on; an h above what was sent is a
//     protocol error that ends the connection with the stream error the
//     XEP prescribes.
//  5. Conn.Barrier injects <r/> and waits for an <a/> covering everything
//     written before the call.
//
// Resumption: <enable/> asks for it (resume='true'). When the server's
// <enabled/> says the session can be resumed, Conn.ResumeState, called
// after the connection is lost, returns what the next Connect needs
// (Options.Resume): the stream id, how many stanzas were received (h) and
// the bound JID. That Connect then sends <resume previd h/> in place of
// bind (negotiate.go). On <resumed h/> the counters continue where the
// old stream left them: the server has handled h of the stanzas this side
// sent, and resends what it sent and this side did not count; the caller
// resends its own stanzas after h (Conn.ResumeAcked). On <failed/> the
// stream binds a fresh resource and enables stream management anew; the
// caller then resends everything unacknowledged, minus what an h on
// <failed/> confirms.

// nsSM is the XEP-0198 namespace (version 3).
const nsSM = "urn:xmpp:sm:3"

// smEnableWait bounds how long a Barrier waits for the server's answer to
// <enable/> before it gives up on stream management for that call.
const smEnableWait = 10 * time.Second

// answerDelay and answerCount bound how long the answer to the server's
// <r/> waits: at most answerDelay, and no longer than until answerCount
// stanzas were read since the last answer. Servers keep what this side
// has not acknowledged (Prosody up to 500 stanzas by default, ejabberd up
// to its max_ack_queue) and wait long for an answer (Prosody reports a
// delayed ack after 30 s, ejabberd ends the stream after its ack_timeout,
// 60 s by default).
const (
	answerDelay = 100 * time.Millisecond
	answerCount = 64
)

// ErrNoSM is returned by Conn.Barrier when stream management is not in use on
// the connection: the server did not offer it, refused to enable it, or has
// not answered <enable/> in time. The caller then needs another barrier
// (such as an XMPP ping).
var ErrNoSM = errors.New("transport: stream management not enabled")

// smPhase is where stream management stands on one connection.
type smPhase int

const (
	smOff      smPhase = iota // not offered, not requested, or disabled
	smPending                 // <enable/> sent, no answer yet
	smOn                      // <enabled/> or <resumed/> received
	smFailed                  // <failed/> received
	smResuming                // <resume/> sent, no answer yet
)

// SMStats are the stream management counters of one connection, for
// metrics. The counts wrap at 2^32 as the protocol's do.
type SMStats struct {
	// Enabled tells whether the server confirmed <enable/>.
	Enabled bool
	// ID is the stream id the server gave in <enabled/>, if any.
	ID string
	// Sent counts the stanzas written since <enable/>.
	Sent uint32
	// Acked is the last count the server acknowledged with <a h="N"/>.
	Acked uint32
	// Unacked is Sent - Acked: stanzas written and not yet confirmed.
	Unacked uint32
	// Handled counts the stanzas received since <enabled/>, iq results
	// that mellium consumed included.
	Handled uint32
	// Requests counts the server's <r/> that were answered.
	Requests uint64
	// Resumable tells whether the server allows resuming the session.
	Resumable bool
	// Resumed tells whether this connection resumed an earlier session.
	Resumed bool
}

// Resume is what it takes to resume a stream-managed session on a new
// connection (XEP-0198 §5): Conn.ResumeState returns it once the old
// connection is gone, Options.Resume hands it to the next Connect.
type Resume struct {
	// ID is the stream management id the server gave (previd).
	ID string
	// JID is the full JID the session was bound to.
	JID jid.JID
	// Handled is how many stanzas this side received on the session: the
	// server resends the ones after it.
	Handled uint32
	// Sent is how many stanzas this side had written on the session.
	Sent uint32
	// Max is how long the server keeps the session after a loss, if it
	// said (zero: unknown).
	Max time.Duration
	// Location is the server's preferred address for resuming, if any.
	Location string
	// Lost is when the connection was found lost.
	Lost time.Time
}

// Expired reports whether the server's resumption window (Max) is over at
// now. A window the server did not announce never expires here: the
// server's answer decides.
func (r *Resume) Expired(now time.Time) bool {
	return r.Max > 0 && now.Sub(r.Lost) > r.Max
}

// smState is the stream management state of one tapConn. Its tap hooks run
// on the reading and writing paths with those directions locked: they only
// take mu briefly and signal the worker, never write.
type smState struct {
	log *slog.Logger

	mu       sync.Mutex
	offered  bool // the last stream features offered urn:xmpp:sm:3
	phase    smPhase
	deadline time.Time // when a pending <enable/> stops being waited for
	id       string
	counting bool   // <enable/> has been written: count outgoing stanzas
	sent     uint32 // stanzas written since <enable/>
	acked    uint32 // last h from the server
	handled  uint32 // stanzas read since <enabled/>
	requests uint64
	asked    bool   // an <r/> of the server waits for its answer
	answered uint32 // the h of the last answer
	// Resumption.
	resumable bool          // <enabled resume='true'/>
	max       time.Duration // the server's resumption window, if given
	location  string
	prev      *Resume       // the session being resumed (smResuming, then smOn)
	resumed   bool          // <resumed/> received
	prevAcked uint32        // h of <resumed/> or <failed/>: the server's count of the old stream
	prevKnown bool          // prevAcked is set
	err       error         // a protocol violation by the server
	changed   chan struct{} // closed and replaced on every change
	kick      chan struct{} // buffered: an answer is due now
	request   chan struct{} // buffered: an <r/> came; answer within answerDelay
	fault     chan string   // buffered: the stream error to end with
}

func newSMState(log *slog.Logger) *smState {
	return &smState{
		log:     log,
		changed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		request: make(chan struct{}, 1),
		fault:   make(chan string, 1),
	}
}

// signal pokes the worker through c without blocking: a signal already
// pending will do, the answer carries the latest count.
func (m *smState) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// notifyLocked wakes every waiter. The caller holds mu.
func (m *smState) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// isStanza reports whether name is a stanza of the client namespace.
func isStanza(name xml.Name) bool {
	if name.Space != nsClient {
		return false
	}
	switch name.Local {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// seeIn follows one incoming element (tap In path).
func (m *smState) seeIn(name xml.Name, raw []byte) {
	switch {
	case name.Space == nsStream && name.Local == "features":
		var f struct {
			SM *struct{} `xml:"urn:xmpp:sm:3 sm"`
		}
		offered := xml.Unmarshal(raw, &f) == nil && f.SM != nil
		m.mu.Lock()
		m.offered = offered
		m.mu.Unlock()
	case isStanza(name):
		m.mu.Lock()
		if m.phase == smOn {
			m.handled++
			if m.asked && m.handled-m.answered >= answerCount {
				m.signal(m.kick)
			}
		}
		m.mu.Unlock()
	case name.Space == nsSM:
		m.seeSM(name.Local, raw)
	}
}

// seeSM follows one incoming element of the urn:xmpp:sm:3 namespace.
func (m *smState) seeSM(local string, raw []byte) {
	if local == "a" {
		// The common case, several times a second under load: read h
		// without reflection.
		m.seeAck(attrOf(raw, "h"))
		return
	}
	if local == "r" {
		m.mu.Lock()
		if m.phase == smOn {
			m.asked = true
			if m.handled-m.answered >= answerCount {
				m.signal(m.kick)
			} else {
				m.signal(m.request)
			}
		}
		m.mu.Unlock()
		return
	}
	var v struct {
		ID       string `xml:"id,attr"`
		PrevID   string `xml:"previd,attr"`
		H        string `xml:"h,attr"`
		Resume   string `xml:"resume,attr"`
		Max      string `xml:"max,attr"`
		Location string `xml:"location,attr"`
		Inner    []struct {
			XMLName xml.Name
		} `xml:",any"`
	}
	_ = xml.Unmarshal(raw, &v)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch local {
	case "enabled":
		if m.phase != smPending {
			return
		}
		m.phase, m.id, m.handled = smOn, v.ID, 0
		m.resumable = (v.Resume == "true" || v.Resume == "1") && v.ID != ""
		m.location = v.Location
		if n, err := strconv.ParseUint(v.Max, 10, 31); err == nil && n > 0 {
			m.max = time.Duration(n) * time.Second
		}
		m.notifyLocked()
	case "resumed":
		if m.phase != smResuming {
			return
		}
		p := m.prev
		h, err := strconv.ParseUint(v.H, 10, 32)
		if err != nil || v.PrevID != p.ID {
			m.violateLocked(fmt.Sprintf("<resumed previd=%q h=%q/> for %q", v.PrevID, v.H, p.ID), "<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
			return
		}
		if ahead := int32(uint32(h) - p.Sent); ahead > 0 {
			m.violateLocked(fmt.Sprintf("server resumed with %d stanzas handled, only %d were sent", h, p.Sent),
				fmt.Sprintf("<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><handled-count-too-high xmlns='%s' h='%d' send-count='%d'/>", nsSM, h, p.Sent))
			return
		}
		// The counters go on from the old stream: the server handled h of
		// ours (what follows is resent and counted again from there), and
		// resends what came after the Handled this side announced.
		m.phase, m.id, m.resumed, m.resumable = smOn, p.ID, true, true
		m.counting, m.sent, m.acked, m.handled = true, uint32(h), uint32(h), p.Handled
		m.prevAcked, m.prevKnown = uint32(h), true
		m.max, m.location = p.Max, p.Location
		m.notifyLocked()
	case "failed":
		cond := "undefined-condition"
		if len(v.Inner) > 0 {
			cond = v.Inner[0].XMLName.Local
		}
		switch m.phase {
		case smPending:
			m.log.Warn("server refused stream management", "condition", cond)
			m.phase = smFailed
		case smResuming:
			m.log.Info("server could not resume the session; binding a new one", "condition", cond)
			m.phase = smOff // bind follows, then a new <enable/>
			if h, err := strconv.ParseUint(v.H, 10, 32); err == nil && int32(uint32(h)-m.prev.Sent) <= 0 {
				m.prevAcked, m.prevKnown = uint32(h), true
			}
		default:
			return
		}
		m.notifyLocked()
	}
}

// seeAck follows the server's <a h="N"/>.
func (m *smState) seeAck(hs string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != smOn || m.err != nil {
		return
	}
	h, err := strconv.ParseUint(hs, 10, 32)
	if err != nil {
		m.violateLocked(fmt.Sprintf("<a/> with h=%q", hs), "<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
		return
	}
	if ahead := int32(uint32(h) - m.sent); ahead > 0 {
		m.violateLocked(fmt.Sprintf("server acknowledged %d stanzas, only %d were sent", h, m.sent),
			fmt.Sprintf("<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><handled-count-too-high xmlns='%s' h='%d' send-count='%d'/>", nsSM, h, m.sent))
		return
	}
	if int32(uint32(h)-m.acked) > 0 {
		m.acked = uint32(h)
		m.notifyLocked()
	}
}

// attrOf returns the value of the attribute name in the start tag at the
// beginning of raw, an element the tap has already checked to be well
// formed, or "" when it is absent. Entities are not decoded: it serves
// numeric attributes.
func attrOf(raw []byte, name string) string {
	end := bytes.IndexByte(raw, '>')
	if end < 0 {
		return ""
	}
	tag := raw[:end]
	for i := 0; i < len(tag); {
		j := bytes.Index(tag[i:], []byte(name))
		if j < 0 {
			return ""
		}
		j += i
		k := j + len(name)
		// The name must stand alone: preceded by white space, followed by
		// optional white space and '='.
		if j == 0 || !isSpace(tag[j-1]) {
			i = k
			continue
		}
		for k < len(tag) && isSpace(tag[k]) {
			k++
		}
		if k >= len(tag) || tag[k] != '=' {
			i = k
			continue
		}
		k++
		for k < len(tag) && isSpace(tag[k]) {
			k++
		}
		if k >= len(tag) || (tag[k] != '"' && tag[k] != '\'') {
			return ""
		}
		q := tag[k]
		v := tag[k+1:]
		e := bytes.IndexByte(v, q)
		if e < 0 {
			return ""
		}
		return string(v[:e])
	}
	return ""
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// violateLocked records a protocol violation by the server and has the
// worker end the stream with a stream error carrying conditions. The
// caller holds mu.
func (m *smState) violateLocked(what, conditions string) {
	m.err = fmt.Errorf("%w: stream management: %s", ErrProtocol, what)
	m.log.Error("server broke stream management; ending the connection", "err", m.err)
	select {
	case m.fault <- "<stream:error xmlns:stream='" + nsStream + "'>" + conditions + "</stream:error>":
	default:
	}
	m.notifyLocked()
}

// seeOut follows one outgoing element (tap Out path).
func (m *smState) seeOut(name xml.Name) {
	switch {
	case isStanza(name):
		m.mu.Lock()
		if m.counting {
			m.sent++
		}
		m.mu.Unlock()
	case name.Space == nsSM && name.Local == "enable":
		m.mu.Lock()
		m.counting, m.sent, m.acked = true, 0, 0
		m.mu.Unlock()
	}
}

// enable asks the server to enable stream management if it offered it,
// and starts the worker that answers the server's <r/>. It does not wait
// for the answer (see the comment at the top of this file).
func (m *smState) enable(tc *tapConn) {
	m.mu.Lock()
	if m.resumed {
		// The session was resumed: it is enabled already and only needs
		// the worker that answers <r/>.
		m.mu.Unlock()
		go m.run(tc)
		return
	}
	if !m.offered || m.phase != smOff {
		m.mu.Unlock()
		return
	}
	m.phase = smPending
	m.deadline = time.Now().Add(smEnableWait)
	m.mu.Unlock()
	go m.run(tc)
	if err := tc.injectOwn([]byte("<enable xmlns='" + nsSM + "' resume='true'/>")); err != nil {
		m.log.Warn("cannot request stream management", "err", err)
		m.mu.Lock()
		m.phase = smFailed
		m.notifyLocked()
		m.mu.Unlock()
	}
}

// run answers the server's ack requests and ends the stream on a protocol
// violation. It returns when the connection closes or ends.
func (m *smState) run(tc *tapConn) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	timing := false
	answer := func() error {
		timing = false
		m.mu.Lock()
		if !m.asked {
			m.mu.Unlock()
			return nil // answered already (by count)
		}
		h := m.handled
		m.asked, m.answered = false, h
		m.requests++
		m.mu.Unlock()
		return tc.injectOwn(ackElement(h))
	}
	for {
		select {
		case <-m.request:
			if !timing {
				timing = true
				timer.Reset(answerDelay)
			}
		case <-timer.C:
			if err := answer(); err != nil {
				return
			}
		case <-m.kick:
			timer.Stop()
			if err := answer(); err != nil {
				return
			}
		case se := <-m.fault:
			_ = tc.SetWriteDeadline(time.Now().Add(closeGrace))
			_ = tc.injectOwn([]byte(se))
			tc.Close()
			return
		case <-tc.closed:
			return
		case <-tc.ended:
			return
		}
	}
}

// finalAck sends <a h/> with everything read so far when stream
// management is on (XEP-0198: an acknowledgement before closing the
// stream, so that the server does not hand on what was received).
func (m *smState) finalAck(tc *tapConn) {
	m.mu.Lock()
	on, h := m.phase == smOn, m.handled
	m.asked, m.answered = false, h
	m.mu.Unlock()
	if on {
		_ = tc.injectOwn(ackElement(h))
	}
}

// ackElement is <a h/> for h stanzas handled.
func ackElement(h uint32) []byte {
	return fmt.Appendf(nil, "<a xmlns='%s' h='%d'/>", nsSM, h)
}

// stats returns a snapshot of the counters.
func (m *smState) stats() SMStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return SMStats{
		Enabled:   m.phase == smOn,
		ID:        m.id,
		Sent:      m.sent,
		Acked:     m.acked,
		Unacked:   m.sent - m.acked,
		Handled:   m.handled,
		Requests:  m.requests,
		Resumable: m.resumable,
		Resumed:   m.resumed,
	}
}

// isOffered reports whether the last stream features offered stream
// management.
func (m *smState) isOffered() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.offered
}

// isResumed reports whether <resumed/> was received.
func (m *smState) isResumed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resumed
}

// beginResume records that <resume/> for prev is about to be sent.
func (m *smState) beginResume(prev *Resume) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.phase, m.prev = smResuming, prev
}

// untracked records that the tap no longer follows the incoming stream:
// the counts are lost, so the session must not be resumed.
func (m *smState) untracked(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.err = fmt.Errorf("%w: the incoming stream could not be followed: %v", ErrProtocol, err)
	}
}

// resumeState returns what resuming this session needs, or nil.
func (m *smState) resumeState(j jid.JID) *Resume {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != smOn || !m.resumable || m.id == "" || m.err != nil {
		return nil
	}
	return &Resume{ID: m.id, JID: j, Handled: m.handled, Sent: m.sent, Max: m.max, Location: m.location, Lost: time.Now()}
}

// ResumeState returns what the next Connect needs to resume this session
// (Options.Resume), or nil when it cannot be resumed: the server did not
// allow it, stream management is off, or the server broke the protocol.
// Call it once the connection is lost (Serve returned with an error); a
// session ended with Close is over on the server too.
func (c *Conn) ResumeState() *Resume {
	return c.tc.sm.resumeState(c.JID)
}

// Resumed reports whether this connection resumed an earlier session
// (Options.Resume): the server kept the bound resource, presence and room
// memberships, and resends the stanzas this side had not counted.
func (c *Conn) Resumed() bool {
	c.tc.sm.mu.Lock()
	defer c.tc.sm.mu.Unlock()
	return c.tc.sm.resumed
}

// ResumeAcked returns, after an attempt to resume (Options.Resume), how
// many of the stanzas written on the old session the server confirmed
// having handled: the h of its <resumed/>, or of its <failed/> when it
// gave one. ok is false when no attempt was made or the count is unknown.
// The stanzas after that count are the ones to send again.
func (c *Conn) ResumeAcked() (h uint32, ok bool) {
	c.tc.sm.mu.Lock()
	defer c.tc.sm.mu.Unlock()
	return c.tc.sm.prevAcked, c.tc.sm.prevKnown
}

// SMSent returns how many stanzas were written since stream management was
// requested (the count the server's acknowledgements refer to), and false
// when stream management is not in use.
func (c *Conn) SMSent() (uint32, bool) {
	c.tc.sm.mu.Lock()
	defer c.tc.sm.mu.Unlock()
	return c.tc.sm.sent, c.tc.sm.counting && c.tc.sm.phase != smFailed && c.tc.sm.phase != smOff
}

// SM reports whether stream management is enabled on the connection: the
// server answered <enable/> with <enabled/>. Right after Connect it may
// still be false while the answer is on its way; Barrier waits for it.
func (c *Conn) SM() bool {
	c.tc.sm.mu.Lock()
	defer c.tc.sm.mu.Unlock()
	return c.tc.sm.phase == smOn
}

// Acked returns the server's last acknowledged count: how many stanzas,
// modulo 2^32, it confirmed having handled since stream management was
// enabled.
func (c *Conn) Acked() uint32 {
	c.tc.sm.mu.Lock()
	defer c.tc.sm.mu.Unlock()
	return c.tc.sm.acked
}

// SMStats returns the connection's stream management counters.
func (c *Conn) SMStats() SMStats { return c.tc.sm.stats() }

// Barrier returns nil once the server has acknowledged, under stream
// management, every stanza written on the connection before the call. It
// injects an ack request <r/> and waits for an <a h="N"/> whose count (with
// wrap-around at 2^32) reaches the number of stanzas sent.
//
// If the answer to <enable/> is still outstanding, Barrier first waits for
// it, at most ten seconds after Connect. It returns ErrNoSM when stream
// management is not in use, ctx's error when ctx ends, ErrClosed when the
// connection closes or the server ends its stream, and an error wrapping
// ErrProtocol when the server broke the protocol. Serve must be running:
// the acknowledgement arrives on the stream it reads. Only ctx bounds the
// wait for the acknowledgement, so callers pass one with a deadline.
func (c *Conn) Barrier(ctx context.Context) error {
	m := c.tc.sm
	var timer *time.Timer
	for range 8 { // each round waits for a phase change; there are three
		m.mu.Lock()
		phase, changed, wait := m.phase, m.changed, time.Until(m.deadline)
		m.mu.Unlock()
		if phase != smPending {
			break
		}
		if wait <= 0 {
			return fmt.Errorf("%w: no answer to <enable/>", ErrNoSM)
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		if err := c.waitSM(ctx, changed, timer.C); err != nil {
			return err
		}
	}

	m.mu.Lock()
	phase, target, err := m.phase, m.sent, m.err
	m.mu.Unlock()
	switch {
	case err != nil:
		return err
	case phase != smOn:
		return ErrNoSM
	}
	if err := c.tc.injectOwn([]byte("<r xmlns='" + nsSM + "'/>")); err != nil {
		return err
	}
	for {
		m.mu.Lock()
		acked, changed, err := m.acked, m.changed, m.err
		m.mu.Unlock()
		if err != nil {
			return err
		}
		if int32(acked-target) >= 0 {
			return nil
		}
		if err := c.waitSM(ctx, changed, nil); err != nil {
			return err
		}
	}
}

// waitSM waits for a change of the stream management state, the end of
// ctx or of the connection, or for timeout (when not nil) to fire.
func (c *Conn) waitSM(ctx context.Context, changed <-chan struct{}, timeout <-chan time.Time) error {
	select {
	case <-changed:
		return nil
	case <-timeout:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.tc.closed:
		return ErrClosed
	case <-c.tc.ended:
		return ErrClosed
	}
}
