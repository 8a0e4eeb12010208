package xmlsplit

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"html"
)

// The fast path. Most pieces are ordinary stanzas that arrive whole in one
// read; for them a scan without saved state (locals only, the open
// elements on the goroutine's stack) is quicker than the resumable
// scanner. It handles tags, attributes and text only, and gives up on
// anything else (an incomplete piece, markup such as comments or CDATA,
// an error, a limit): the resumable scanner then scans the piece from its
// start and has the last word. A piece is thus examined at most twice,
// and only the first bytes of a large one, so the work stays linear.

// Which attributes scanStartTag returns.
const (
	attrNone = iota
	attrAll
	attrNS // namespace declarations only
)

// fast cuts the piece starting at buf[start], which is '<', if it is a
// complete, ordinary element within buf[:end]; n is its length.
func (s *Splitter) fast(end int) (ev Event, n int, ok bool) {
	b := s.buf[s.start:end]
	var stackBuf [16][]byte
	stack := stackBuf[:0] // names of open elements, as raw bytes of b
	mode := attrAll
	if s.NamespacesOnly {
		mode = attrNS
	}
	i := 0
	for {
		if i+1 >= len(b) {
			return Event{}, i, false
		}
		switch b[i+1] {
		case '?', '!':
			return Event{}, i, false
		case '/':
			name, e, ok, err := scanEndTag(b, i)
			if !ok || err != nil || len(stack) == 0 || !bytes.Equal(stack[len(stack)-1], name) {
				return Event{}, i, false
			}
			stack = stack[:len(stack)-1]
			i = e
			if len(stack) == 0 {
				return ev, e, true
			}
		default:
			m := attrNone
			if len(stack) == 0 {
				m = mode
			}
			name, attrs, e, self, ok, err := scanStartTag(b, i, m, s.MaxAttrs)
			if !ok || err != nil || (s.MaxDepth > 0 && len(stack) >= s.MaxDepth) {
				return Event{}, i, false
			}
			i = e
			if len(stack) == 0 {
				ev = Event{Kind: Element, Name: rawName(name), Attr: attrs}
				if self {
					return ev, e, true
				}
			}
			if !self {
				stack = append(stack, name)
			}
		}
		// Character data up to the next tag.
		k := bytes.IndexByte(b[i:], '<')
		if k < 0 {
			return Event{}, len(b), false
		}
		i += k
	}
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
// are returned as mode says (all of them for top-level pieces); more than
// maxAttrs of them (if positive) is an error.
func scanStartTag(b []byte, i int, mode, maxAttrs int) (name []byte, attrs []xml.Attr, end int, selfClosing, ok bool, err error) {
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
	nattr := 0
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
		if nattr++; maxAttrs > 0 && nattr > maxAttrs {
			return nil, nil, 0, false, false, ErrTooManyAttrs
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
