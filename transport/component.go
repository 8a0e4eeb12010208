package transport

// The XEP-0114 component connection ("jabber:component:accept").
//
// mellium v0.22.0 has a component package, but it does not fit the session
// model the rest of this package gives the bot, so crier has its own:
//
//   - mellium's negotiator leaves the stream in the jabber:component:accept
//     namespace, so the bot's handlers (registered on jabber:client, as for
//     every other transport) would see none of the stanzas, and mellium's
//     own answer to an unhandled iq (service-unavailable) and its matching
//     of iq results only know jabber:client and jabber:server;
//   - it reads with a decoder of its own that fails on whitespace between
//     the server's stream header and <handshake/>, takes one XML declaration
//     at most and cannot tell a refused secret (a not-authorized stream
//     error) from a broken stream;
//   - it has no TLS, no loopback rule for plain text and no timeout.
//
// Here the handshake is done on the socket before mellium sees anything,
// and the connection handed to mellium (under the tap, as BOSH and
// WebSocket are) starts with a stream header in jabber:client: stanzas from
// the server carry no namespace of their own (they are in the stream's
// default one), so mellium, the tap and the bot read them as client
// stanzas. What mellium writes in jabber:client goes out with that
// declaration taken off each stanza (outScan), so that it is in the
// stream's own namespace.
//
// XEP-0114 has no stream features: no STARTTLS (TLS is "direct", from the
// first byte, or "none" towards a loopback address), and usually no stream
// management, so deliveries are confirmed by a ping to the server (the
// bot's barrier when Conn.Barrier returns ErrNoSM). A server that offers
// stream management to components in stream features gets <enable/> as a
// client's server does (the tap sees the features), and the barrier is
// then <r/>; a lost component session is never resumed.

import (
	"bytes"
	"context"
	"crypto/sha1" // #nosec G505 -- XEP-0114 defines the handshake as SHA-1
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"crier/internal/xmlsplit"
)

// TransportComponent is an XEP-0114 external component connection.
const TransportComponent = "component"

// NSComponent is the namespace of an XEP-0114 component stream.
const NSComponent = "jabber:component:accept"

// maxHandshake bounds what the server may send before <handshake/>.
const maxHandshake = 64 << 10

// dialComponent opens the component connection to o.Address (TLS from the
// first byte, or plain text towards a loopback address only) and runs the
// XEP-0114 handshake. The connection it returns is ready for mellium: it
// reads as a jabber:client stream whose header has already arrived.
func dialComponent(ctx context.Context, o Options) (net.Conn, bool, error) {
	if o.Address == "" {
		return nil, false, fmt.Errorf("%w: a component connection needs the server's component address", ErrConfig)
	}
	host, _, err := net.SplitHostPort(o.Address)
	if err != nil {
		return nil, false, fmt.Errorf("%w: address %q: %w", ErrConfig, o.Address, err)
	}
	if o.TLS == TLSNone {
		if err := requireLoopback(ctx, o.Resolver, host); err != nil {
			return nil, false, err
		}
	}
	d := net.Dialer{Resolver: o.Resolver, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", o.Address)
	if err != nil {
		return nil, false, classify(ctx, phaseDial, err, nil)
	}
	secure := false
	if o.TLS == TLSNone {
		if a, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			c.Close()
			return nil, false, fmt.Errorf("%w: tls none but %s is not a loopback address", ErrInsecure, c.RemoteAddr())
		}
	} else {
		cfg := o.TLSConfig.Clone()
		if cfg.ServerName == "" || cfg.ServerName == o.JID.Domainpart() {
			// The certificate is the server's, not the component's.
			cfg.ServerName = host
		}
		c, err = handshake(ctx, c, cfg)
		if err != nil {
			return nil, false, err
		}
		secure = true
	}
	cc, err := componentHandshake(ctx, c, o.JID.Domainpart(), o.Password)
	if err != nil {
		c.Close()
		return nil, false, err
	}
	return cc, secure, nil
}

// componentHandshake runs XEP-0114 §3 on c: the stream header in
// jabber:component:accept, the server's header with its stream id, the
// handshake (hex SHA-1 of the id and the secret) and the server's empty
// <handshake/>. A refused secret is ErrAuth.
func componentHandshake(ctx context.Context, c net.Conn, domain, secret string) (*componentConn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(aLongTimeAgo) })
	rest, feats, id, err := componentExchange(c, domain, secret)
	stop()
	if err != nil {
		return nil, classify(ctx, phaseNegotiate, err, nil)
	}
	_ = c.SetDeadline(time.Time{})
	var esc []byte
	_ = xml.EscapeText(sliceWriter{&esc}, []byte(domain))
	var escID []byte
	_ = xml.EscapeText(sliceWriter{&escID}, []byte(id))
	header := "<stream:stream xmlns='" + nsClient + "' xmlns:stream='" + nsStream +
		"' from='" + string(esc) + "' id='" + string(escID) + "'>"
	return &componentConn{Conn: c, pre: append([]byte(header), rest...), dropHeader: true, feats: feats}, nil
}

// componentExchange writes and reads the handshake. It returns the bytes
// that came after the server's <handshake/> (the first stanzas, read
// ahead), the stream features the server sent before it, if any, and the
// stream id.
func componentExchange(c net.Conn, domain, secret string) (rest, feats []byte, id string, err error) {
	var to []byte
	if err := xml.EscapeText(sliceWriter{&to}, []byte(domain)); err != nil {
		return nil, nil, "", err
	}
	header := "<?xml version='1.0'?><stream:stream xmlns='" + NSComponent + "' xmlns:stream='" + nsStream +
		"' to='" + string(to) + "'>"
	if _, err := io.WriteString(c, header); err != nil {
		return nil, nil, "", err
	}
	var (
		sp     xmlsplit.Splitter
		buf    [4096]byte
		total  int
		opened bool
	)
	sp.Max, sp.MaxDepth, sp.MaxAttrs = maxHandshake, 64, 64
	for {
		n, rerr := c.Read(buf[:])
		total += n
		if total > maxHandshake {
			return nil, nil, "", fmt.Errorf("%w: more than %d bytes before the handshake answer", ErrProtocol, maxHandshake)
		}
		p := buf[:n]
		at := -sp.Buffered()
		evs, ferr := sp.Feed(p)
		for _, ev := range evs {
			at += len(ev.Raw)
			switch ev.Kind {
			case xmlsplit.Space:
			case xmlsplit.StreamStart:
				if resolve(ev.Name, ev.Attr, "") != (xml.Name{Space: nsStream, Local: "stream"}) {
					return nil, nil, "", fmt.Errorf("%w: expected a stream header, got <%s>", ErrProtocol, ev.Name.Local)
				}
				if ns := defaultNS(ev.Attr); ns != NSComponent {
					return nil, nil, "", fmt.Errorf("%w: the server answered with a %s stream, not a component stream", ErrProtocol, ns)
				}
				for _, a := range ev.Attr {
					if a.Name.Space == "" && a.Name.Local == "id" {
						id = a.Value
					}
				}
				if id == "" {
					return nil, nil, "", fmt.Errorf("%w: the server's stream header has no id", ErrProtocol)
				}
				opened = true
				h := sha1.Sum([]byte(id + secret)) // #nosec G401 -- XEP-0114
				if _, err := io.WriteString(c, "<handshake>"+hex.EncodeToString(h[:])+"</handshake>"); err != nil {
					return nil, nil, "", err
				}
			case xmlsplit.StreamEnd:
				return nil, nil, "", fmt.Errorf("%w: the server closed the stream during the handshake", ErrProtocol)
			case xmlsplit.Element:
				name := resolve(ev.Name, ev.Attr, NSComponent)
				switch {
				case !opened:
					return nil, nil, "", fmt.Errorf("%w: element before the stream header", ErrProtocol)
				case name.Space == nsStream && name.Local == "error":
					var se stream.Error
					if xml.Unmarshal(ev.Raw, &se) == nil && se.Err == "not-authorized" {
						return nil, nil, "", fmt.Errorf("%w: the server refused the component secret for %s: %s", ErrAuth, domain, streamErrorText(se))
					}
					return nil, nil, "", fmt.Errorf("%w: stream error from server: %s", ErrProtocol, streamErrorText(se))
				case name.Space == NSComponent && name.Local == "handshake":
					if at < 0 {
						at = 0
					}
					return append([]byte(nil), p[at:]...), feats, id, nil
				case name.Space == nsStream && name.Local == "features":
					feats = append(feats, ev.Raw...)
				default:
					return nil, nil, "", fmt.Errorf("%w: expected <handshake/>, got <%s>", ErrProtocol, name.Local)
				}
			}
		}
		if ferr != nil {
			return nil, nil, "", fmt.Errorf("%w: %w", ErrProtocol, ferr)
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) && opened {
				// Some servers close the socket on a wrong secret
				// without a stream error.
				return nil, nil, "", fmt.Errorf("%w: the server closed the connection after the handshake for %s (wrong secret?)", ErrAuth, domain)
			}
			return nil, nil, "", rerr
		}
	}
}

// componentConn is the socket of a component session once the handshake
// is done. Reads first return the synthetic stream header (and what was
// read ahead during the handshake), then the socket's bytes.
type componentConn struct {
	net.Conn
	mu  sync.Mutex
	pre []byte
	// dropHeader: the next write is the stream header that mellium's
	// side writes for the tap (componentNegotiator); the real one went
	// out with the handshake.
	dropHeader bool
	// feats are the stream features the server sent before <handshake/>
	// (XEP-0114 has none): shown to the tap and stream management, not
	// to mellium, which ends an established session on them.
	feats []byte
	out   outScan
	wbuf  []byte
}

// Write writes p, except the synthetic stream header, with the stanzas
// moved into the component stream's namespace (see outScan). Writes are
// serialised by the tap above.
func (c *componentConn) Write(p []byte) (int, error) {
	n := len(p)
	c.mu.Lock()
	drop := c.dropHeader
	c.dropHeader = false
	c.mu.Unlock()
	if drop {
		if !bytes.HasPrefix(p, []byte(componentOutHeader)) {
			return 0, fmt.Errorf("%w: expected the stream header first", ErrProtocol)
		}
		p = p[len(componentOutHeader):]
	}
	c.wbuf = c.out.feed(p, c.wbuf[:0])
	if len(c.wbuf) == 0 {
		return n, nil
	}
	if _, err := c.Conn.Write(c.wbuf); err != nil {
		return 0, err
	}
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // do not keep a large stanza's buffer
	}
	return n, nil
}

// nsClientAttrs are the namespace declarations mellium's encoder puts on
// each stanza, in both quotings.
var nsClientAttrs = [][]byte{[]byte(` xmlns="` + nsClient + `"`), []byte(` xmlns='` + nsClient + `'`)}

// outScan follows the outgoing bytes of a component stream and takes the
// jabber:client declaration off each top-level element, so that stanzas
// are in the stream's default namespace (jabber:component:accept), as
// XEP-0114 has them. An explicit jabber:client is not the same to every
// server: Prosody routes such stanzas as unknown elements and answers
// service-unavailable. The bytes are the XML encoder's (markup characters
// inside text and attribute values escaped), so the scanner only needs to
// tell tags apart and follow their nesting.
type outScan struct {
	depth   int  // of the next byte, 0 between stanzas
	inTag   bool // inside <...>
	closing bool // the tag is an end tag
	neutral bool // <?...?> or <!...>: no nesting
	slash   bool // the previous byte of the tag was '/'
	quote   byte // inside an attribute value quoted by it
	hold    []byte
}

// feed appends to out the bytes of p ready to be written; a top-level start
// tag cut short before its declaration is complete is held for the next
// call.
func (s *outScan) feed(p, out []byte) []byte {
	if len(s.hold) > 0 {
		p = append(s.hold, p...)
		s.hold = nil
	}
	from := 0
	for i := 0; i < len(p); i++ {
		b := p[i]
		if s.inTag {
			if s.quote != 0 {
				if b == s.quote {
					s.quote = 0
				}
				s.slash = false
				continue
			}
			switch b {
			case '"', '\'':
				s.quote = b
			case '>':
				s.inTag = false
				switch {
				case s.closing:
					s.depth--
				case s.neutral, s.slash:
				default:
					s.depth++
				}
			}
			s.slash = b == '/'
			continue
		}
		if b != '<' {
			continue
		}
		if i+1 >= len(p) {
			s.hold = append(s.hold, p[i:]...)
			return append(out, p[from:i]...)
		}
		s.inTag, s.closing, s.neutral, s.slash = true, p[i+1] == '/', p[i+1] == '?' || p[i+1] == '!', false
		if s.depth != 0 || s.closing || s.neutral {
			continue
		}
		// A stanza starts: find the end of its name.
		j := i + 1
		for j < len(p) && p[j] != ' ' && p[j] != '>' && p[j] != '/' && p[j] != '\t' && p[j] != '\n' && p[j] != '\r' {
			j++
		}
		rest := p[j:]
		cut := 0
		for _, a := range nsClientAttrs {
			if bytes.HasPrefix(rest, a) {
				cut = len(a)
				break
			}
			if len(rest) < len(a) && bytes.HasPrefix(a, rest) {
				// Cut short where the declaration may be: wait for more.
				s.inTag = false
				s.hold = append(s.hold, p[i:]...)
				return append(out, p[from:i]...)
			}
		}
		if cut > 0 {
			out = append(out, p[from:j]...)
			from = j + cut
		}
		i = j - 1
	}
	return append(out, p[from:]...)
}

// componentOutHeader is the stream header the tap sees going out: the
// stanzas that follow are in jabber:client, as mellium writes them.
const componentOutHeader = "<stream:stream xmlns='" + nsClient + "' xmlns:stream='" + nsStream + "'>"

// Read returns the pending bytes first.
func (c *componentConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// ConnectionState is deliberately absent (see tapConn), and the TLS
// connection under a componentConn is reached through NetConn.

// NetConn returns the socket (or TLS connection) under the stream.
func (c *componentConn) NetConn() net.Conn { return c.Conn }

// componentNegotiator is the mellium side of a component session: the
// handshake is done, so it only reads the stream header that
// componentConn presents (so that the decoder knows the stream's default
// namespace) and declares the session ready.
func componentNegotiator(domain jid.JID) xmpp.Negotiator {
	return func(_ context.Context, in, out *stream.Info, s *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, any, error) {
		r := s.TokenReader()
		defer r.Close()
		for range 8 {
			tok, err := r.Token()
			if err != nil {
				return 0, nil, nil, err
			}
			start, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			if start.Name.Space != nsStream || start.Name.Local != "stream" {
				return 0, nil, nil, fmt.Errorf("%w: expected the stream header, got <%s>", ErrProtocol, start.Name.Local)
			}
			if err := in.FromStartElement(start); err != nil {
				return 0, nil, nil, err
			}
			// The tap follows the outgoing stream from a header; the
			// connection below does not send it on.
			if _, err := io.WriteString(s.Conn(), componentOutHeader); err != nil {
				return 0, nil, nil, err
			}
			in.XMLNS = nsClient
			out.XMLNS = nsClient
			out.To = domain
			out.From = domain
			return xmpp.Ready | xmpp.Authn, nil, nil, nil
		}
		return 0, nil, nil, fmt.Errorf("%w: no stream header", ErrProtocol)
	}
}

// negotiateComponent makes the mellium session of a component connection.
func negotiateComponent(ctx context.Context, o Options, raw net.Conn, secure bool) (*Conn, error) {
	tc := newTapConn(raw, o.Tap, o.Logger)
	tc.onStop = o.OnTapStop
	if cc, ok := raw.(*componentConn); ok && len(cc.feats) > 0 {
		// A server that offers stream management to components: the
		// tap's state machine sees the offer as on a client stream, and
		// Connect enables it.
		name := xml.Name{Space: nsStream, Local: "features"}
		tc.sm.seeIn(name, cc.feats)
		if o.Tap != nil {
			o.Tap.Element(In, name, cc.feats)
		}
	}
	stop := context.AfterFunc(ctx, func() { tc.Close() })
	domain := o.JID.Domain()
	sess, err := xmpp.NewSession(ctx, domain, domain, tc, xmpp.Secure, componentNegotiator(domain))
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		tc.Close()
		return nil, classify(ctx, phaseNegotiate, err, tc.obs)
	}
	return &Conn{
		Session:   sess,
		JID:       domain,
		Transport: TransportComponent,
		Mechanism: "handshake",
		Secure:    secure,
		tc:        tc,
	}, nil
}

// componentTLS checks the TLS mode of a component connection: XEP-0114
// has no STARTTLS.
func componentTLS(mode string) (string, error) {
	switch mode {
	case "", TLSDirect:
		return TLSDirect, nil
	case TLSNone:
		return TLSNone, nil
	}
	return "", fmt.Errorf("%w: tls %q: a component connection has no STARTTLS (XEP-0114); use \"direct\", or \"none\" towards a loopback address", ErrConfig, mode)
}
