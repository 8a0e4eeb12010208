package xmpptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crier/internal/boshwire"
	"crier/internal/xmlsplit"
)

// SpaceProxyOptions configures StartSpaceProxy.
type SpaceProxyOptions struct {
	// Upstream is the server's client port, host:port.
	Upstream string
	// TLS is "starttls" (the default: the proxy talks plain XML until
	// <proceed/>, then terminates TLS on both sides), "direct" (TLS from
	// the first byte on both sides) or "none" (plain all along).
	TLS string
	// RootCAs verifies the upstream server's certificate.
	RootCAs *x509.CertPool
	// ServerName is the name checked in the upstream certificate;
	// "localhost" when empty.
	ServerName string
	// Space is what the proxy writes after every top-level piece; "\n  "
	// when empty. It must be whitespace.
	Space string
	// Sides says whose output gets the whitespace: "server" (the default:
	// what the server sends), "client" or "both".
	Sides string
}

// SpaceProxy is a loopback TCP proxy between an XMPP client and server that
// writes whitespace after the stream header and after every top-level
// element, as RFC 6120 allows and some servers do (pretty-printed
// negotiation, whitespace keepalives). Over TLS it is a man in the middle:
// it terminates TLS towards the client with a certificate of its own (for
// localhost and 127.0.0.1, trusted through CertPool) and opens TLS towards
// the server, so that the whitespace lands inside the encrypted stream,
// around SASL and bind.
type SpaceProxy struct {
	t      testing.TB
	o      SpaceProxyOptions
	ln     net.Listener
	pool   *x509.CertPool
	srvTLS *tls.Config
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	inserted atomic.Int64
	errs     chan error
}

// StartSpaceProxy listens on 127.0.0.1 and proxies every connection to
// o.Upstream until the test ends.
func StartSpaceProxy(t testing.TB, o SpaceProxyOptions) *SpaceProxy {
	t.Helper()
	if o.Space == "" {
		o.Space = "\n  "
	}
	if o.ServerName == "" {
		o.ServerName = "localhost"
	}
	if o.TLS == "" {
		o.TLS = "starttls"
	}
	if o.Sides == "" {
		o.Sides = "server"
	}
	cert, pool, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &SpaceProxy{
		t:      t,
		o:      o,
		ln:     ln,
		pool:   pool,
		srvTLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"xmpp-client"}},
		conns:  make(map[net.Conn]struct{}),
		errs:   make(chan error, 16),
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's address, to give the client.
func (p *SpaceProxy) Addr() string { return p.ln.Addr().String() }

// CertPool trusts the certificate the proxy shows the client.
func (p *SpaceProxy) CertPool() *x509.CertPool { return p.pool }

// Inserted reports how many times whitespace was written between pieces.
func (p *SpaceProxy) Inserted() int64 { return p.inserted.Load() }

// Err returns the first error a proxied connection met that was not the
// ordinary end of one of its sides, or nil.
func (p *SpaceProxy) Err() error {
	select {
	case err := <-p.errs:
		return err
	default:
		return nil
	}
}

func (p *SpaceProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *SpaceProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *SpaceProxy) report(err error) {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	select {
	case p.errs <- err:
	default:
	}
}

func (p *SpaceProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// serve proxies one connection.
func (p *SpaceProxy) serve(client net.Conn) {
	defer client.Close()
	up, err := net.DialTimeout("tcp", p.o.Upstream, 10*time.Second)
	if err != nil {
		p.report(err)
		return
	}
	defer up.Close()
	if !p.track(client) || !p.track(up) {
		return
	}
	var c, u net.Conn = client, up
	switch p.o.TLS {
	case "direct":
		c, u, err = p.secure(client, up)
	case "starttls":
		err = p.plain(client, up)
		if err == nil {
			c, u, err = p.secure(client, up)
		}
	}
	if err != nil {
		p.report(err)
		return
	}
	if !p.track(c) || !p.track(u) {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		p.report(p.pump(u, c, p.o.Sides != "client", ""))
		c.Close()
		done <- struct{}{}
	}()
	go func() {
		p.report(p.pump(c, u, p.o.Sides != "server", ""))
		u.Close()
		done <- struct{}{}
	}()
	<-done
	<-done
}

// plain relays the unencrypted part of a STARTTLS stream: up to the
// client's <starttls/> one way and the server's <proceed/> the other.
func (p *SpaceProxy) plain(client, up net.Conn) error {
	errc := make(chan error, 2)
	go func() { errc <- p.pump(up, client, p.o.Sides != "client", "proceed") }()
	go func() { errc <- p.pump(client, up, p.o.Sides != "server", "starttls") }()
	for i := range 2 {
		if err := <-errc; err != nil {
			client.Close()
			up.Close()
			if i == 0 {
				<-errc
			}
			return err
		}
	}
	return nil
}

// secure runs both TLS handshakes.
func (p *SpaceProxy) secure(client, up net.Conn) (net.Conn, net.Conn, error) {
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	_ = up.SetDeadline(time.Now().Add(10 * time.Second))
	cs := tls.Server(client, p.srvTLS)
	cfg := &tls.Config{RootCAs: p.o.RootCAs, ServerName: p.o.ServerName, MinVersion: tls.VersionTLS12}
	if p.o.TLS == "direct" {
		cfg.NextProtos = []string{"xmpp-client"}
	}
	us := tls.Client(up, cfg)
	errc := make(chan error, 2)
	go func() { errc <- cs.Handshake() }()
	go func() { errc <- us.Handshake() }()
	for i := range 2 {
		if err := <-errc; err != nil {
			client.Close()
			up.Close()
			if i == 0 {
				<-errc
			}
			return nil, nil, err
		}
	}
	_ = client.SetDeadline(time.Time{})
	_ = up.SetDeadline(time.Time{})
	return cs, us, nil
}

// pump copies src to dst piece by piece, with whitespace after each stream
// header and element when space is set. With until set it stops after the
// element of that local name, which must be the last thing src sends in
// plain text (the TLS handshake follows).
func (p *SpaceProxy) pump(src, dst net.Conn, space bool, until string) error {
	var cut boshwire.Cutter // survives the stream restarts after SASL
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			evs, ferr := cut.Feed(buf[:n])
			for _, ev := range evs {
				out := ev.Raw
				last := until != "" && ev.Kind == xmlsplit.Element && ev.Name.Local == until
				// After <proceed/> the TLS handshake follows at once: no
				// whitespace may come between.
				if space && !last && (ev.Kind == xmlsplit.StreamStart || ev.Kind == xmlsplit.Element) {
					out = append(out, p.o.Space...)
					p.inserted.Add(1)
				}
				if _, werr := dst.Write(out); werr != nil {
					return werr
				}
				if last {
					return nil
				}
			}
			if ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return err
		}
	}
}

// selfSigned makes the certificate the proxy shows its clients.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"crier test proxy"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
