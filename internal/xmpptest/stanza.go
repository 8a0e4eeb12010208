package xmpptest

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// Namespaces the helpers look for.
const (
	nsMUC     = "http://jabber.org/protocol/muc"
	nsMUCUser = "http://jabber.org/protocol/muc#user"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsPing    = "urn:xmpp:ping"
	nsXML     = "http://www.w3.org/XML/1998/namespace"
)

// Node is one parsed XML element with its attributes, text and children.
type Node struct {
	// Name is the element's namespace and local name.
	Name xml.Name
	// Attrs are the attributes other than namespace declarations.
	Attrs []xml.Attr
	// Text is the concatenated character data directly inside the element.
	Text string
	// Children are the child elements in document order.
	Children []*Node
}

// Attr returns the value of the attribute with the given local name, or "".
func (n *Node) Attr(local string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// Child returns the first direct child with the given namespace (any
// namespace when space is "") and local name, or nil.
func (n *Node) Child(space, local string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name.Local == local && (space == "" || c.Name.Space == space) {
			return c
		}
	}
	return nil
}

// Find returns the first element at any depth below n (n excluded) with the
// given namespace (any namespace when space is "") and local name, or nil.
func (n *Node) Find(space, local string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name.Local == local && (space == "" || c.Name.Space == space) {
			return c
		}
		if f := c.Find(space, local); f != nil {
			return f
		}
	}
	return nil
}

// FindAll returns every element at any depth below n with the given namespace
// (any namespace when space is "") and local name, in document order.
func (n *Node) FindAll(space, local string) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.Children {
		if c.Name.Local == local && (space == "" || c.Name.Space == space) {
			out = append(out, c)
		}
		out = append(out, c.FindAll(space, local)...)
	}
	return out
}

// Stanza is one top-level element received from the server, parsed.
type Stanza struct {
	// Name is the element's local name: "message", "presence", "iq" or
	// another top-level element such as "r" or "a" (XEP-0198).
	Name string
	// Attrs maps each attribute's local name to its value.
	Attrs map[string]string
	// From, To, Type and ID are the usual stanza attributes.
	From, To, Type, ID string
	// Body is the text of the first <body/> child of a message.
	Body string
	// Raw is the element serialized again, for logs and substring checks.
	Raw string
	// Root is the parsed element.
	Root *Node
	// Seq numbers the stanzas of one client in the order they arrived,
	// starting at 1.
	Seq uint64
}

// String returns the raw XML of the stanza.
func (s Stanza) String() string { return s.Raw }

// Find returns the first element with the given namespace and local name
// below the stanza's root, or nil.
func (s Stanza) Find(space, local string) *Node { return s.Root.Find(space, local) }

// StatusCodes returns the MUC status codes (XEP-0045) the stanza carries.
func (s Stanza) StatusCodes() []string {
	x := s.Root.Child(nsMUCUser, "x")
	var codes []string
	for _, st := range x.FindAll(nsMUCUser, "status") {
		codes = append(codes, st.Attr("code"))
	}
	return codes
}

// HasStatus tells whether the stanza carries the MUC status code.
func (s Stanza) HasStatus(code string) bool {
	for _, c := range s.StatusCodes() {
		if c == code {
			return true
		}
	}
	return false
}

// ErrorCondition returns the defined condition of a stanza of type error
// (such as "item-not-found"), or "" if it has none.
func (s Stanza) ErrorCondition() string {
	e := s.Root.Child("", "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Children {
		if c.Name.Space == nsStanzas && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return ""
}

// readElement reads the rest of the element that start opened from r and
// returns it as a tree. The depth of nested elements is bounded by the input.
func readElement(r xml.TokenReader, start xml.StartElement) (*Node, error) {
	root := newNode(start)
	stack := []*Node{root}
	var text []strings.Builder = make([]strings.Builder, 1, 8)
	for len(stack) > 0 {
		tok, err := r.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			n := newNode(t)
			top.Children = append(top.Children, n)
			stack = append(stack, n)
			text = append(text, strings.Builder{})
		case xml.CharData:
			text[len(text)-1].Write(t)
		case xml.EndElement:
			top.Text = text[len(text)-1].String()
			stack = stack[:len(stack)-1]
			text = text[:len(text)-1]
		}
	}
	return root, nil
}

func newNode(start xml.StartElement) *Node {
	n := &Node{Name: start.Name}
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		n.Attrs = append(n.Attrs, a)
	}
	return n
}

// newStanza builds the Stanza view of a parsed top-level element.
func newStanza(root *Node, seq uint64) Stanza {
	s := Stanza{Name: root.Name.Local, Attrs: map[string]string{}, Root: root, Seq: seq}
	for _, a := range root.Attrs {
		s.Attrs[a.Name.Local] = a.Value
	}
	s.From, s.To, s.Type, s.ID = s.Attrs["from"], s.Attrs["to"], s.Attrs["type"], s.Attrs["id"]
	if b := root.Child("", "body"); b != nil {
		s.Body = b.Text
	}
	var sb strings.Builder
	serialize(&sb, root, "jabber:client")
	s.Raw = sb.String()
	return s
}

// serialize writes n as XML, declaring a default namespace where it differs
// from the parent's.
func serialize(sb *strings.Builder, n *Node, parentNS string) {
	sb.WriteByte('<')
	sb.WriteString(n.Name.Local)
	if n.Name.Space != parentNS && n.Name.Space != "" {
		sb.WriteString(" xmlns='")
		escape(sb, n.Name.Space)
		sb.WriteByte('\'')
	}
	for _, a := range n.Attrs {
		sb.WriteByte(' ')
		if a.Name.Space == nsXML {
			sb.WriteString("xml:")
		}
		sb.WriteString(a.Name.Local)
		sb.WriteString("='")
		escape(sb, a.Value)
		sb.WriteByte('\'')
	}
	if n.Text == "" && len(n.Children) == 0 {
		sb.WriteString("/>")
		return
	}
	sb.WriteByte('>')
	escape(sb, n.Text)
	ns := n.Name.Space
	if ns == "" {
		ns = parentNS
	}
	for _, c := range n.Children {
		serialize(sb, c, ns)
	}
	sb.WriteString("</")
	sb.WriteString(n.Name.Local)
	sb.WriteByte('>')
}

func escape(sb *strings.Builder, s string) {
	_ = xml.EscapeText(sb, []byte(s))
}

// Escape returns s escaped for use in XML text or a quoted attribute value.
func Escape(s string) string {
	var sb strings.Builder
	escape(&sb, s)
	return sb.String()
}
