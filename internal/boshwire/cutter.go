package boshwire

import (
	"bytes"

	"crier/internal/xmlsplit"
)

// headerMark starts every stream header mellium writes. A stream restart
// writes a new header on the same byte stream; xmlsplit would take it for the
// start of a child element that never ends, so the cutter resets the
// splitter where a new header begins. "<stream:stream" cannot occur inside a
// well-formed element except in a CDATA section or a comment (neither is
// allowed in XMPP).
var headerMark = []byte("<stream:stream")

// Cutter is an xmlsplit.Splitter that survives stream restarts. Its zero
// value is ready to use.
type Cutter struct {
	s    xmlsplit.Splitter
	hold []byte // a tail that may be the start of a header
}

// Feed cuts p (the next bytes, cut anywhere) into events. A tail that may
// be the start of a stream header is kept back until the next call.
func (c *Cutter) Feed(p []byte) ([]xmlsplit.Event, error) {
	data := p
	if len(c.hold) > 0 {
		data = append(c.hold, p...)
		c.hold = nil
	}
	var out []xmlsplit.Event
	from := 0
	for {
		i := HeaderIndex(data, from)
		if i < 0 {
			break
		}
		evs, err := c.s.Feed(data[:i])
		out = append(out, evs...)
		if err != nil {
			return out, err
		}
		// Whatever the old splitter still holds (an XML declaration in front
		// of the new header) goes with the old stream.
		c.s.Reset()
		data = data[i:]
		from = len(headerMark)
	}
	// Keep back a tail that may be the start of the next header.
	if j := bytes.LastIndexByte(data, '<'); j >= 0 && len(data)-j < len(headerMark) &&
		bytes.HasPrefix(headerMark, data[j:]) {
		c.hold = bytes.Clone(data[j:])
		data = data[:j]
	}
	evs, err := c.s.Feed(data)
	return append(out, evs...), err
}

// HeaderIndex returns the index of the first stream header mark
// ("<stream:stream") at or after from that is followed by whitespace, '>',
// '/' or the end of data, or -1 if there is none.
func HeaderIndex(data []byte, from int) int {
	off := from
	for off < len(data) {
		k := bytes.Index(data[off:], headerMark)
		if k < 0 {
			return -1
		}
		at := off + k
		end := at + len(headerMark)
		if end < len(data) {
			switch data[end] {
			case ' ', '\t', '\r', '\n', '>', '/':
				return at
			}
			off = end
			continue
		}
		// The mark ends the data: treat it as a header start.
		return at
	}
	return -1
}
