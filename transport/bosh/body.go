package bosh

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
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
)

// maxRID is the largest request id XEP-0124 allows (2^53-1).
const maxRID = 1<<53 - 1

// errBody reports a <body/> that could not be understood.
var errBody = errors.New("bosh: malformed body")

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

// stripStartTLS removes any <starttls/> child from a raw <stream:features/>
// element. Over BOSH the transport is the HTTP connection: Prosody 0.12 still
// offers (even requires) STARTTLS there, which must not be attempted.
func stripStartTLS(raw []byte) []byte {
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	var cuts [][2]int64
	var start int64
	for {
		before := d.InputOffset()
		tok, err := d.RawToken()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "starttls" {
				start = before
			}
		case xml.EndElement:
			if depth == 2 && t.Name.Local == "starttls" {
				cuts = append(cuts, [2]int64{start, d.InputOffset()})
			}
			depth--
		}
	}
	if len(cuts) == 0 {
		return raw
	}
	out := make([]byte, 0, len(raw))
	var from int64
	for _, c := range cuts {
		out = append(out, raw[from:c[0]]...)
		from = c[1]
	}
	return append(out, raw[from:]...)
}

// attrEscape escapes s for use inside a single-quoted attribute value.
func attrEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&apos;")
}

// streamConditions maps XEP-0124 terminal binding conditions to the RFC 6120
// stream error conditions mellium reports.
var streamConditions = map[string]string{
	"bad-request":              "bad-format",
	"host-gone":                "host-gone",
	"host-unknown":             "host-unknown",
	"improper-addressing":      "improper-addressing",
	"internal-server-error":    "internal-server-error",
	"item-not-found":           "connection-timeout",
	"other-request":            "conflict",
	"policy-violation":         "policy-violation",
	"remote-connection-failed": "remote-connection-failed",
	"remote-stream-error":      "undefined-condition",
	"see-other-uri":            "see-other-host",
	"system-shutdown":          "system-shutdown",
	"undefined-condition":      "undefined-condition",
}

// StreamCondition returns the stream error condition that a BOSH terminal
// binding condition is reported as (undefined-condition for unknown ones).
func StreamCondition(boshCondition string) string {
	if c, ok := streamConditions[boshCondition]; ok {
		return c
	}
	return "undefined-condition"
}

// terminateError builds the synthetic stream error for a terminate with the
// given condition.
func terminateError(cond string) []byte {
	return []byte("<stream:error><" + StreamCondition(cond) + " xmlns='" + nsStreamEr + "'/>" +
		"<text xmlns='" + nsStreamEr + "'>" + textPrefix + attrEscape(cond) + "</text></stream:error>")
}

// textPrefix starts the <text/> of every synthetic stream error, followed by
// the BOSH condition; Condition looks for it.
const textPrefix = "bosh terminate: "

// statusCondition is the legacy XEP-0124 mapping of HTTP errors without a
// usable body.
func statusCondition(code int) string {
	switch code {
	case 400:
		return "bad-request"
	case 403:
		return "policy-violation"
	case 404:
		return "item-not-found"
	case 413:
		return "policy-violation"
	}
	return "undefined-condition"
}
