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
	"io"
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

// next decodes one piece from the start of b. n == 0 means b holds only part
// of the next piece.
func (s *Splitter) next(b []byte) (ev Event, n int, err error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth := 0
	var stack []xml.Name // open elements, to check that end tags match (RawToken does not)
	for {
		tok, terr := d.RawToken()
		if terr != nil {
			if terr == io.EOF || isUnexpectedEOF(terr) {
				return Event{}, 0, nil
			}
			return Event{}, 0, fmt.Errorf("%w: %v", ErrSyntax, terr)
		}
		off := int(d.InputOffset())
		switch t := tok.(type) {
		case xml.ProcInst, xml.Comment, xml.Directive:
			if depth == 0 && s.open {
				if _, ok := t.(xml.ProcInst); !ok {
					return Event{}, 0, fmt.Errorf("%w: %T between stanzas", ErrSyntax, t)
				}
			}
			// An XML declaration before the stream header belongs to it.
			continue
		case xml.CharData:
			if depth > 0 {
				continue
			}
			if len(bytes.TrimSpace(t)) != 0 {
				return Event{}, 0, fmt.Errorf("%w: text outside of an element", ErrSyntax)
			}
			if off == len(b) && !s.open {
				// Leading whitespace before the header: wait for more.
				return Event{}, 0, nil
			}
			if !s.open {
				continue
			}
			return Event{Kind: Space}, off, nil
		case xml.StartElement:
			if depth == 0 && !s.open {
				if t.Name.Local != "stream" {
					return Event{}, 0, fmt.Errorf("%w: expected a stream header, got <%s>", ErrSyntax, t.Name.Local)
				}
				s.open = true
				return Event{Kind: StreamStart, Name: t.Name, Attr: t.Copy().Attr}, off, nil
			}
			if depth == 0 {
				ev = Event{Kind: Element, Name: t.Name, Attr: t.Copy().Attr}
			}
			stack = append(stack, t.Name)
			depth++
		case xml.EndElement:
			if depth == 0 {
				if !s.open || t.Name.Local != "stream" {
					return Event{}, 0, fmt.Errorf("%w: unexpected </%s>", ErrSyntax, t.Name.Local)
				}
				return Event{Kind: StreamEnd, Name: t.Name}, off, nil
			}
			if open := stack[len(stack)-1]; open != t.Name {
				return Event{}, 0, fmt.Errorf("%w: </%s> closes <%s>", ErrSyntax, t.Name.Local, open.Local)
			}
			stack = stack[:len(stack)-1]
			depth--
			if depth == 0 {
				return ev, off, nil
			}
		}
		// The element is still open when the decoder reaches the end of b;
		// the next RawToken reports EOF and we wait for more.
	}
}

func isUnexpectedEOF(err error) bool {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return se.Msg == "unexpected EOF"
	}
	return errors.Is(err, io.ErrUnexpectedEOF)
}
