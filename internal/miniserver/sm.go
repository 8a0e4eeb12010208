package miniserver

import (
	"context"
	"encoding/xml"
	"strconv"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
)

// Stream management (XEP-0198, urn:xmpp:sm:3), without resumption.
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
}

// smFeature advertises urn:xmpp:sm:3 in the stream features after SASL. It
// is informational for mellium (no Negotiate): the client enables stream
// management after bind, when mellium's negotiation is over.
func smFeature() xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsSM, Local: "sm"},
		Necessary:  xmpp.Secure | xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(_ context.Context, w xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			if err := w.EncodeToken(start); err != nil {
				return false, err
			}
			return false, w.EncodeToken(start.End())
		},
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return false, nil, d.Skip()
		},
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
		// resume='true' is not honoured: <enabled/> without resume tells
		// the client that this session cannot be resumed.
		*sm = smSession{enabled: true, id: randomID()}
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
		sm.acked = uint32(h)
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
	if c.sm.enabled {
		c.sm.handled++
	}
}

// smSentLocked counts one stanza queued for c. The caller holds s.mu.
func (c *client) smSentLocked() {
	if c.sm.enabled {
		c.sm.sent++
	}
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
		Enabled: c.sm.enabled,
		Handled: c.sm.handled,
		Sent:    c.sm.sent,
		Acked:   c.sm.acked,
		Acks:    c.sm.acks,
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
