package wswire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"crier/internal/boshwire"
	"crier/internal/xmlsplit"
)

// Namespaces of RFC 7395 and RFC 6120.
const (
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsStream  = "http://etherx.jabber.org/streams"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
)

// StreamConfig says which end a StreamConn is.
type StreamConfig struct {
	// Client is true on the client's end: it sends <open to/> and reads
	// the server's <open from id/>.
	Client bool
	// StripStartTLS takes <starttls/> out of the stream features read.
	StripStartTLS bool
	// PingInterval, when positive, sends a WebSocket ping that often (for
	// proxies that end idle connections); the XMPP keepalive above still
	// decides whether the peer is alive.
	PingInterval time.Duration
}

// Stats counts what a StreamConn did.
type Stats struct {
	MessagesSent     int64 // text messages sent (<open/> and <close/> included)
	MessagesReceived int64 // text messages received
	BadMessages      int64 // messages refused: not one element, binary, too large, bad UTF-8
	PingsSent        int64 // pings sent (keepalive and whitespace)
	PongsReceived    int64 // pongs received
}

// StreamConn is an XMPP stream over a WebSocket Conn with the framing of
// RFC 7395, seen as a net.Conn: what is written is the byte stream of an
// XMPP session (stream headers, elements, the stream end) and what is read
// is one, made from the messages received. It implements io.ByteReader,
// so a decoder made after a stream restart reads nothing ahead. Reads
// happen on one goroutine at a time; Write is safe for concurrent use.
type StreamConn struct {
	ws  *Conn
	cfg StreamConfig

	// Read side.
	rbuf []byte
	roff int
	rerr error // sticky: returned once rbuf is drained
	// split follows the messages as the children of one stream: each
	// must leave it between elements. It keeps only namespace
	// declarations; an <open/>'s attributes are read again in full.
	split     xmlsplit.Splitter
	splitOpen bool
	ended     atomic.Bool  // <close/> received
	seeOther  atomic.Value // string: the see-other-uri of that <close/>
	header    bool         // a stream header was delivered since the last <open/>

	// Write side.
	wmu      sync.Mutex
	cut      boshwire.Cutter
	werr     error
	closedUp atomic.Bool // <close/> sent

	closeOnce sync.Once
	done      chan struct{}

	nSent, nRecv, nBad, nPing, nPong atomic.Int64
}

// Interface guards.
var (
	_ net.Conn      = (*StreamConn)(nil)
	_ io.ByteReader = (*StreamConn)(nil)
)

// NewStreamConn returns the XMPP stream on ws.
func NewStreamConn(ws *Conn, cfg StreamConfig) *StreamConn {
	c := &StreamConn{ws: ws, cfg: cfg, done: make(chan struct{})}
	ws.OnPong(func() { c.nPong.Add(1) })
	if cfg.PingInterval > 0 {
		go c.pinger(cfg.PingInterval)
	}
	return c
}

// Stats returns the counters so far.
func (c *StreamConn) Stats() Stats {
	return Stats{
		MessagesSent:     c.nSent.Load(),
		MessagesReceived: c.nRecv.Load(),
		BadMessages:      c.nBad.Load(),
		PingsSent:        c.nPing.Load(),
		PongsReceived:    c.nPong.Load(),
	}
}

// StatsOf returns the counters of c if it is a StreamConn or wraps one
// (looking through NetConn() net.Conn methods, as *tls.Conn has).
func StatsOf(c net.Conn) (Stats, bool) {
	for range 8 {
		switch w := c.(type) {
		case *StreamConn:
			return w.Stats(), true
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		default:
			return Stats{}, false
		}
	}
	return Stats{}, false
}

// NetConn returns the connection under the WebSocket.
func (c *StreamConn) NetConn() net.Conn { return c.ws.NetConn() }

func (c *StreamConn) pinger(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if c.ws.Ping(nil) != nil {
				return
			}
			c.nPing.Add(1)
		}
	}
}

// Read reads the XMPP stream made from the messages received.
func (c *StreamConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := c.fill(); err != nil {
		return 0, err
	}
	n := copy(p, c.rbuf[c.roff:])
	c.roff += n
	return n, nil
}

// ReadByte reads one byte of the stream.
func (c *StreamConn) ReadByte() (byte, error) {
	if err := c.fill(); err != nil {
		return 0, err
	}
	b := c.rbuf[c.roff]
	c.roff++
	return b, nil
}

// fill makes sure rbuf holds an unread byte, reading messages as needed.
func (c *StreamConn) fill() error {
	for c.roff >= len(c.rbuf) {
		if c.rerr != nil {
			return c.rerr
		}
		c.rbuf, c.roff = c.rbuf[:0], 0
		msg, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && c.ws.broken == nil {
				return err // between messages: reading may go on
			}
			c.rerr = c.readErr(err)
			continue
		}
		c.nRecv.Add(1)
		if err := c.translate(msg); err != nil {
			c.nBad.Add(1)
			c.rerr = c.ws.fail(CloseInvalidData, err)
		}
	}
	return nil
}

// readErr says why the stream ended, given why the WebSocket read failed.
func (c *StreamConn) readErr(err error) error {
	var ce *CloseError
	switch {
	case c.ended.Load() && (errors.As(err, &ce) || errors.Is(err, ErrClosedByPeer)):
		return io.EOF // after <close/>: the end of the stream
	case errors.As(err, &ce):
		// An unexpected end, as a cut connection is: a server keeps a
		// stream-managed session for resumption.
		return fmt.Errorf("%w with %w before <close/>: %w", ErrClosedByPeer, err, io.ErrUnexpectedEOF)
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrProtocol):
		c.nBad.Add(1)
	}
	return err
}

// translate appends what message msg means for the XMPP stream to rbuf.
func (c *StreamConn) translate(msg []byte) error {
	ev, err := c.element(msg)
	if err != nil {
		return err
	}
	if ev == nil {
		return nil // whitespace only: nothing for the stream
	}
	if ev.Name.Space == "" && hasDefaultNS(ev.Attr, NSFraming) {
		switch ev.Name.Local {
		case "open":
			var full xmlsplit.Splitter
			_, _ = full.Feed(streamPrefix)
			evs, err := full.Feed(ev.Raw)
			if err != nil || len(evs) != 1 {
				return fmt.Errorf("%w: unreadable <open/>", ErrFraming)
			}
			c.rbuf = appendHeader(c.rbuf, evs[0].Attr)
			c.header = true
			return nil
		case "close":
			var full xmlsplit.Splitter
			_, _ = full.Feed(streamPrefix)
			if evs, err := full.Feed(ev.Raw); err == nil && len(evs) == 1 {
				for _, a := range evs[0].Attr {
					if a.Name.Space == "" && a.Name.Local == "see-other-uri" {
						c.seeOther.Store(a.Value)
					}
				}
			}
			c.rbuf = append(c.rbuf, "</stream:stream>"...)
			c.ended.Store(true)
			return nil
		}
	}
	if !c.header {
		return fmt.Errorf("%w: <%s> before <open/>", ErrFraming, ev.Name.Local)
	}
	raw := ev.Raw
	if c.cfg.StripStartTLS && ev.Name.Local == "features" {
		raw = StripStartTLS(raw)
	}
	c.rbuf = append(c.rbuf, raw...)
	return nil
}

// element checks that msg is exactly one complete element (whitespace
// around it allowed) and returns it; nil for a message of whitespace.
func (c *StreamConn) element(msg []byte) (*xmlsplit.Event, error) {
	if !c.splitOpen {
		c.split.NamespacesOnly = true
		if _, err := c.split.Feed(streamPrefix); err != nil {
			return nil, err
		}
		c.splitOpen = true
	}
	evs, err := c.split.Feed(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFraming, err)
	}
	var el *xmlsplit.Event
	for i := range evs {
		switch evs[i].Kind {
		case xmlsplit.Space:
		case xmlsplit.Element:
			if el != nil {
				return nil, fmt.Errorf("%w: more than one element in a message", ErrFraming)
			}
			el = &evs[i]
		default:
			return nil, fmt.Errorf("%w: a %s in a message", ErrFraming, evs[i].Kind)
		}
	}
	if c.split.Buffered() != 0 {
		return nil, fmt.Errorf("%w: incomplete element", ErrFraming)
	}
	return el, nil
}

// streamPrefix lets the splitter take a message as the child of a stream.
var streamPrefix = []byte("<stream:stream xmlns:stream='" + nsStream + "'>")

// hasDefaultNS reports whether attrs declare ns as the default namespace.
func hasDefaultNS(attrs []xml.Attr, ns string) bool {
	for _, a := range attrs {
		if a.Name.Space == "" && a.Name.Local == "xmlns" {
			return a.Value == ns
		}
	}
	return false
}

// appendHeader appends the stream header that an <open/> with attrs
// stands for.
func appendHeader(b []byte, attrs []xml.Attr) []byte {
	b = append(b, "<stream:stream xmlns='jabber:client' xmlns:stream='"+nsStream+"'"...)
	for _, a := range attrs {
		if isNSDecl(a.Name) {
			continue
		}
		b = appendAttr(b, a)
	}
	return append(b, '>')
}

// appendOpen appends the <open/> that a stream header with attrs stands
// for.
func appendOpen(b []byte, attrs []xml.Attr) []byte {
	b = append(b, "<open xmlns='"+NSFraming+"'"...)
	for _, a := range attrs {
		if isNSDecl(a.Name) {
			continue
		}
		b = appendAttr(b, a)
	}
	return append(b, "/>"...)
}

func isNSDecl(n xml.Name) bool {
	return (n.Space == "" && n.Local == "xmlns") || n.Space == "xmlns"
}

func appendAttr(b []byte, a xml.Attr) []byte {
	b = append(b, ' ')
	if a.Name.Space != "" {
		b = append(b, a.Name.Space...)
		b = append(b, ':')
	}
	b = append(b, a.Name.Local...)
	b = append(b, "='"...)
	b = append(b, boshwire.AttrEscape(a.Value)...)
	return append(b, '\'')
}

// Write cuts p into the top-level pieces of the stream and sends each as
// one message (see the package documentation). An element cut across
// several Writes goes out once complete, as one message in one frame.
func (c *StreamConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	evs, err := c.cut.Feed(p)
	for _, ev := range evs {
		if werr := c.send(ev); werr != nil {
			c.werr = werr
			return 0, werr
		}
	}
	if err != nil {
		c.werr = fmt.Errorf("%w: what was written is not an XMPP stream: %w", ErrFraming, err)
		return 0, c.werr
	}
	return len(p), nil
}

// send writes the message for one piece of the outgoing stream.
func (c *StreamConn) send(ev xmlsplit.Event) error {
	var msg []byte
	switch ev.Kind {
	case xmlsplit.StreamStart:
		msg = appendOpen(nil, ev.Attr)
	case xmlsplit.StreamEnd:
		msg = []byte("<close xmlns='" + NSFraming + "'/>")
		c.closedUp.Store(true)
	case xmlsplit.Space:
		c.nPing.Add(1)
		return c.ws.Ping(nil)
	case xmlsplit.Element:
		msg = standalone(ev)
	default:
		return nil
	}
	c.nSent.Add(1)
	return c.ws.WriteText(msg)
}

// standalone returns the element of ev as an XML document of its own: a
// stanza gets xmlns='jabber:client' and a stream: element the prefix's
// declaration, when they lack them.
func standalone(ev xmlsplit.Event) []byte {
	if ev.Name.Space != "stream" {
		return boshwire.WithClientNS(ev)
	}
	for _, a := range ev.Attr {
		if a.Name.Space == "xmlns" && a.Name.Local == "stream" {
			return ev.Raw
		}
	}
	i := bytes.IndexByte(ev.Raw, '<')
	at := i + 1 + len("stream:") + len(ev.Name.Local)
	if i < 0 || at > len(ev.Raw) {
		return ev.Raw
	}
	out := make([]byte, 0, len(ev.Raw)+64)
	out = append(out, ev.Raw[:at]...)
	out = append(out, " xmlns:stream='"+nsStream+"'"...)
	return append(out, ev.Raw[at:]...)
}

// SeeOtherURI returns the see-other-uri of the <close/> the server ended
// the stream with (RFC 7395 §3.6.1: the client is to connect there
// instead), or "".
func (c *StreamConn) SeeOtherURI() string {
	u, _ := c.seeOther.Load().(string)
	return u
}

// Closed reports whether the XMPP stream was closed with <close/> in
// either direction.
func (c *StreamConn) Closed() bool { return c.closedUp.Load() || c.ended.Load() }

// Close ends the connection: with a close frame when the XMPP stream was
// closed (<close/> sent or received), else at once, as a network failure
// would. It is safe to call more than once.
func (c *StreamConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		if c.Closed() {
			_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
			_ = c.ws.WriteClose(CloseNormal, "")
		}
		err = c.ws.NetConn().Close()
	})
	return err
}

// LocalAddr returns the local address of the connection.
func (c *StreamConn) LocalAddr() net.Addr { return c.ws.NetConn().LocalAddr() }

// RemoteAddr returns the peer's address.
func (c *StreamConn) RemoteAddr() net.Addr { return c.ws.NetConn().RemoteAddr() }

// SetDeadline sets both deadlines of the connection.
func (c *StreamConn) SetDeadline(t time.Time) error { return c.ws.NetConn().SetDeadline(t) }

// SetReadDeadline sets the read deadline of the connection.
func (c *StreamConn) SetReadDeadline(t time.Time) error { return c.ws.NetConn().SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the connection.
func (c *StreamConn) SetWriteDeadline(t time.Time) error { return c.ws.NetConn().SetWriteDeadline(t) }

// StripStartTLS returns the stream features raw without a <starttls/>
// child: over WebSocket (and BOSH) the connection under the stream carries
// the security, and a server that offers STARTTLS there must not be
// obeyed.
func StripStartTLS(raw []byte) []byte {
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	var cuts [][2]int64
	var start int64
	for {
		before := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Space == nsTLS && t.Name.Local == "starttls" {
				start = before
			}
		case xml.EndElement:
			if depth == 2 && t.Name.Space == nsTLS && t.Name.Local == "starttls" {
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
