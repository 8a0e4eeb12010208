package miniserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"

	"mellium.im/xmpp"

	"crier/internal/boshwire"
	"crier/internal/xmlsplit"
)

// spaceConn takes the whitespace between top-level elements out of what a
// client sends before mellium reads it. RFC 6120 allows such whitespace
// anywhere between elements, and clients send it (go-sendxmpp writes a
// newline after its stream header), but mellium's negotiator fails on it
// ("invalid start to feature of type xml.CharData"). It carries nothing,
// so nothing is lost. Writes pass through.
//
// It follows the stream with a splitter that starts again at each new
// stream header (after SASL the client restarts its stream on the same
// bytes); once the splitter finds the XML broken it passes everything on
// unchanged and lets the decoder report the error.
type spaceConn struct {
	net.Conn
	s      xmlsplit.Splitter
	header bool   // the next piece is a stream header
	hold   []byte // a tail that may be the start of a header
	dead   bool
	raw    [4096]byte
	out    []byte // filtered bytes not read yet
}

func newSpaceConn(c net.Conn) *spaceConn {
	sc := &spaceConn{Conn: c, header: true}
	// Past the server's own limits on a stanza the filter gives up (and
	// stops holding bytes); readElement then refuses the stanza.
	sc.s.MaxDepth, sc.s.MaxAttrs = maxDepth, maxAttrs
	return sc
}

// Read returns the next filtered bytes. A read error comes after the bytes
// read with it.
func (c *spaceConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		n, err := c.Conn.Read(c.raw[:])
		if n > 0 {
			c.out = c.filter(c.raw[:n])
		}
		if len(c.out) == 0 && err != nil {
			return 0, err
		}
		if n == 0 && err == nil {
			return 0, nil
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// filter returns what p leaves for the decoder (it may reuse p, or hold
// bytes back for the next call).
func (c *spaceConn) filter(p []byte) []byte {
	data := p
	if len(c.hold) > 0 {
		data = append(c.hold, p...)
		c.hold = nil
	}
	if c.dead {
		return data
	}
	keep, seg, from := 0, 0, 0
	for {
		i := boshwire.HeaderIndex(data, from)
		if i < 0 {
			break
		}
		keep = c.follow(data, keep, seg, i)
		c.s.Reset() // the limits stay
		c.header = true
		seg, from = i, i+len("<stream:stream")
	}
	end := len(data)
	// Keep back a tail that may be the start of the next header.
	if j := bytes.LastIndexByte(data[seg:], '<'); j >= 0 && !c.dead {
		j += seg
		if tail := data[j:]; len(tail) < len("<stream:stream") && bytes.HasPrefix([]byte("<stream:stream"), tail) {
			c.hold = bytes.Clone(tail)
			end = j
		}
	}
	keep = c.follow(data, keep, seg, end)
	return data[:keep]
}

// follow feeds data[from:to] to the splitter and moves what the decoder
// gets of it to data[keep:]; it returns the new keep.
func (c *spaceConn) follow(data []byte, keep, from, to int) int {
	seg := data[from:to]
	if c.dead {
		return keep + copy(data[keep:], seg)
	}
	if c.header && c.s.Buffered() == 0 {
		k := 0
		for k < len(seg) && isSpace(seg[k]) {
			k++
		}
		seg = seg[k:] // whitespace before a header means nothing either
	}
	at := -c.s.Buffered() // the first event starts that far before seg
	start := 0            // seg[start:] is still to be kept
	evs, err := c.s.Feed(seg)
	for _, ev := range evs {
		evStart := at
		at += len(ev.Raw)
		switch ev.Kind {
		case xmlsplit.StreamStart:
			c.header = false
		case xmlsplit.Space:
			if evStart >= 0 { // never held back: all of it is in seg
				keep += copy(data[keep:], seg[start:evStart])
				start = at
			}
		}
	}
	keep += copy(data[keep:], seg[start:])
	if err != nil {
		c.dead = true
	}
	return keep
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// startTLS is mellium's server-side STARTTLS with one difference: the
// encrypted stream is read through a spaceConn as well, and the plain one
// (plain, the session's connection so far) is left behind.
func startTLS(cfg *tls.Config, plain *spaceConn) xmpp.StreamFeature {
	f := xmpp.StartTLS(cfg)
	f.Negotiate = func(_ context.Context, _ *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
		if len(plain.out) > 0 || len(plain.hold) > 0 {
			// The client must wait for <proceed/>: bytes after <starttls/>
			// would be read as TLS.
			return 0, nil, fmt.Errorf("miniserver: data after <starttls/>")
		}
		if _, err := io.WriteString(plain.Conn, "<proceed xmlns='"+nsTLS+"'/>"); err != nil {
			return 0, nil, err
		}
		return xmpp.Secure, newSpaceConn(tls.Server(plain.Conn, cfg)), nil
	}
	return f
}

const nsTLS = "urn:ietf:params:xml:ns:xmpp-tls"
