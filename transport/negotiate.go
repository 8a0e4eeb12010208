package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

// mechanisms returns the SASL mechanisms to offer, strongest first: mellium
// picks the first one of this list that the server also offers. PLAIN sends
// the password itself, so it is only used when the bytes are encrypted, or
// when the user explicitly chose tls = "none" (which Connect only accepts
// towards a loopback address). The -PLUS variants are never used.
func mechanisms(allowPlain bool, obs *observed) []sasl.Mechanism {
	ms := []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1}
	if allowPlain {
		ms = append(ms, sasl.Plain)
	}
	for i, m := range ms {
		ms[i] = recordStart(m, obs)
	}
	return ms
}

// recordStart wraps m so that obs learns which mechanism was chosen.
func recordStart(m sasl.Mechanism, obs *observed) sasl.Mechanism {
	start := m.Start
	name := m.Name
	m.Start = func(n *sasl.Negotiator) (bool, []byte, any, error) {
		obs.setSelected(name)
		return start(n)
	}
	return m
}

// bindFeature negotiates resource binding (RFC 6120 §7) asking for
// resource. mellium's own BindResource sends an empty <resource/>, so the
// requested resource would never be used.
//
// With prev set, and stream management offered, it first tries to resume
// that session (XEP-0198 §5), which replaces binding; when the server
// cannot resume, it binds as usual on the same stream.
func bindFeature(resource string, prev *Resume, tc *tapConn, log *slog.Logger) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
			return true, errors.New("transport: bind is a client-side feature")
		},
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			var v struct{}
			return true, nil, d.DecodeElement(&v, start)
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			if prev != nil && tc.sm.isOffered() {
				ok, err := resume(s, tc, prev)
				if err != nil {
					return 0, nil, err
				}
				if ok {
					s.UpdateAddr(prev.JID)
					log.Info("session resumed", "jid", prev.JID.String())
					return xmpp.Ready, nil, nil
				}
			}
			bound, err := bind(s, resource)
			if err != nil {
				return 0, nil, err
			}
			if want := s.LocalAddr().Bare(); !bound.Bare().Equal(want) {
				return 0, nil, fmt.Errorf("%w: server bound %s, not an address of %s", ErrProtocol, bound, want)
			}
			if resource != "" && bound.Resourcepart() != resource {
				log.Warn("server assigned a different resource", "requested", resource, "bound", bound.Resourcepart())
			}
			s.UpdateAddr(bound)
			return xmpp.Ready, nil, nil
		},
	}
}

// resume sends <resume previd h/> and reads the answer: true for
// <resumed/>, false for <failed/> (the tap updates the stream management
// state from either, sm.go).
func resume(s *xmpp.Session, tc *tapConn, prev *Resume) (bool, error) {
	tc.sm.beginResume(prev)
	w := s.TokenWriter()
	start := xml.StartElement{Name: xml.Name{Space: nsSM, Local: "resume"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "previd"}, Value: prev.ID},
		{Name: xml.Name{Local: "h"}, Value: strconv.FormatUint(uint64(prev.Handled), 10)},
	}}
	err := w.EncodeToken(start)
	if err == nil {
		err = w.EncodeToken(start.End())
	}
	if cerr := w.Close(); err == nil { // Close flushes
		err = cerr
	}
	if err != nil {
		return false, err
	}
	r := s.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	for range 64 { // white space may come first
		tok, err := d.Token()
		if err != nil {
			return false, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case start.Name.Space == nsStream && start.Name.Local == "error":
			var se stream.Error
			if err := d.DecodeElement(&se, &start); err != nil {
				return false, err
			}
			return false, se
		case start.Name.Space == nsSM && start.Name.Local == "resumed":
			if err := d.Skip(); err != nil {
				return false, err
			}
			if !tc.sm.isResumed() {
				return false, fmt.Errorf("%w: the server's <resumed/> does not match the session", ErrProtocol)
			}
			return true, nil
		case start.Name.Space == nsSM && start.Name.Local == "failed":
			return false, d.Skip()
		default:
			return false, fmt.Errorf("%w: expected the answer to <resume/>, got <%s>", ErrProtocol, start.Name.Local)
		}
	}
	return false, fmt.Errorf("%w: no answer to <resume/>", ErrProtocol)
}

// bind sends the bind request and reads its answer.
func bind(s *xmpp.Session, resource string) (jid.JID, error) {
	id := randomID()
	w := s.TokenWriter()
	iq := xml.StartElement{Name: xml.Name{Local: "iq"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "type"}, Value: "set"},
		{Name: xml.Name{Local: "id"}, Value: id},
	}}
	bindStart := xml.StartElement{Name: xml.Name{Space: nsBind, Local: "bind"}}
	toks := []xml.Token{iq, bindStart}
	if resource != "" {
		res := xml.StartElement{Name: xml.Name{Local: "resource"}}
		toks = append(toks, res, xml.CharData(resource), res.End())
	}
	toks = append(toks, bindStart.End(), iq.End())
	for _, t := range toks {
		if err := w.EncodeToken(t); err != nil {
			w.Close()
			return jid.JID{}, err
		}
	}
	if err := w.Close(); err != nil { // Close flushes
		return jid.JID{}, err
	}

	r := s.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	// Whitespace keepalives may precede the answer; anything else than the
	// answer is a protocol error, so the loop is short.
	for range 64 {
		tok, err := d.Token()
		if err != nil {
			return jid.JID{}, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Space == nsStream && start.Name.Local == "error" {
			var se stream.Error
			if err := d.DecodeElement(&se, &start); err != nil {
				return jid.JID{}, err
			}
			return jid.JID{}, se
		}
		if start.Name.Local != "iq" {
			return jid.JID{}, fmt.Errorf("%w: expected the bind result, got <%s>", ErrProtocol, start.Name.Local)
		}
		var resp struct {
			Type string        `xml:"type,attr"`
			ID   string        `xml:"id,attr"`
			JID  string        `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
			Err  *stanza.Error `xml:"error"`
			// mellium's server side puts the error inside <bind/>.
			BindErr *stanza.Error `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>error"`
		}
		if err := d.DecodeElement(&resp, &start); err != nil {
			return jid.JID{}, err
		}
		if resp.Err == nil {
			resp.Err = resp.BindErr
		}
		switch {
		case resp.ID != id:
			return jid.JID{}, fmt.Errorf("%w: bind result has id %q, want %q", ErrProtocol, resp.ID, id)
		case resp.Type == "error" || resp.Err != nil:
			// An error counts even in a "result": mellium's server side
			// sends it that way.
			return jid.JID{}, fmt.Errorf("%w: resource binding refused: %s", ErrProtocol, condition(resp.Err))
		case resp.Type != "result":
			return jid.JID{}, fmt.Errorf("%w: bind answered with type %q", ErrProtocol, resp.Type)
		}
		j, err := jid.Parse(resp.JID)
		if err != nil {
			return jid.JID{}, fmt.Errorf("%w: server bound an invalid JID %q: %w", ErrProtocol, resp.JID, err)
		}
		return j, nil
	}
	return jid.JID{}, fmt.Errorf("%w: no bind result", ErrProtocol)
}

func condition(e *stanza.Error) string {
	if e == nil || e.Condition == "" {
		return "undefined-condition"
	}
	return string(e.Condition)
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
