// Package xmlsplit cuts an XMPP byte stream into its top-level pieces: the
// stream header, each complete child element of the stream (a stanza or a
// nonza), whitespace keepalives and the stream's end.
//
// It only observes bytes; it never rewrites them. The TCP transport uses it to
// see every element going out and coming in (the place where stream
// management counts stanzas), and BOSH uses it on both sides to turn a stream
// into <body/> payloads and back.
//
//	s := xmlsplit.Splitter{Max: 1 << 20, MaxDepth: 64, MaxAttrs: 128}
//	evs, err := s.Feed(p) // p: the next bytes, cut anywhere
//	for _, ev := range evs { ... ev.Kind, ev.Name, ev.Raw ... }
//
// The scanner keeps its state between calls: every byte is examined once,
// however the stream is cut, so the work is linear in the bytes seen. The
// limits are checked as the bytes are scanned, so a piece over a limit
// costs no more than the limit to refuse.
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

// Errors returned by Feed, wrapped with the detail. After an error the
// Splitter is unusable until Reset. Each limit has its own error, so that
// errors.Is tells which one a peer went over.
var (
	// ErrTooLarge means a piece (an element or the stream header) is
	// longer than Splitter.Max.
	ErrTooLarge = errors.New("xmlsplit: element exceeds the size limit")
	// ErrTooDeep means elements nest deeper than Splitter.MaxDepth.
	ErrTooDeep = errors.New("xmlsplit: element exceeds the depth limit")
	// ErrTooManyAttrs means one start tag has more attributes than
	// Splitter.MaxAttrs.
	ErrTooManyAttrs = errors.New("xmlsplit: element exceeds the attribute limit")
	// ErrPending means more bytes than Splitter.MaxPending wait for the
	// rest of their piece after a Feed.
	ErrPending = errors.New("xmlsplit: incomplete piece exceeds the pending limit")
	// ErrSyntax means the bytes are not well-formed XML of a stream.
	ErrSyntax = errors.New("xmlsplit: malformed XML")
)

// Limit names the limit err (from Feed) stands for, for a metric label:
// "size", "depth", "attributes", "pending", "syntax", or "other".
func Limit(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return "size"
	case errors.Is(err, ErrTooDeep):
		return "depth"
	case errors.Is(err, ErrTooManyAttrs):
		return "attributes"
	case errors.Is(err, ErrPending):
		return "pending"
	case errors.Is(err, ErrSyntax):
		return "syntax"
	}
	return "other"
}

// Splitter is a streaming cutter. The zero value is ready, with no limits.
// It is not safe for concurrent use.
type Splitter struct {
	// Max is the largest piece (element or stream header, in bytes)
	// accepted; 0 means no limit. A piece is refused as soon as its
	// first Max bytes are seen and it is not complete.
	Max int
	// MaxDepth is the deepest nesting accepted, counting the top-level
	// element as 1 (the stream header is not counted); 0 means no limit.
	MaxDepth int
	// MaxAttrs is the most attributes (namespace declarations included)
	// accepted on one start tag; 0 means no limit.
	MaxAttrs int
	// MaxPending is the most bytes a Feed may leave waiting for the rest
	// of their piece; 0 means no limit (Max bounds them too).
	MaxPending int
	// NamespacesOnly keeps only the namespace declarations (xmlns and
	// xmlns:prefix) in Event.Attr: enough to resolve the element's name,
	// and no allocation for the attributes of an ordinary stanza.
	NamespacesOnly bool

	buf   []byte // buf[start:] is the piece being scanned
	start int
	pos   int   // next byte to examine
	st    state // what the byte at pos may be
	open  bool  // stream header seen
	err   error
	stack []span     // open elements (names, as offsets into buf)
	tag   int        // offset of the '<' of the markup being scanned
	name  span       // name of the tag being scanned
	an    span       // name of the attribute being scanned
	quote byte       // quote of the attribute value being scanned
	val   int        // offset of the attribute value being scanned
	match int        // bytes of a closing delimiter matched so far
	self  bool       // the start tag being scanned ends with "/>"
	nattr int        // attributes of the start tag being scanned
	attr  []xml.Attr // attributes of the top-level start tag being scanned

	// examined counts the bytes the scanner looked at, for the test that
	// the work is linear.
	examined int64
}

// span is buf[from:to].
type span struct{ from, to int }

// state is where the scanner stands.
type state uint8

const (
	stTop       state = iota // between pieces
	stText                   // character data inside an element
	stLT                     // after '<'
	stBang                   // after "<!"
	stPI                     // inside <? ... ?>
	stComment                // inside <!-- ... -->
	stCDATA                  // inside <![CDATA[ ... ]]>
	stDecl                   // inside <! ... >
	stEndName                // in the name of an end tag
	stEndSpace               // after the name of an end tag
	stStartName              // in the name of a start tag
	stInTag                  // between attributes of a start tag
	stSlash                  // after '/' in a start tag
	stAttrName               // in an attribute name
	stAttrEq                 // after an attribute name, before '='
	stAttrQuote              // after '=', before the quote
	stAttrValue              // inside a quoted attribute value
)

// Reset forgets everything buffered and expects a new stream header (a
// stream restart after STARTTLS or SASL). The limits stay.
func (s *Splitter) Reset() {
	s.buf = s.buf[:0]
	s.start, s.pos, s.st = 0, 0, stTop
	s.open = false
	s.err = nil
	s.stack = s.stack[:0]
	s.attr = nil
}

// Buffered reports how many bytes wait for the rest of their element.
func (s *Splitter) Buffered() int { return len(s.buf) - s.start }

// Feed adds p and returns every piece it completed, in order.
func (s *Splitter) Feed(p []byte) ([]Event, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.buf = append(s.buf, p...)
	var evs []Event
	for s.start < len(s.buf) { // nothing left: nothing to scan
		if s.st == stTop && s.pos == s.start && s.open && s.buf[s.pos] == '<' {
			end := len(s.buf)
			if s.Max > 0 {
				end = min(end, s.start+s.Max)
			}
			ev, n, ok := s.fast(end)
			s.examined += int64(n)
			if ok {
				ev.Raw = bytes.Clone(s.buf[s.start : s.start+n])
				s.start += n
				s.pos = s.start
				evs = append(evs, ev)
				continue
			}
		}
		ev, ok, err := s.scan()
		if err != nil {
			s.err = err
			return evs, err
		}
		if !ok {
			break
		}
		evs = append(evs, ev)
	}
	if s.MaxPending > 0 && s.Buffered() > s.MaxPending {
		s.err = fmt.Errorf("%w: %d bytes wait, the limit is %d", ErrPending, s.Buffered(), s.MaxPending)
		return evs, s.err
	}
	s.compact()
	return evs, nil
}

// compact moves the piece being scanned to the front of buf.
func (s *Splitter) compact() {
	d := s.start
	if d == 0 {
		return
	}
	if d == len(s.buf) && cap(s.buf) <= 64<<10 {
		// The common case: every byte went out in a piece, and the next
		// piece starts afresh (offsets are set when it begins).
		s.buf, s.start, s.pos = s.buf[:0], 0, 0
		return
	}
	n := copy(s.buf, s.buf[d:])
	s.buf = s.buf[:n]
	if cap(s.buf) > 64<<10 && n < cap(s.buf)/4 {
		// Do not keep a large element's buffer for the rest of the stream.
		s.buf = append(make([]byte, 0, max(4096, 2*n)), s.buf...)
	}
	s.start = 0
	s.pos -= d
	s.tag -= d
	s.name.from, s.name.to = s.name.from-d, s.name.to-d
	s.an.from, s.an.to = s.an.from-d, s.an.to-d
	s.val -= d
	for i := range s.stack {
		s.stack[i].from -= d
		s.stack[i].to -= d
	}
}

// piece returns the event ending at pos and starts the next piece there.
func (s *Splitter) piece(ev Event) Event {
	ev.Raw = bytes.Clone(s.buf[s.start:s.pos])
	s.start = s.pos
	if ev.Kind == StreamEnd {
		s.open = false
	}
	return ev
}

// syntax is an ErrSyntax with the detail.
func syntax(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)
}

// scan examines bytes from pos until a piece is complete (ok) or the bytes
// run out (!ok, to be continued by the next Feed).
//
// It is a byte scanner, not an XML parser: it finds where the top-level
// pieces begin and end (tags, quoted attribute values, comments, CDATA,
// processing instructions) and checks that end tags match, which is all
// the splitting needs; the XML decoder behind it still reads every byte
// for real. This keeps the cost of watching a stream to a small fraction of
// decoding it.
func (s *Splitter) scan() (ev Event, ok bool, err error) {
	b := s.buf
	end := len(b)
	limited := false
	if s.Max > 0 && s.start+s.Max <= end {
		// Never look past the first Max bytes of a piece: one not
		// complete by then is too large.
		end, limited = s.start+s.Max, true
	}
	pos, st := s.pos, s.st
	from := pos
	for pos < end {
		c := b[pos]
		switch st {
		case stTop:
			if isSpace(c) {
				ws := pos
				j := pos + 1
				for j < end && isSpace(b[j]) {
					j++
				}
				pos = j
				if s.open && ws == s.start {
					// Whitespace between pieces is a piece of its own,
					// as much of it as there is now.
					s.leave(pos, st, from)
					return s.piece(Event{Kind: Space}), true, nil
				}
				continue // before the header, or after a processing instruction: part of what follows
			}
			if c != '<' {
				s.leave(pos, st, from)
				return ev, false, syntax("text outside of an element")
			}
			s.tag = pos
			pos++
			st = stLT
			if pos < end {
				pos, st = s.lt(b[pos], pos)
			}
		case stText:
			k := bytes.IndexByte(b[pos:end], '<')
			if k < 0 {
				pos = end
				continue
			}
			s.tag = pos + k
			pos += k + 1
			st = stLT
			if pos < end {
				pos, st = s.lt(b[pos], pos)
			}
		case stLT:
			pos, st = s.lt(c, pos)
		case stBang:
			// At most seven bytes decide; they are looked at again until
			// enough have come.
			rest := b[s.tag+2 : end]
			pos = s.tag + 2
			switch {
			case len(s.stack) > 0 && hasPrefixOrShort(rest, "[CDATA["):
				if len(rest) < 7 {
					pos = end
					s.leave(pos, st, from)
					return s.incomplete(limited)
				}
				pos += 7
				st, s.match = stCDATA, 0
			case hasPrefixOrShort(rest, "--"):
				if len(rest) < 2 {
					pos = end
					s.leave(pos, st, from)
					return s.incomplete(limited)
				}
				if len(s.stack) == 0 && s.open {
					s.leave(pos, st, from)
					return ev, false, syntax("comment between stanzas")
				}
				pos += 2
				st, s.match = stComment, 0
			default:
				// A declaration (<!DOCTYPE …>): XMPP has none between
				// stanzas; elsewhere it is skipped, and the decoder
				// behind the splitter rejects it.
				if len(s.stack) == 0 && s.open {
					s.leave(pos, st, from)
					return ev, false, syntax("unexpected <! markup")
				}
				st = stDecl
			}
		case stPI:
			if pos, ok = s.delim("?>", pos, end); ok {
				// An XML declaration or processing instruction belongs to
				// what follows it.
				st = s.afterMarkup()
			}
		case stComment:
			if pos, ok = s.delim("-->", pos, end); ok {
				st = s.afterMarkup()
			}
		case stCDATA:
			if pos, ok = s.delim("]]>", pos, end); ok {
				st = s.afterMarkup()
			}
		case stDecl:
			k := bytes.IndexByte(b[pos:end], '>')
			if k < 0 {
				pos = end
				continue
			}
			pos += k + 1
			st = s.afterMarkup()
		case stEndName:
			j := pos
			for j < end && !isNameEnd(b[j]) {
				j++
			}
			pos = j
			if j == end {
				continue
			}
			s.name.to = j
			if s.name.to == s.name.from {
				s.leave(pos, st, from)
				return ev, false, syntax("end tag without a name")
			}
			st = stEndSpace
			if b[j] != '>' {
				continue
			}
			// The common case: the end tag is complete.
			pos++
			s.leave(pos, st, from)
			from = pos
			if ev, ok, err := s.endTag(); ok || err != nil {
				return ev, ok, err
			}
			st = s.st
		case stEndSpace:
			pos++
			if isSpace(c) {
				continue
			}
			if c != '>' {
				s.leave(pos, st, from)
				return ev, false, syntax("malformed end tag")
			}
			s.leave(pos, st, from)
			from = pos
			if ev, ok, err := s.endTag(); ok || err != nil {
				return ev, ok, err
			}
			st = s.st
		case stStartName:
			j := pos
			for j < end && !isNameEnd(b[j]) {
				if b[j] == '<' {
					s.leave(pos, st, from)
					return ev, false, syntax("'<' in a tag name")
				}
				j++
			}
			pos = j
			if j < end {
				s.name.to = j
				if s.name.to == s.name.from {
					s.leave(pos, st, from)
					return ev, false, syntax("tag without a name")
				}
				s.nattr, s.self = 0, false
				// The attributes that are all here, then, in the common
				// case, the end of the tag.
				var err error
				if pos, st, err = s.attrs(pos, end); err != nil {
					s.leave(pos, st, from)
					return ev, false, err
				}
				if st == stInTag && pos < end && b[pos] == '>' {
					pos++
					s.leave(pos, st, from)
					from = pos
					if ev, ok, err := s.startTagDone(); ok || err != nil {
						return ev, ok, err
					}
					st = s.st
				}
			}
		case stInTag:
			switch {
			case isSpace(c):
				pos++
			case c == '>':
				pos++
				s.leave(pos, st, from)
				from = pos
				if ev, ok, err := s.startTagDone(); ok || err != nil {
					return ev, ok, err
				}
				st = s.st
			case c == '/':
				pos++
				st = stSlash
			case c == '<':
				s.leave(pos, st, from)
				return ev, false, syntax("'<' in a tag")
			default:
				var err error
				if pos, st, err = s.attrs(pos, end); err != nil {
					s.leave(pos, st, from)
					return ev, false, err
				}
			}
		case stSlash:
			if c != '>' {
				s.leave(pos, st, from)
				return ev, false, syntax("'/' in a tag")
			}
			pos++
			s.self = true
			s.leave(pos, st, from)
			from = pos
			if ev, ok, err := s.startTagDone(); ok || err != nil {
				return ev, ok, err
			}
			st = s.st
		case stAttrName:
			j := pos
			for j < end && !isNameEnd(b[j]) {
				j++
			}
			pos = j
			if j < end {
				s.an.to = j
				st = stAttrEq
			}
		case stAttrEq:
			if isSpace(c) {
				pos++
				continue
			}
			if c != '=' || s.an.to == s.an.from {
				s.leave(pos, st, from)
				return ev, false, syntax("malformed attribute in <%s>", b[s.name.from:s.name.to])
			}
			pos++
			st = stAttrQuote
		case stAttrQuote:
			if isSpace(c) {
				pos++
				continue
			}
			if c != '"' && c != '\'' {
				s.leave(pos, st, from)
				return ev, false, syntax("unquoted attribute value in <%s>", b[s.name.from:s.name.to])
			}
			s.nattr++
			if s.MaxAttrs > 0 && s.nattr > s.MaxAttrs {
				s.leave(pos, st, from)
				return ev, false, fmt.Errorf("%w: more than %d attributes in <%s>", ErrTooManyAttrs, s.MaxAttrs, b[s.name.from:s.name.to])
			}
			s.quote = c
			pos++
			s.val = pos
			st = stAttrValue
		case stAttrValue:
			k := bytes.IndexByte(b[pos:end], s.quote)
			if k < 0 {
				pos = end
				continue
			}
			s.attrDone(pos + k)
			pos += k + 1
			st = stInTag
		}
	}
	s.leave(pos, st, from)
	return s.incomplete(limited)
}

// endTag handles the end of an end tag, at pos: a piece when it ends the
// top-level element or the stream, otherwise one element less open.
func (s *Splitter) endTag() (Event, bool, error) {
	b := s.buf
	name := b[s.name.from:s.name.to]
	if len(s.stack) == 0 {
		if !s.open || localOf(name) != "stream" {
			return Event{}, false, syntax("unexpected </%s>", name)
		}
		s.st = stTop
		return s.piece(Event{Kind: StreamEnd, Name: rawName(name)}), true, nil
	}
	top := s.stack[len(s.stack)-1]
	if open := b[top.from:top.to]; !bytes.Equal(open, name) {
		return Event{}, false, syntax("</%s> closes <%s>", name, open)
	}
	s.stack = s.stack[:len(s.stack)-1]
	if len(s.stack) == 0 {
		s.st = stTop
		ev := Event{Kind: Element, Name: rawName(b[top.from:top.to]), Attr: s.attr}
		if s.attr != nil {
			s.attr = nil
		}
		return s.piece(ev), true, nil
	}
	s.st = stText
	return Event{}, false, nil
}

// lt goes on after '<' with c, the byte at pos.
func (s *Splitter) lt(c byte, pos int) (int, state) {
	switch c {
	case '?':
		s.match = 0
		return pos + 1, stPI
	case '!':
		return pos + 1, stBang
	case '/':
		s.name = span{pos + 1, pos + 1}
		return pos + 1, stEndName
	}
	s.name = span{pos, pos}
	return pos, stStartName
}

// attrs reads the attributes that are all here, from pos, in one go (the
// common case), and stops at what ends them ('>', '/', '<': the state
// stays stInTag) or where the bytes end, in the state that goes on from
// there.
func (s *Splitter) attrs(pos, end int) (int, state, error) {
	b := s.buf
	for {
		for pos < end && isSpace(b[pos]) {
			pos++
		}
		if pos == end {
			return pos, stInTag, nil
		}
		if c := b[pos]; c == '>' || c == '/' || c == '<' {
			return pos, stInTag, nil
		}
		s.an = span{pos, pos}
		j := pos
		for j < end && !isNameEnd(b[j]) {
			j++
		}
		if j == end {
			return j, stAttrName, nil
		}
		s.an.to = j
		for j < end && isSpace(b[j]) {
			j++
		}
		if j == end {
			return j, stAttrEq, nil
		}
		if b[j] != '=' || s.an.to == s.an.from {
			return j, stAttrEq, syntax("malformed attribute in <%s>", b[s.name.from:s.name.to])
		}
		j++
		for j < end && isSpace(b[j]) {
			j++
		}
		if j == end {
			return j, stAttrQuote, nil
		}
		q := b[j]
		if q != '"' && q != '\'' {
			return j, stAttrQuote, syntax("unquoted attribute value in <%s>", b[s.name.from:s.name.to])
		}
		s.nattr++
		if s.MaxAttrs > 0 && s.nattr > s.MaxAttrs {
			return j, stAttrQuote, fmt.Errorf("%w: more than %d attributes in <%s>", ErrTooManyAttrs, s.MaxAttrs, b[s.name.from:s.name.to])
		}
		j++
		s.quote, s.val = q, j
		k := bytes.IndexByte(b[j:end], q)
		if k < 0 {
			return end, stAttrValue, nil
		}
		s.attrDone(j + k)
		pos = j + k + 1
	}
}

// leave stores the scanner's position and state, counting the bytes
// examined since from.
func (s *Splitter) leave(pos int, st state, from int) {
	s.examined += int64(pos - from)
	s.pos, s.st = pos, st
}

// incomplete ends a scan that ran out of bytes: more may come, unless the
// piece is over the size limit.
func (s *Splitter) incomplete(limited bool) (Event, bool, error) {
	if limited {
		return Event{}, false, fmt.Errorf("%w: a piece is longer than %d bytes", ErrTooLarge, s.Max)
	}
	return Event{}, false, nil
}

// attrDone records the attribute whose value ends at q (the closing
// quote), if the top-level piece wants it.
func (s *Splitter) attrDone(q int) {
	if len(s.stack) > 0 {
		return
	}
	name := s.buf[s.an.from:s.an.to]
	if s.NamespacesOnly && !isNSDecl(name) {
		return
	}
	if s.attr == nil {
		s.attr = make([]xml.Attr, 0, 6) // a stanza's to, from, type, id, xmlns
	}
	val := s.buf[s.val:q]
	value := string(val)
	if bytes.IndexByte(val, '&') >= 0 {
		value = html.UnescapeString(value) // the XML entities are a subset
	}
	s.attr = append(s.attr, xml.Attr{Name: rawName(name), Value: value})
}

// startTagDone handles the end of a start tag at pos.
func (s *Splitter) startTagDone() (Event, bool, error) {
	name := s.buf[s.name.from:s.name.to]
	if len(s.stack) == 0 && (!s.open || s.self) {
		ev := Event{Kind: Element, Name: rawName(name), Attr: s.attr}
		if s.attr != nil {
			s.attr = nil
		}
		if !s.open {
			if localOf(name) != "stream" {
				return Event{}, false, syntax("expected a stream header, got <%s>", name)
			}
			s.open = true
			ev.Kind = StreamStart
		}
		s.st = stTop
		return s.piece(ev), true, nil
	}
	if s.MaxDepth > 0 && len(s.stack) >= s.MaxDepth {
		return Event{}, false, fmt.Errorf("%w: <%s> nests deeper than %d", ErrTooDeep, name, s.MaxDepth)
	}
	if s.self {
		s.st = stText
		return Event{}, false, nil
	}
	s.stack = append(s.stack, s.name)
	s.st = stText
	return Event{}, false, nil
}

// afterMarkup goes back to what surrounds a comment, CDATA section,
// declaration or processing instruction.
func (s *Splitter) afterMarkup() state {
	if len(s.stack) > 0 {
		return stText
	}
	return stTop
}

// delim looks for the closing delimiter d ("?>", "-->", "]]>") from pos,
// carrying a partial match over to the next call; it reports whether d
// ended before end. Each delimiter is a run of one repeated byte and a
// last one, so a mismatch keeps as much of the run as it can.
func (s *Splitter) delim(d string, pos, end int) (int, bool) {
	b := s.buf
	for pos < end {
		if s.match == 0 {
			k := bytes.IndexByte(b[pos:end], d[0])
			if k < 0 {
				pos = end
				return pos, false
			}
			pos += k + 1
			s.match = 1
			continue
		}
		c := b[pos]
		pos++
		switch {
		case c == d[s.match]:
			s.match++
			if s.match == len(d) {
				s.match = 0
				return pos, true
			}
		case c == d[0]:
			// "--->": the last two dashes still start "-->".
			if s.match < len(d)-1 {
				s.match++
			}
		default:
			s.match = 0
		}
	}
	return pos, false
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

func localOf(name []byte) string { return rawName(name).Local }

// rawName splits a name at its colon as encoding/xml does: a name with
// no colon, more than one, or nothing on one side of it is all local.
func rawName(name []byte) xml.Name {
	if k := bytes.IndexByte(name, ':'); k > 0 && k < len(name)-1 && bytes.IndexByte(name[k+1:], ':') < 0 {
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

// isNSDecl reports whether an attribute name is xmlns or xmlns:prefix.
func isNSDecl(name []byte) bool {
	return string(name) == "xmlns" || (len(name) > 6 && string(name[:6]) == "xmlns:")
}
