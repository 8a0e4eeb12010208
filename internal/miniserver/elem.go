package miniserver

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
)

// Namespaces used by the server.
const (
	nsClient    = "jabber:client"
	nsStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsStreams   = "urn:ietf:params:xml:ns:xmpp-streams"
	nsSession   = "urn:ietf:params:xml:ns:xmpp-session"
	nsRoster    = "jabber:iq:roster"
	nsVersion   = "jabber:iq:version"
	nsPing      = "urn:xmpp:ping"
	nsDelay     = "urn:xmpp:delay"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsDiscoItem = "http://jabber.org/protocol/disco#items"
	nsMUC       = "http://jabber.org/protocol/muc"
	nsMUCUser   = "http://jabber.org/protocol/muc#user"
	nsMUCAdmin  = "http://jabber.org/protocol/muc#admin"
	nsMUCOwner  = "http://jabber.org/protocol/muc#owner"
	nsXData     = "jabber:x:data"
	nsXML       = "http://www.w3.org/XML/1998/namespace"
)

// Limits on the shape of one incoming stanza, against hostile input.
const (
	maxDepth    = 32
	maxElements = 10000
	maxAttrs    = 64
)

// errTooLarge and errTooDeep end a stream with <policy-violation/>.
var (
	errTooLarge = errors.New("miniserver: stanza exceeds the size limit")
	errTooDeep  = errors.New("miniserver: stanza nests too deep or has too many elements")
)

// el is a namespace-resolved XML element: stanzas are read into it, inspected
// and rewritten, then serialized again for each recipient.
type el struct {
	Name  xml.Name
	Attr  []xml.Attr // never holds namespace declarations
	Nodes []node
}

// node is a child of an element: either an element or text.
type node struct {
	E    *el
	Text string
}

// elem builds an element; attrs are name/value pairs.
func elem(space, local string, attrs ...string) *el {
	e := &el{Name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
		}
	}
	return e
}

// add appends child elements and returns e.
func (e *el) add(kids ...*el) *el {
	for _, k := range kids {
		if k != nil {
			e.Nodes = append(e.Nodes, node{E: k})
		}
	}
	return e
}

// text appends character data and returns e.
func (e *el) text(s string) *el {
	if s != "" {
		e.Nodes = append(e.Nodes, node{Text: s})
	}
	return e
}

// attr returns the value of the unqualified attribute local.
func (e *el) attr(local string) string {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// setAttr sets (or, with an empty value, removes) an unqualified attribute.
func (e *el) setAttr(local, value string) {
	for i, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			if value == "" {
				e.Attr = append(e.Attr[:i:i], e.Attr[i+1:]...)
			} else {
				e.Attr[i].Value = value
			}
			return
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
}

// child returns the first child element with the given name; an empty space
// matches any namespace.
func (e *el) child(space, local string) *el {
	for _, n := range e.Nodes {
		if n.E != nil && n.E.Name.Local == local && (space == "" || n.E.Name.Space == space) {
			return n.E
		}
	}
	return nil
}

// children returns the child elements with the given name.
func (e *el) children(space, local string) []*el {
	var out []*el
	for _, n := range e.Nodes {
		if n.E != nil && n.E.Name.Local == local && (space == "" || n.E.Name.Space == space) {
			out = append(out, n.E)
		}
	}
	return out
}

// firstChild returns the first child element, if any.
func (e *el) firstChild() *el {
	for _, n := range e.Nodes {
		if n.E != nil {
			return n.E
		}
	}
	return nil
}

// removeChildren drops every child element with the given name.
func (e *el) removeChildren(space, local string) {
	out := e.Nodes[:0]
	for _, n := range e.Nodes {
		if n.E != nil && n.E.Name.Local == local && (space == "" || n.E.Name.Space == space) {
			continue
		}
		out = append(out, n)
	}
	e.Nodes = out
}

// innerText is the concatenated text directly inside e.
func (e *el) innerText() string {
	var b strings.Builder
	for _, n := range e.Nodes {
		if n.E == nil {
			b.WriteString(n.Text)
		}
	}
	return b.String()
}

// childText is the text of the first matching child, or "".
func (e *el) childText(space, local string) string {
	if c := e.child(space, local); c != nil {
		return c.innerText()
	}
	return ""
}

// clone copies e deeply.
func (e *el) clone() *el {
	c := &el{Name: e.Name, Attr: append([]xml.Attr(nil), e.Attr...)}
	if len(e.Nodes) > 0 {
		c.Nodes = make([]node, len(e.Nodes))
		for i, n := range e.Nodes {
			if n.E != nil {
				c.Nodes[i] = node{E: n.E.clone()}
			} else {
				c.Nodes[i] = n
			}
		}
	}
	return c
}

// bytes serializes e as a top-level child of a jabber:client stream.
func (e *el) bytes() []byte {
	var b bytes.Buffer
	e.write(&b, nsClient)
	return b.Bytes()
}

// String serializes e for logs and tests.
func (e *el) String() string { return string(e.bytes()) }

func (e *el) write(b *bytes.Buffer, parentNS string) {
	b.WriteByte('<')
	b.WriteString(e.Name.Local)
	if e.Name.Space != parentNS {
		b.WriteString(" xmlns='")
		escape(b, e.Name.Space)
		b.WriteByte('\'')
	}
	prefixes := 0
	for _, a := range e.Attr {
		switch {
		case a.Name.Space == "":
			b.WriteByte(' ')
			b.WriteString(a.Name.Local)
		case a.Name.Space == nsXML:
			b.WriteString(" xml:")
			b.WriteString(a.Name.Local)
		default:
			p := "ns" + strconv.Itoa(prefixes)
			prefixes++
			b.WriteString(" xmlns:" + p + "='")
			escape(b, a.Name.Space)
			b.WriteString("' " + p + ":" + a.Name.Local)
		}
		b.WriteString("='")
		escape(b, a.Value)
		b.WriteByte('\'')
	}
	if len(e.Nodes) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, n := range e.Nodes {
		if n.E != nil {
			n.E.write(b, e.Name.Space)
		} else {
			escape(b, n.Text)
		}
	}
	b.WriteString("</")
	b.WriteString(e.Name.Local)
	b.WriteByte('>')
}

func escape(b *bytes.Buffer, s string) {
	// EscapeText never fails on a bytes.Buffer; it also replaces characters
	// that are not allowed in XML.
	_ = xml.EscapeText(b, []byte(s))
}

// validName reports whether s can be written back as an element or attribute
// name without breaking the output.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ':':
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r > 0x7f && r != 0xFFFD:
		default:
			return false
		}
	}
	return true
}

// readElement reads the next top-level element from r, skipping whitespace
// between elements. max bounds the sum of names, attribute values and text.
// It returns io.EOF when the stream ends cleanly.
func readElement(r xml.TokenReader, max int) (*el, error) {
	var (
		stack []*el
		size  int
		count int
	)
	for {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF && len(stack) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			count++
			if len(stack) >= maxDepth || count > maxElements || len(t.Attr) > maxAttrs {
				return nil, errTooDeep
			}
			if !validName(t.Name.Local) {
				return nil, errors.New("miniserver: invalid element name")
			}
			e := &el{Name: t.Name}
			size += len(t.Name.Local) + len(t.Name.Space)
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				if !validName(a.Name.Local) {
					return nil, errors.New("miniserver: invalid attribute name")
				}
				size += len(a.Name.Local) + len(a.Name.Space) + len(a.Value)
				for _, b := range e.Attr {
					if b.Name == a.Name {
						return nil, errors.New("miniserver: duplicate attribute")
					}
				}
				e.Attr = append(e.Attr, a)
			}
			if size > max {
				return nil, errTooLarge
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Nodes = append(p.Nodes, node{E: e})
			}
			stack = append(stack, e)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, errors.New("miniserver: unexpected end element")
			}
			e := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return e, nil
			}
		case xml.CharData:
			if len(stack) == 0 {
				continue // whitespace between stanzas (keepalives)
			}
			size += len(t)
			if size > max {
				return nil, errTooLarge
			}
			p := stack[len(stack)-1]
			if n := len(p.Nodes); n > 0 && p.Nodes[n-1].E == nil {
				p.Nodes[n-1].Text += string(t)
			} else {
				p.Nodes = append(p.Nodes, node{Text: string(t)})
			}
		default:
			// Comments, processing instructions and directives are refused
			// by the stream reader; anything else is ignored.
		}
	}
}
