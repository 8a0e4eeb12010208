package boshwire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"crier/internal/xmlsplit"
)

// Namespaces of XEP-0124 and XEP-0206.
const (
	// NSHTTPBind is the namespace of the <body/> wrapper.
	NSHTTPBind = "http://jabber.org/protocol/httpbind"
	// NSXBOSH is the namespace of the xmpp: attributes of XEP-0206.
	NSXBOSH = "urn:xmpp:xbosh"
	// NSStream is the namespace of the stream: prefix.
	NSStream = "http://etherx.jabber.org/streams"
	// NSStreamErr is the namespace of stream error conditions.
	NSStreamErr = "urn:ietf:params:xml:ns:xmpp-streams"
)

// MaxRID is the largest request id XEP-0124 allows (2^53-1).
const MaxRID = 1<<53 - 1

// ErrBody reports a <body/> that could not be understood. Every error that
// ParseBody, ParseRID and Body.RID return wraps it.
var ErrBody = errors.New("boshwire: malformed body")

// Child is one top-level element inside a <body/>.
type Child struct {
	// Name is the raw name of the element: its prefix, if any, is in Space.
	Name xml.Name
	// Raw is the element, byte for byte as it was received.
	Raw []byte
}

// Body is a parsed <body/> wrapper. Attribute keys are the local name for
// unprefixed attributes, "xmpp:"+local for attributes in the urn:xmpp:xbosh
// namespace (whatever their prefix) and "xml:"+local for xml: attributes.
type Body struct {
	// Attr holds the attributes of the wrapper, keyed as described above.
	Attr map[string]string
	// Children are the top-level elements inside the wrapper, in order.
	Children []Child
}

// Get returns the attribute k, or "" when it is missing.
func (b *Body) Get(k string) string { return b.Attr[k] }

// RID returns the request id, or an error wrapping ErrBody if it is missing
// or out of range.
func (b *Body) RID() (uint64, error) {
	return ParseRID(b.Attr["rid"])
}

// ParseRID parses a request id: a decimal number from 1 to MaxRID. Any other
// value gives an error wrapping ErrBody.
func ParseRID(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: no rid", ErrBody)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 || v > MaxRID {
		return 0, fmt.Errorf("%w: bad rid %q", ErrBody, s)
	}
	return v, nil
}

// IntAttr returns the non-negative integer attribute k, or def when it is
// missing or unusable.
func (b *Body) IntAttr(k string, def int) int {
	s, ok := b.Attr[k]
	if !ok {
		return def
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return def
	}
	return v
}

// UintAttr returns the attribute k as a non-negative decimal integer and
// whether it is present. A present value that is not such a number (a sign,
// spaces, letters, or a value above 1<<31-1) gives an error wrapping ErrBody.
func (b *Body) UintAttr(k string) (int, bool, error) {
	s, ok := b.Attr[k]
	if !ok {
		return 0, false, nil
	}
	if s == "" || len(s) > 10 {
		return 0, true, fmt.Errorf("%w: bad %s %q", ErrBody, k, s)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, true, fmt.Errorf("%w: bad %s %q", ErrBody, k, s)
		}
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, true, fmt.Errorf("%w: bad %s %q", ErrBody, k, s)
	}
	return int(v), true, nil
}

// ParseBody parses a complete <body xmlns='http://jabber.org/protocol/httpbind'/>
// document and cuts its children out as raw bytes. It rejects comments,
// processing instructions other than an XML declaration, DTDs, text outside
// of the children and mismatched tags; its errors wrap ErrBody.
func ParseBody(data []byte) (*Body, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var (
		b          *Body
		stack      []xml.Name
		childStart int64
		done       bool
	)
	for {
		before := d.InputOffset()
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBody, err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if b != nil || t.Target != "xml" {
				return nil, fmt.Errorf("%w: processing instruction", ErrBody)
			}
		case xml.Comment, xml.Directive:
			return nil, fmt.Errorf("%w: comment or directive", ErrBody)
		case xml.CharData:
			if len(stack) <= 1 && len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("%w: text outside of an element", ErrBody)
			}
		case xml.StartElement:
			switch {
			case done:
				return nil, fmt.Errorf("%w: content after </body>", ErrBody)
			case len(stack) == 0:
				nb, err := bodyStart(t)
				if err != nil {
					return nil, err
				}
				b = nb
			case len(stack) == 1:
				childStart = before
			}
			stack = append(stack, t.Name)
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != t.Name {
				return nil, fmt.Errorf("%w: mismatched </%s>", ErrBody, t.Name.Local)
			}
			stack = stack[:len(stack)-1]
			switch len(stack) {
			case 0:
				done = true
			case 1:
				end := d.InputOffset()
				b.Children = append(b.Children, Child{
					Name: stack0Name(data[childStart:end]),
					Raw:  bytes.Clone(data[childStart:end]),
				})
			}
		}
	}
	if b == nil || !done {
		return nil, fmt.Errorf("%w: incomplete", ErrBody)
	}
	return b, nil
}

// stack0Name reads the raw name of the element that raw starts with.
func stack0Name(raw []byte) xml.Name {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return xml.Name{}
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name
		}
	}
}

// bodyStart checks the root element and collects its attributes.
func bodyStart(t xml.StartElement) (*Body, error) {
	if t.Name.Local != "body" {
		return nil, fmt.Errorf("%w: root is <%s>", ErrBody, t.Name.Local)
	}
	prefixes := map[string]string{}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			prefixes[""] = a.Value
		case a.Name.Space == "xmlns":
			prefixes[a.Name.Local] = a.Value
		}
	}
	if prefixes[t.Name.Space] != NSHTTPBind {
		return nil, fmt.Errorf("%w: <body/> not in %s", ErrBody, NSHTTPBind)
	}
	b := &Body{Attr: map[string]string{}}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
		case a.Name.Space == "":
			b.Attr[a.Name.Local] = a.Value
		case a.Name.Space == "xml":
			b.Attr["xml:"+a.Name.Local] = a.Value
		case prefixes[a.Name.Space] == NSXBOSH:
			b.Attr["xmpp:"+a.Name.Local] = a.Value
		}
	}
	return b, nil
}

// IsStanza reports whether a raw top-level name is an unprefixed message,
// presence or iq.
func IsStanza(n xml.Name) bool {
	if n.Space != "" {
		return false
	}
	switch n.Local {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// WithClientNS returns the raw element of ev with xmlns='jabber:client' added
// to its start tag when the element is unprefixed and declares no default
// namespace: inside a <body/> an unqualified stanza would otherwise land in
// the httpbind namespace (XEP-0206 wants stanzas qualified explicitly).
// Otherwise it returns ev.Raw unchanged.
func WithClientNS(ev xmlsplit.Event) []byte {
	if ev.Name.Space != "" {
		return ev.Raw
	}
	for _, a := range ev.Attr {
		if a.Name.Space == "" && a.Name.Local == "xmlns" {
			return ev.Raw
		}
	}
	i := bytes.IndexByte(ev.Raw, '<')
	if i < 0 {
		return ev.Raw
	}
	at := i + 1 + len(ev.Name.Local)
	if at > len(ev.Raw) {
		return ev.Raw
	}
	out := make([]byte, 0, len(ev.Raw)+24)
	out = append(out, ev.Raw[:at]...)
	out = append(out, " xmlns='jabber:client'"...)
	return append(out, ev.Raw[at:]...)
}

// AttrEscape escapes s for use inside a single-quoted attribute value.
func AttrEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&apos;")
}
