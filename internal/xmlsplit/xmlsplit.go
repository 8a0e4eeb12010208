// Package xmlsplit cuts an XMPP byte stream into its top-level pieces: the
// stream header, each complete child element of the stream (a stanza or a
// nonza), whitespace keepalives and the stream's end.
//
// It only observes bytes; it never rewrites them. The TCP transport uses it to
// see every element going out and coming in (the place where stream
// management counts stanzas), and BOSH uses it on both sides to turn a stream
// into <body/> payloads and back.
//
//	var s xmlsplit.Splitter
//	evs, err := s.Feed(p) // p: the next bytes, cut anywhere
//	for _, ev := range evs { ... ev.Kind, ev.Name, ev.Raw ... }
package xmlsplit

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
)

// Kind says what an Event is.
type Kind int

// The kinds of events.
const (
	StreamStart Kind = iota + 1 // <stream:stream ...> (Raw includes any XML declaration before it)
	Element                     // a complete top-level child of the stream
	Space                       // whitespace between elements (keepalive)
	StreamEnd                   // </stream:stream>
)

func (k Kind) String() string {
	switch k {
	case StreamStart:
		return "stream-start"
	case Element:
		return "element"
	case Space:
		return "space"
	case StreamEnd:
		return "stream-end"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Event is one top-level piece of the stream.
type Event struct {
	Kind Kind
	Name xml.Name   // raw (prefix in Space) name of the element or stream header
	Attr []xml.Attr // raw attributes of the start tag (StreamStart, Element)
	Raw  []byte     // the exact bytes; owned by the caller
}

// Errors returned by Feed. After an error the Splitter is unusable.
var (
	ErrTooLarge = errors.New("xmlsplit: element exceeds the size limit")
	ErrSyntax   = errors.New("xmlsplit: malformed XML")
)

// Splitter is a streaming cutter. The zero value is ready, with no size limit.
// It is not safe for concurrent use.
type Splitter struct {
	// Max is the largest element (in bytes) accepted; 0 means no limit.
	Max int
	// NamespacesOnly keeps only the namespace declarations (xmlns and
	// xmlns:prefix) in Event.Attr: enough to resolve the element's name,
	// and no allocation for the attributes of an ordinary stanza.
	NamespacesOnly bool

	buf  []byte
	open bool // stream header seen
	err  error
}

// Reset forgets everything buffered and expects a new stream header (a
// stream restart after STARTTLS or SASL).
func (s *Splitter) Reset() {
	s.buf = s.buf[:0]
	s.open = false
	s.err = nil
}

// Buffered reports how many bytes wait for the rest of their element.
func (s *Splitter) Buffered() int { return len(s.buf) }

// Feed adds p and returns every piece it completed, in order.
func (s *Splitter) Feed(p []byte) ([]Event, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.buf = append(s.buf, p...)
	var evs []Event
	off := 0
	for off < len(s.buf) {
		ev, n, err := s.next(s.buf[off:])
		if err != nil {
			s.err = err
			return evs, err
		}
		if n == 0 {
			break // incomplete
		}
		ev.Raw = bytes.Clone(s.buf[off : off+n])
		evs = append(evs, ev)
		off += n
		if ev.Kind == StreamEnd {
			s.open = false
		}
	}
	rest := copy(s.buf, s.buf[off:])
	s.buf = s.buf[:rest]
	if s.Max > 0 && len(s.buf) > s.Max {
		s.err = ErrTooLarge
		return evs, s.err
	}
	return evs, nil
}

// next cuts one piece from the start of b. n == 0 means b holds only part
// of the next piece.
//
// It is a byte scanner, not an XML parser: it finds where the top-level
// pieces begin and end (tags, quoted attribute values, comments, CDATA,
// processing instructions) and checks that end tags match, which is all
// the splitting needs; the XML decoder behind it still reads every byte
// for real. This keeps the cost of watching a stream to a small fraction of
// decoding it.
func (s *Splitter) next(b []byte) (ev Event, n int, err error) {
	i := 0
	var stackBuf [16][]byte
	stack := stackBuf[:0] // names of open elements, as raw bytes of b
	for {
		if i >= len(b) {
			return Event{}, 0, nil
		}
		if len(stack) == 0 && b[i] != '<' {
			// Between pieces: whitespace only.
			j := i
			for j < len(b) && isSpace(b[j]) {
				j++
			}
			if j < len(b) && b[j] != '<' {
				return Event{}, 0, fmt.Errorf("%w: text outside of an element", ErrSyntax)
			}
			if !s.open {
				if j == len(b) {
					return Event{}, 0, nil // leading whitespace: wait for the header
				}
				i = j
				continue
			}
			if i == 0 {
				return Event{Kind: Space}, j, nil
			}
			i = j
			continue
		}
		if len(stack) > 0 && b[i] != '<' {
			// Character data inside an element.
			k := bytes.IndexByte(b[i:], '<')
			if k < 0 {
				return Event{}, 0, nil
			}
			i += k
			continue
		}
		// b[i] == '<'
		if i+1 >= len(b) {
			return Event{}, 0, nil
		}
		switch b[i+1] {
		case '?':
			k := bytes.Index(b[i+2:], []byte("?>"))
			if k < 0 {
				return Event{}, 0, nil
			}
			// An XML declaration or processing instruction belongs to
			// what follows it.
			i += 2 + k + 2
			continue
		case '!':
			rest := b[i+2:]
			switch {
			case len(stack) > 0 && hasPrefixOrShort(rest, "[CDATA["):
				if len(rest) < 7 {
					return Event{}, 0, nil
				}
				k := bytes.Index(rest[7:], []byte("]]>"))
				if k < 0 {
					return Event{}, 0, nil
				}
				i += 2 + 7 + k + 3
				continue
			case hasPrefixOrShort(rest, "--"):
				if len(rest) < 2 {
					return Event{}, 0, nil
				}
				if len(stack) == 0 && s.open {
					return Event{}, 0, fmt.Errorf("%w: comment between stanzas", ErrSyntax)
				}
				k := bytes.Index(rest[2:], []byte("-->"))
				if k < 0 {
					return Event{}, 0, nil
				}
				i += 2 + 2 + k + 3
				continue
			default:
				// A declaration (<!DOCTYPE …>): XMPP has none between
				// stanzas; elsewhere it is skipped, and the decoder
				// behind the splitter rejects it.
				if len(stack) == 0 && s.open {
					return Event{}, 0, fmt.Errorf("%w: unexpected <! markup", ErrSyntax)
				}
				k := bytes.IndexByte(rest, '>')
				if k < 0 {
					return Event{}, 0, nil
				}
				i += 2 + k + 1
				continue
			}
		case '/':
			name, end, ok, err := scanEndTag(b, i)
			if err != nil {
				return Event{}, 0, err
			}
			if !ok {
				return Event{}, 0, nil
			}
			if len(stack) == 0 {
				if !s.open || localOf(name) != "stream" {
					return Event{}, 0, fmt.Errorf("%w: unexpected </%s>", ErrSyntax, name)
				}
				return Event{Kind: StreamEnd, Name: rawName(name)}, end, nil
			}
			if top := stack[len(stack)-1]; !bytes.Equal(top, name) {
				return Event{}, 0, fmt.Errorf("%w: </%s> closes <%s>", ErrSyntax, name, top)
			}
			stack = stack[:len(stack)-1]
			i = end
			if len(stack) == 0 {
				return ev, end, nil
			}
			continue
		}
		mode := attrNone
		if len(stack) == 0 {
			mode = attrAll
			if s.NamespacesOnly {
				mode = attrNS
			}
		}
		name, attrs, end, selfClosing, ok, err := scanStartTag(b, i, mode)
		if err != nil {
			return Event{}, 0, err
		}
		if !ok {
			return Event{}, 0, nil
		}
		if len(stack) == 0 {
			if !s.open {
				if localOf(name) != "stream" {
					return Event{}, 0, fmt.Errorf("%w: expected a stream header, got <%s>", ErrSyntax, name)
				}
				s.open = true
				return Event{Kind: StreamStart, Name: rawName(name), Attr: attrs}, end, nil
			}
			ev = Event{Kind: Element, Name: rawName(name), Attr: attrs}
			if selfClosing {
				return ev, end, nil
			}
		} else if selfClosing {
			i = end
			continue
		}
		stack = append(stack, name)
		i = end
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isNameEnd(c byte) bool { return isSpace(c) || c == '>' || c == '/' || c == '=' }

// hasPrefixOrShort reports whether b starts with p, or is a prefix of p
// (more bytes may complete it).
func hasPrefixOrShort(b []byte, p string) bool {
	if len(b) < len(p) {
		return string(b) == p[:len(b)]
	}
	return string(b[:len(p)]) == p
}

func localOf(name []byte) string {
	if k := bytes.IndexByte(name, ':'); k >= 0 {
		return string(name[k+1:])
	}
	return string(name)
}

func rawName(name []byte) xml.Name {
	if k := bytes.IndexByte(name, ':'); k >= 0 {
		return xml.Name{Space: intern(name[:k]), Local: intern(name[k+1:])}
	}
	return xml.Name{Local: intern(name)}
}

// intern returns the names every stream is full of without allocating.
func intern(b []byte) string {
	switch string(b) { // no allocation: the compiler compares in place
	case "message":
		return "message"
	case "presence":
		return "presence"
	case "iq":
		return "iq"
	case "r":
		return "r"
	case "a":
		return "a"
	case "stream":
		return "stream"
	case "xmlns":
		return "xmlns"
	}
	return string(b)
}

// Which attributes scanStartTag returns.
const (
	attrNone = iota
	attrAll
	attrNS // namespace declarations only
)

// isNSDecl reports whether an attribute name is xmlns or xmlns:prefix.
func isNSDecl(name []byte) bool {
	return string(name) == "xmlns" || (len(name) > 6 && string(name[:6]) == "xmlns:")
}

// scanEndTag reads </name> at b[i].
func scanEndTag(b []byte, i int) (name []byte, end int, ok bool, err error) {
	j := i + 2
	k := j
	for k < len(b) && !isNameEnd(b[k]) {
		k++
	}
	for m := k; m < len(b); m++ {
		switch {
		case b[m] == '>':
			if k == j {
				return nil, 0, false, fmt.Errorf("%w: end tag without a name", ErrSyntax)
			}
			return b[j:k], m + 1, true, nil
		case !isSpace(b[m]):
			return nil, 0, false, fmt.Errorf("%w: malformed end tag", ErrSyntax)
		}
	}
	return nil, 0, false, nil
}

// scanStartTag reads <name attr='v' ...> or <name .../> at b[i]. Attributes
// are returned as mode says (all of them for top-level pieces).
func scanStartTag(b []byte, i int, mode int) (name []byte, attrs []xml.Attr, end int, selfClosing, ok bool, err error) {
	j := i + 1
	k := j
	for k < len(b) && !isNameEnd(b[k]) {
		if b[k] == '<' {
			return nil, nil, 0, false, false, fmt.Errorf("%w: '<' in a tag name", ErrSyntax)
		}
		k++
	}
	if k >= len(b) {
		return nil, nil, 0, false, false, nil
	}
	if k == j {
		return nil, nil, 0, false, false, fmt.Errorf("%w: tag without a name", ErrSyntax)
	}
	name = b[j:k]
	m := k
	for {
		for m < len(b) && isSpace(b[m]) {
			m++
		}
		if m >= len(b) {
			return nil, nil, 0, false, false, nil
		}
		switch b[m] {
		case '>':
			return name, attrs, m + 1, false, true, nil
		case '/':
			if m+1 >= len(b) {
				return nil, nil, 0, false, false, nil
			}
			if b[m+1] != '>' {
				return nil, nil, 0, false, false, fmt.Errorf("%w: '/' in a tag", ErrSyntax)
			}
			return name, attrs, m + 2, true, true, nil
		case '<':
			return nil, nil, 0, false, false, fmt.Errorf("%w: '<' in a tag", ErrSyntax)
		}
		// An attribute: name = "value" or 'value'.
		an := m
		for m < len(b) && !isNameEnd(b[m]) {
			m++
		}
		anEnd := m
		for m < len(b) && isSpace(b[m]) {
			m++
		}
		if m >= len(b) {
			return nil, nil, 0, false, false, nil
		}
		if b[m] != '=' || anEnd == an {
			return nil, nil, 0, false, false, fmt.Errorf("%w: malformed attribute in <%s>", ErrSyntax, name)
		}
		m++
		for m < len(b) && isSpace(b[m]) {
			m++
		}
		if m >= len(b) {
			return nil, nil, 0, false, false, nil
		}
		q := b[m]
		if q != '"' && q != '\'' {
			return nil, nil, 0, false, false, fmt.Errorf("%w: unquoted attribute value in <%s>", ErrSyntax, name)
		}
		v := bytes.IndexByte(b[m+1:], q)
		if v < 0 {
			return nil, nil, 0, false, false, nil
		}
		if mode == attrAll || (mode == attrNS && isNSDecl(b[an:anEnd])) {
			if attrs == nil {
				attrs = make([]xml.Attr, 0, 6) // a stanza's to, from, type, id, xmlns
			}
			val := b[m+1 : m+1+v]
			value := string(val)
			if bytes.IndexByte(val, '&') >= 0 {
				value = html.UnescapeString(value) // the XML entities are a subset
			}
			attrs = append(attrs, xml.Attr{Name: rawName(b[an:anEnd]), Value: value})
		}
		m += 1 + v + 1
	}
}
