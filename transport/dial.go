package transport

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"time"

	"mellium.im/xmpp/dial"
	"mellium.im/xmpp/stream"
)

// dialTCP opens the TCP connection and secures it as o.TLS says. It
// returns a connection ready for the first stream header of the encrypted
// (or, for tls "none", plain) stream.
func dialTCP(ctx context.Context, o Options) (net.Conn, bool, error) {
	if o.TLS == TLSNone {
		if o.Address == "" {
			return nil, false, fmt.Errorf("%w: tls none needs an explicit loopback address", ErrInsecure)
		}
		host, _, err := net.SplitHostPort(o.Address)
		if err != nil {
			return nil, false, fmt.Errorf("%w: address %q: %w", ErrConfig, o.Address, err)
		}
		if err := requireLoopback(ctx, o.Resolver, host); err != nil {
			return nil, false, err
		}
	}

	var (
		c   net.Conn
		err error
	)
	if o.Address != "" {
		d := net.Dialer{Resolver: o.Resolver}
		c, err = d.DialContext(ctx, "tcp", o.Address)
	} else {
		// SRV lookup. For starttls only _xmpp-client is asked (falling back
		// to domain:5222); for direct TLS mellium tries _xmpps-client first
		// (falling back to domain:5223), then _xmpp-client, where STARTTLS
		// is then done below.
		cfg := o.TLSConfig.Clone()
		if len(cfg.NextProtos) == 0 {
			cfg.NextProtos = []string{"xmpp-client"}
		}
		d := dial.Dialer{Dialer: net.Dialer{Resolver: o.Resolver}, NoTLS: o.TLS != TLSDirect, TLSConfig: cfg}
		c, err = d.Dial(ctx, "tcp", o.JID)
	}
	if err != nil {
		return nil, false, classify(ctx, phaseDial, err, nil)
	}

	switch o.TLS {
	case TLSNone:
		// The name was checked; check what it actually reached too.
		if a, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			c.Close()
			return nil, false, fmt.Errorf("%w: tls none but %s is not a loopback address", ErrInsecure, c.RemoteAddr())
		}
		return c, false, nil
	case TLSDirect:
		if tc, ok := c.(*tls.Conn); ok {
			return tc, true, nil // TLS done by the SRV dialer
		}
		if o.Address != "" {
			tc, err := handshake(ctx, c, directConfig(o.TLSConfig))
			return tc, err == nil, err
		}
	}
	tc, err := startTLS(ctx, c, o.JID.Domainpart(), o.TLSConfig)
	return tc, err == nil, err
}

func directConfig(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"xmpp-client"} // XEP-0368
	}
	return cfg
}

// handshake runs the TLS client handshake over c within ctx.
func handshake(ctx context.Context, c net.Conn, cfg *tls.Config) (net.Conn, error) {
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, classify(ctx, phaseTLS, err, nil)
	}
	return tc, nil
}

// requireLoopback refuses hosts that are not (or do not resolve only to)
// loopback addresses.
func requireLoopback(ctx context.Context, r *net.Resolver, host string) error {
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s is not a loopback address", ErrInsecure, host)
		}
		return nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return classify(ctx, phaseDial, err, nil)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%w: %s resolves to %s, not a loopback address", ErrInsecure, host, a.IP)
		}
	}
	return nil
}

// aLongTimeAgo is a deadline in the past, to unblock pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

// startTLS runs RFC 6120 §5 on the plain connection c: stream header,
// features, <starttls/>, <proceed/>, then the TLS handshake. The server
// must offer STARTTLS; there is no fallback to plain text.
func startTLS(ctx context.Context, c net.Conn, domain string, cfg *tls.Config) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(aLongTimeAgo) })
	err := startTLSExchange(c, domain)
	stop()
	if err != nil {
		c.Close()
		return nil, classify(ctx, phaseNegotiate, err, nil)
	}
	_ = c.SetDeadline(time.Time{})
	return handshake(ctx, c, cfg)
}

func startTLSExchange(c net.Conn, domain string) error {
	var to []byte
	if err := xml.EscapeText(sliceWriter{&to}, []byte(domain)); err != nil {
		return err
	}
	header := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream +
		"' version='1.0' xml:lang='en' to='" + string(to) + "'>"
	if _, err := io.WriteString(c, header); err != nil {
		return err
	}
	// byteReader reads one byte at a time, so the decoder cannot consume
	// the first bytes of the TLS handshake.
	d := xml.NewDecoder(&byteReader{r: c})

	start, err := nextStart(d)
	if err != nil {
		return err
	}
	if start.Name.Space != nsStream || start.Name.Local != "stream" {
		return fmt.Errorf("%w: expected a stream header, got <%s>", ErrProtocol, start.Name.Local)
	}
	start, err = nextStart(d)
	if err != nil {
		return err
	}
	if err := streamErr(d, start); err != nil {
		return err
	}
	if start.Name.Space != nsStream || start.Name.Local != "features" {
		return fmt.Errorf("%w: expected stream features, got <%s>", ErrProtocol, start.Name.Local)
	}
	var features struct {
		StartTLS *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	}
	if err := d.DecodeElement(&features, &start); err != nil {
		return err
	}
	if features.StartTLS == nil {
		_, _ = io.WriteString(c, "</stream:stream>")
		return fmt.Errorf("%w: server does not offer STARTTLS", ErrTLS)
	}
	if _, err := io.WriteString(c, "<starttls xmlns='"+nsTLS+"'/>"); err != nil {
		return err
	}
	start, err = nextStart(d)
	if err != nil {
		return err
	}
	if err := streamErr(d, start); err != nil {
		return err
	}
	switch {
	case start.Name.Space == nsTLS && start.Name.Local == "proceed":
		return d.Skip()
	case start.Name.Space == nsTLS && start.Name.Local == "failure":
		return fmt.Errorf("%w: server refused STARTTLS", ErrTLS)
	}
	return fmt.Errorf("%w: expected <proceed/>, got <%s>", ErrProtocol, start.Name.Local)
}

// nextStart returns the next start element, skipping the XML declaration
// and whitespace. Anything more than a few such tokens is a protocol error.
func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for range 16 {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, fmt.Errorf("%w: server closed its stream", ErrProtocol)
		}
	}
	return xml.StartElement{}, fmt.Errorf("%w: no element from the server", ErrProtocol)
}

// streamErr decodes start as a stream error if it is one.
func streamErr(d *xml.Decoder, start xml.StartElement) error {
	if start.Name.Space != nsStream || start.Name.Local != "error" {
		return nil
	}
	var se stream.Error
	if err := d.DecodeElement(&se, &start); err != nil {
		return err
	}
	return se
}

type byteReader struct {
	r   io.Reader
	buf [1]byte
}

func (b *byteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return b.r.Read(p[:1])
}

func (b *byteReader) ReadByte() (byte, error) {
	for range 8 { // a Read may legitimately return 0 bytes and no error
		n, err := b.r.Read(b.buf[:])
		if n == 1 {
			return b.buf[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, io.ErrNoProgress
}

type sliceWriter struct{ b *[]byte }

func (w sliceWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}
