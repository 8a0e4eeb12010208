package boshcm

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
	nsHTTPBind = "http://jabber.org/protocol/httpbind"
	nsXBOSH    = "urn:xmpp:xbosh"
	nsStream   = "http://etherx.jabber.org/streams"
	nsStreamEr = "urn:ietf:params:xml:ns:xmpp-streams"
)

// maxRID is the largest request id XEP-0124 allows (2^53-1).
const maxRID = 1<<53 - 1

// errBody reports a <body/> that could not be understood.
var errBody = errors.New("boshcm: malformed body")

// child is one top-level element inside a <body/>.
type child struct {
	name xml.Name // raw name: prefix in Space
	raw  []byte
}

// body is a parsed <body/> wrapper. Attribute keys are the local name for
// unprefixed attributes, "xmpp:"+local for attributes in the urn:xmpp:xbosh
// namespace (whatever their prefix) and "xml:"+local for xml: attributes.
type body struct {
	attr     map[string]string
	children []child
}

func (b *body) get(k string) string { return b.attr[k] }

// rid returns the request id, or an error if it is missing or out of range.
func (b *body) rid() (uint64, error) {
	return parseRID(b.attr["rid"])
}

func parseRID(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: no rid", errBody)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 || v > maxRID {
		return 0, fmt.Errorf("%w: bad rid %q", errBody, s)
	}
	return v, nil
}

// intAttr returns a non-negative integer attribute, or def when it is
// missing or unusable.
func (b *body) intAttr(k string, def int) int {
	s, ok := b.attr[k]
	if !ok {
		return def
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return def
	}
	return v
}

// parseBody parses a complete <body xmlns='http://jabber.org/protocol/httpbind'/>
// document and cuts its children out as raw bytes. It rejects comments,
// processing instructions other than an XML declaration, DTDs, text outside
// of the children and mismatched tags.
func parseBody(data []byte) (*body, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var (
		b          *body
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
			return nil, fmt.Errorf("%w: %v", errBody, err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if b != nil || t.Target != "xml" {
				return nil, fmt.Errorf("%w: processing instruction", errBody)
			}
		case xml.Comment, xml.Directive:
			return nil, fmt.Errorf("%w: comment or directive", errBody)
		case xml.CharData:
			if len(stack) <= 1 && len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("%w: text outside of an element", errBody)
			}
		case xml.StartElement:
			switch {
			case done:
				return nil, fmt.Errorf("%w: content after </body>", errBody)
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
				return nil, fmt.Errorf("%w: mismatched </%s>", errBody, t.Name.Local)
			}
			stack = stack[:len(stack)-1]
			switch len(stack) {
			case 0:
				done = true
			case 1:
				end := d.InputOffset()
				b.children = append(b.children, child{
					name: stack0Name(data[childStart:end]),
					raw:  bytes.Clone(data[childStart:end]),
				})
			}
		}
	}
	if b == nil || !done {
		return nil, fmt.Errorf("%w: incomplete", errBody)
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
func bodyStart(t xml.StartElement) (*body, error) {
	if t.Name.Local != "body" {
		return nil, fmt.Errorf("%w: root is <%s>", errBody, t.Name.Local)
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
	if prefixes[t.Name.Space] != nsHTTPBind {
		return nil, fmt.Errorf("%w: <body/> not in %s", errBody, nsHTTPBind)
	}
	b := &body{attr: map[string]string{}}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
		case a.Name.Space == "":
			b.attr[a.Name.Local] = a.Value
		case a.Name.Space == "xml":
			b.attr["xml:"+a.Name.Local] = a.Value
		case prefixes[a.Name.Space] == nsXBOSH:
			b.attr["xmpp:"+a.Name.Local] = a.Value
		}
	}
	return b, nil
}

// isStanza reports whether a raw top-level name is a message, presence or iq.
func isStanza(n xml.Name) bool {
	if n.Space != "" {
		return false
	}
	switch n.Local {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// withClientNS returns raw with xmlns='jabber:client' added to its start tag
// when the element is unprefixed and declares no default namespace: inside a
// <body/> an unqualified stanza would otherwise land in the httpbind
// namespace (XEP-0206 wants stanzas qualified explicitly).
func withClientNS(ev xmlsplit.Event) []byte {
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
