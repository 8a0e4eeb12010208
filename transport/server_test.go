package transport

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"hash"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Modes of the scripted test server.
const (
	modeStartTLS   = "starttls"   // RFC 6120 STARTTLS, then SASL and bind
	modeDirect     = "direct"     // TLS from the first byte
	modeNone       = "none"       // no TLS at all
	modeNoStartTLS = "nostarttls" // features without <starttls/>
	modeStreamErr  = "streamerr"  // a stream error right after the header
	modeSilent     = "silent"     // accepts and never speaks
)

// testCert is a self-signed certificate for localhost and 127.0.0.1, made
// once per test binary.
var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
})

// testServer speaks just enough XMPP, through mellium's server side, to
// drive the client: STARTTLS or direct TLS, SASL with a chosen list of
// mechanisms, and bind. It records what the client asked for.
type testServer struct {
	t        *testing.T
	mode     string
	mechs    []string          // offered, in this order
	accounts map[string]string // localpart -> password
	ready    func(*xmpp.Session)

	ln   net.Listener
	addr string

	mu        sync.Mutex
	resources []string // requested resources, one per bind
	mechUsed  []string // mechanism the client started, one per SASL run
	alpn      []string // ALPN protocol negotiated on direct TLS
	received  []xml.Name
	served    chan error // Serve's result, one per session
}

func startServer(t *testing.T, mode string, mechs ...string) *testServer {
	t.Helper()
	if len(mechs) == 0 {
		mechs = []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{
		t:        t,
		mode:     mode,
		mechs:    mechs,
		accounts: map[string]string{"bot": "pw"},
		ln:       ln,
		addr:     ln.Addr().String(),
		served:   make(chan error, 4),
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				s.handle(ctx, c)
			})
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return s
}

func (s *testServer) serverTLS() *tls.Config {
	cert, _ := testCert()
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"xmpp-client"}}
}

func (s *testServer) handle(ctx context.Context, c net.Conn) {
	var state xmpp.SessionState
	var rw io.ReadWriter = c
	features := []xmpp.StreamFeature{}
	switch s.mode {
	case modeSilent:
		_, _ = io.Copy(io.Discard, c)
		return
	case modeNoStartTLS, modeStreamErr:
		s.script(c)
		return
	case modeStartTLS:
		features = append(features, xmpp.StartTLS(s.serverTLS()))
	case modeDirect:
		tc := tls.Server(c, s.serverTLS())
		if err := tc.HandshakeContext(ctx); err != nil {
			return
		}
		s.mu.Lock()
		s.alpn = append(s.alpn, tc.ConnectionState().NegotiatedProtocol)
		s.mu.Unlock()
		rw = tc
	case modeNone:
		state = xmpp.Secure
	}
	features = append(features, xmpp.SASLServer(s.permit, s.serverMechs()...), xmpp.BindCustom(s.bind))
	sess, err := xmpp.ReceiveSession(ctx, rw, state, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: features}
	}))
	if err != nil {
		return
	}
	if s.ready != nil {
		s.ready(sess)
	}
	s.served <- sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		s.mu.Lock()
		s.received = append(s.received, start.Name)
		s.mu.Unlock()
		return nil
	}))
}

// script plays the servers that misbehave before TLS.
func (s *testServer) script(c net.Conn) {
	br := bufio.NewReader(c)
	if _, err := br.ReadString('>'); err != nil { // <?xml ...?>
		return
	}
	if _, err := br.ReadString('>'); err != nil { // <stream:stream ...>
		return
	}
	hdr := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream +
		"' version='1.0' from='localhost' id='x1'>"
	switch s.mode {
	case modeNoStartTLS:
		io.WriteString(c, hdr+"<stream:features><mechanisms xmlns='"+nsSASL+
			"'><mechanism>PLAIN</mechanism></mechanisms></stream:features>")
	case modeStreamErr:
		io.WriteString(c, hdr+"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"+
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such domain</text></stream:error></stream:stream>")
	}
	_, _ = io.Copy(io.Discard, br)
}

func (s *testServer) permit(n *sasl.Negotiator) bool {
	user, pass, _ := n.Credentials()
	pw, ok := s.accounts[string(user)]
	return ok && pw == string(pass)
}

func (s *testServer) bind(j jid.JID, res string) (jid.JID, error) {
	s.mu.Lock()
	s.resources = append(s.resources, res)
	s.mu.Unlock()
	switch res {
	case "":
		res = "generated"
	case "taken":
		return jid.JID{}, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict}
	}
	return jid.MustParse("bot@localhost").WithResource(res)
}

// serverMechs builds the offered mechanisms. SCRAM on mellium's server side
// needs salted credentials, which it cannot be given directly: each SCRAM
// mechanism runs an inner negotiator that has them, and turns any failure
// into sasl.ErrAuthn so that mellium answers <failure><not-authorized/>.
func (s *testServer) serverMechs() []sasl.Mechanism {
	var out []sasl.Mechanism
	for _, name := range s.mechs {
		var m sasl.Mechanism
		var h func() hash.Hash
		switch name {
		case "PLAIN":
			m = sasl.Plain
		case "SCRAM-SHA-1":
			m, h = sasl.ScramSha1, sha1.New
		case "SCRAM-SHA-256":
			m, h = sasl.ScramSha256, sha256.New
		default: // listed only, to test a client that supports none of them
			m = sasl.Mechanism{Name: name, Next: func(*sasl.Negotiator, []byte, any) (bool, []byte, any, error) {
				return false, nil, nil, sasl.ErrAuthn
			}}
			out = append(out, m)
			continue
		}
		out = append(out, s.recordMech(m, h))
	}
	return out
}

func (s *testServer) recordMech(m sasl.Mechanism, h func() hash.Hash) sasl.Mechanism {
	name := m.Name
	next := m.Next
	return sasl.Mechanism{Name: name, Start: m.Start, Next: func(n *sasl.Negotiator, challenge []byte, data any) (bool, []byte, any, error) {
		if h == nil { // PLAIN
			s.noteMech(name)
			return next(n, challenge, data)
		}
		inner, _ := data.(*sasl.Negotiator)
		if inner == nil {
			s.noteMech(name)
			inner = sasl.NewServer(m, nil, sasl.SaltedCredentials(func(user, _ []byte, _ string) ([]byte, []byte, int64, error) {
				pw, ok := s.accounts[string(user)]
				if !ok {
					pw = "\x00unknown"
				}
				salt := []byte("crier-test-salt!")
				return salt, sasl.SCRAMSaltPassword(h, []byte(pw), salt, 4096), 4096, nil
			}))
		}
		more, resp, err := inner.Step(challenge)
		if err != nil {
			return false, nil, nil, sasl.ErrAuthn
		}
		return more, resp, inner, nil
	}}
}

func (s *testServer) noteMech(name string) {
	s.mu.Lock()
	s.mechUsed = append(s.mechUsed, name)
	s.mu.Unlock()
}

func (s *testServer) snapshot() (resources, mechs, alpn []string, received []xml.Name) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.resources...), append([]string(nil), s.mechUsed...),
		append([]string(nil), s.alpn...), append([]xml.Name(nil), s.received...)
}

// options returns client options for this server.
func (s *testServer) options() Options {
	_, pool := testCert()
	tlsMode := TLSStartTLS
	switch s.mode {
	case modeDirect:
		tlsMode = TLSDirect
	case modeNone:
		tlsMode = TLSNone
	}
	return Options{
		JID:       jid.MustParse("bot@localhost"),
		Password:  "pw",
		Resource:  "crier",
		Address:   s.addr,
		TLS:       tlsMode,
		TLSConfig: &tls.Config{RootCAs: pool},
		Timeout:   5 * time.Second,
	}
}

// recorder is a Tap that keeps everything.
type recorder struct {
	mu  sync.Mutex
	evs []tapEvent
}

type tapEvent struct {
	dir  Direction
	name xml.Name
	raw  string
}

func (r *recorder) Element(dir Direction, name xml.Name, raw []byte) {
	r.mu.Lock()
	r.evs = append(r.evs, tapEvent{dir, name, string(raw)})
	r.mu.Unlock()
}

func (r *recorder) events() []tapEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tapEvent(nil), r.evs...)
}

// find returns the first event matching dir, namespace and local name
// whose raw text contains sub.
func (r *recorder) find(dir Direction, space, local, sub string) (tapEvent, bool) {
	for _, ev := range r.events() {
		if ev.dir == dir && ev.name.Space == space && ev.name.Local == local && strings.Contains(ev.raw, sub) {
			return ev, true
		}
	}
	return tapEvent{}, false
}
