package xmlsplit

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"testing"
)

// The splitter used to be built on encoding/xml's RawToken; that version is
// kept here as the reference the fast scanner is checked against.

type refState struct{ open bool }

// refNext decodes one piece from the start of b. n == 0 means b holds only part
// of the next piece.
func refNext(s *refState, b []byte) (ev Event, n int, err error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth := 0
	var stack []xml.Name // open elements, to check that end tags match (RawToken does not)
	for {
		tok, terr := d.RawToken()
		if terr != nil {
			if terr == io.EOF || refUnexpectedEOF(terr) {
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

func refUnexpectedEOF(err error) bool {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return se.Msg == "unexpected EOF"
	}
	return errors.Is(err, io.ErrUnexpectedEOF)
}

// refSplit cuts all of b with the reference; ok is false on any error.
func refSplit(b []byte) (evs []Event, rest int, ok bool) {
	var s refState
	off := 0
	for off < len(b) {
		ev, n, err := refNext(&s, b[off:])
		if err != nil {
			return nil, 0, false
		}
		if n == 0 {
			break
		}
		ev.Raw = b[off : off+n]
		evs = append(evs, ev)
		off += n
		if ev.Kind == StreamEnd {
			s.open = false
		}
	}
	return evs, len(b) - off, true
}

// FuzzSplitMatchesReference checks that wherever the encoding/xml based
// reference cuts a stream without error, the scanner cuts it the same way.
func FuzzSplitMatchesReference(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("<stream:stream a='1'><m x=\"&lt;&amp;\"><![CDATA[<x/>]]><!-- c --><b/></m><?pi x?><n/></stream:stream>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantRest, ok := refSplit(b)
		if !ok {
			return
		}
		// Compare on what the reference cut; what it left over may be
		// garbage it had not reached an error on yet.
		b = b[:len(b)-wantRest]
		var s Splitter
		got, err := s.Feed(b)
		if err != nil {
			t.Fatalf("scanner failed where the reference did not: %v\n%q", err, b)
		}
		if len(got) != len(want) || s.Buffered() != 0 {
			t.Fatalf("scanner: %d events, %d left; reference: %d events, %d left\n%q", len(got), s.Buffered(), len(want), wantRest, b)
		}
		for i := range want {
			if got[i].Kind != want[i].Kind || !bytes.Equal(got[i].Raw, want[i].Raw) || got[i].Name != want[i].Name {
				t.Fatalf("event %d differs: %v %q vs reference %v %q", i, got[i].Kind, got[i].Raw, want[i].Kind, want[i].Raw)
			}
			if len(got[i].Attr) != len(want[i].Attr) {
				t.Fatalf("event %d attributes differ: %v vs %v", i, got[i].Attr, want[i].Attr)
			}
			for k := range want[i].Attr {
				if got[i].Attr[k] != want[i].Attr[k] {
					t.Fatalf("event %d attribute %d: %v vs %v", i, k, got[i].Attr[k], want[i].Attr[k])
				}
			}
		}
	})
}

var _ = fmt.Sprint
var _ = errors.New
var _ = io.EOF
var _ = xml.Name{}
