package transport

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
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
//     of the connection (a tap callback must not inject). Its <a h="N"/>
//     moves the acknowledged count on; an h above what was sent is a
//     protocol error that ends the connection with the stream error the
//     XEP prescribes.
//  5. Conn.Barrier injects <r/> and waits for an <a/> covering everything
//     written before the call.
//
// Sessions are not resumed: <enable/> does not ask for resumption. After a
// reconnect the caller's own queue resends what was not acknowledged (the
// bot's outbox does), so a stanza may arrive twice but is never lost
// silently. mellium's negotiator offers no hook to replace bind with
// <resume/>, which is why resumption is left out.

// nsSM is the XEP-0198 namespace (version 3).
const nsSM = "urn:xmpp:sm:3"

// smEnableWait bounds how long a Barrier waits for the server's answer to
// <enable/> before it gives up on stream management for that call.
const smEnableWait = 10 * time.Second

// ErrNoSM is returned by Conn.Barrier when stream management is not in use on
// the connection: the server did not offer it, refused to enable it, or has
// not answered <enable/> in time. The caller then needs another barrier
// (such as an XMPP ping).
var ErrNoSM = errors.New("transport: stream management not enabled")

// smPhase is where stream management stands on one connection.
type smPhase int

const (
	smOff     smPhase = iota // not offered, not requested, or disabled
	smPending                // <enable/> sent, no answer yet
	smOn                     // <enabled/> received
	smFailed                 // <failed/> received
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
	err      error         // a protocol violation by the server
	changed  chan struct{} // closed and replaced on every change
	kick     chan struct{} // buffered: an <r/> waits for an answer
	fault    chan string   // buffered: the stream error to end with
}

func newSMState(log *slog.Logger) *smState {
	return &smState{
		log:     log,
		changed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		fault:   make(chan string, 1),
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
		}
		m.mu.Unlock()
	case name.Space == nsSM:
		m.seeSM(name.Local, raw)
	}
}

// seeSM follows one incoming element of the urn:xmpp:sm:3 namespace.
func (m *smState) seeSM(local string, raw []byte) {
	var v struct {
		ID    string `xml:"id,attr"`
		H     string `xml:"h,attr"`
		Inner []struct {
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
		m.notifyLocked()
	case "failed":
		if m.phase != smPending {
			return
		}
		cond := "undefined-condition"
		if len(v.Inner) > 0 {
			cond = v.Inner[0].XMLName.Local
		}
		m.log.Warn("server refused stream management", "condition", cond)
		m.phase = smFailed
		m.notifyLocked()
	case "r":
		if m.phase != smOn {
			return
		}
		select {
		case m.kick <- struct{}{}:
		default: // an answer is already due; it will carry the latest count
		}
	case "a":
		if m.phase != smOn || m.err != nil {
			return
		}
		h, err := strconv.ParseUint(v.H, 10, 32)
		if err != nil {
			m.violateLocked(fmt.Sprintf("<a/> with h=%q", v.H), "<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
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
}

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
	if !m.offered || m.phase != smOff {
		m.mu.Unlock()
		return
	}
	m.phase = smPending
	m.deadline = time.Now().Add(smEnableWait)
	m.mu.Unlock()
	go m.run(tc)
	if err := tc.inject([]byte("<enable xmlns='" + nsSM + "'/>")); err != nil {
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
	for {
		select {
		case <-m.kick:
			m.mu.Lock()
			h := m.handled
			m.requests++
			m.mu.Unlock()
			if err := tc.inject(fmt.Appendf(nil, "<a xmlns='%s' h='%d'/>", nsSM, h)); err != nil {
				return
			}
		case se := <-m.fault:
			_ = tc.SetWriteDeadline(time.Now().Add(closeGrace))
			_ = tc.inject([]byte(se))
			tc.Close()
			return
		case <-tc.closed:
			return
		case <-tc.ended:
			return
		}
	}
}

// stats returns a snapshot of the counters.
func (m *smState) stats() SMStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return SMStats{
		Enabled:  m.phase == smOn,
		ID:       m.id,
		Sent:     m.sent,
		Acked:    m.acked,
		Unacked:  m.sent - m.acked,
		Handled:  m.handled,
		Requests: m.requests,
	}
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
	if err := c.tc.inject([]byte("<r xmlns='" + nsSM + "'/>")); err != nil {
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
