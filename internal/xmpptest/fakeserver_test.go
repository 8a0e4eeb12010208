package xmpptest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// fakeServer is a tiny XMPP server for this package's tests: STARTTLS and
// direct TLS, SASL PLAIN, resource binding, one-to-one routing, pings and a
// bare-bones MUC at conference.localhost. It exists so the client is tested
// in the fast suite without any other package.
type fakeServer struct {
	t        testing.TB
	tlsCfg   *tls.Config
	pool     *x509.CertPool
	accounts map[string]string
	c2s      net.Listener
	direct   net.Listener

	mu    sync.Mutex
	conns map[string]*fakeConn         // full JID -> connection
	rooms map[string]map[string]string // room -> nick -> full JID
	wg    sync.WaitGroup
}

type fakeConn struct {
	sess  *xmpp.Session
	jid   string
	ready chan struct{} // closed once sess is set
	mu    sync.Mutex
}

func (c *fakeConn) write(raw string) {
	// The connection is routable from the moment its resource is bound,
	// which is before its session is returned to the server.
	select {
	case <-c.ready:
	case <-time.After(5 * time.Second):
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.sess.TokenWriter()
	defer w.Close()
	_ = w.Flush()
	_ = c.sess.Conn().SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c.sess.Conn(), raw)
}

func startFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{
		t:        t,
		tlsCfg:   &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12},
		pool:     x509.NewCertPool(),
		accounts: map[string]string{"alice": "alicepw", "bob": "bobpw"},
		conns:    map[string]*fakeConn{},
		rooms:    map[string]map[string]string{},
	}
	s.pool.AddCert(cert)
	if s.c2s, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if s.direct, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s.wg.Add(2)
	go s.accept(s.c2s, false)
	go s.accept(s.direct, true)
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) close() {
	s.c2s.Close()
	s.direct.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		select {
		case <-c.ready:
			c.sess.Conn().Close()
		default:
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) accept(l net.Listener, direct bool) {
	defer s.wg.Done()
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			s.serve(conn, direct)
		}()
	}
}

func (s *fakeServer) serve(conn net.Conn, direct bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var state xmpp.SessionState = xmpp.Received
	var rw net.Conn = conn
	features := []xmpp.StreamFeature{}
	if direct {
		tc := tls.Server(conn, s.tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return
		}
		rw = tc
		state |= xmpp.Secure
	} else {
		features = append(features, xmpp.StartTLS(s.tlsCfg))
	}
	// The bind callback registers the connection before the client hears
	// that it is bound, so a message sent right after log-in is routable.
	fc := &fakeConn{ready: make(chan struct{})}
	registered := false
	defer func() {
		if !registered {
			return
		}
		s.mu.Lock()
		delete(s.conns, fc.jid)
		for _, occ := range s.rooms {
			for nick, j := range occ {
				if j == fc.jid {
					delete(occ, nick)
				}
			}
		}
		s.mu.Unlock()
	}()
	features = append(features,
		xmpp.SASLServer(func(n *sasl.Negotiator) bool {
			user, pass, _ := n.Credentials()
			want, ok := s.accounts[string(user)]
			return ok && want == string(pass)
		}, sasl.Plain),
		xmpp.BindCustom(func(j jid.JID, res string) (jid.JID, error) {
			if res == "" {
				res = "auto" + NewID()[:6]
			}
			bound, err := j.WithResource(res)
			if err != nil {
				return bound, err
			}
			fc.jid = bound.String()
			s.mu.Lock()
			s.conns[fc.jid] = fc
			s.mu.Unlock()
			registered = true
			return bound, nil
		}))
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	sess, err := xmpp.ReceiveSession(ctx, rw, state, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: features}
	}))
	if err != nil {
		return
	}
	_ = conn.SetDeadline(time.Time{})
	fc.sess = sess
	close(fc.ready)

	r := sess.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			// Answer the client's stream end with ours.
			_ = sess.Close()
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		root, err := readElement(r, start)
		if err != nil {
			return
		}
		s.handle(fc, newStanza(root, 0))
	}
}

func (s *fakeServer) handle(from *fakeConn, st Stanza) {
	to := st.To
	switch {
	case st.Name == "iq" && (to == "" || to == "localhost"):
		if st.Type == "get" && st.Root.Child(nsPing, "ping") != nil {
			from.write(fmt.Sprintf("<iq type='result' id='%s' from='localhost' to='%s'/>", Escape(st.ID), Escape(from.jid)))
			return
		}
		from.write(fmt.Sprintf("<iq type='error' id='%s' from='localhost' to='%s'><error type='cancel'>"+
			"<service-unavailable xmlns='%s'/></error></iq>", Escape(st.ID), Escape(from.jid), nsStanzas))
	case strings.HasSuffix(bare(to), "@conference.localhost"):
		s.room(from, st)
	default:
		s.mu.Lock()
		dest := s.conns[to]
		s.mu.Unlock()
		if dest == nil {
			if st.Name == "iq" && (st.Type == "get" || st.Type == "set") {
				from.write(fmt.Sprintf("<iq type='error' id='%s' from='%s'><error type='cancel'>"+
					"<item-not-found xmlns='%s'/></error></iq>", Escape(st.ID), Escape(to), nsStanzas))
			}
			return
		}
		dest.write(withFrom(st, from.jid))
	}
}

// withFrom re-serializes a stanza with its from attribute set.
func withFrom(st Stanza, from string) string {
	root := *st.Root
	root.Attrs = nil
	for _, a := range st.Root.Attrs {
		if a.Name.Local != "from" {
			root.Attrs = append(root.Attrs, a)
		}
	}
	root.Attrs = append(root.Attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: from})
	return newStanza(&root, 0).Raw
}

func (s *fakeServer) room(from *fakeConn, st Stanza) {
	room, nick := bare(st.To), resourceOf(st.To)
	s.mu.Lock()
	occ := s.rooms[room]
	if occ == nil {
		occ = map[string]string{}
		s.rooms[room] = occ
	}
	type out struct {
		c   *fakeConn
		raw string
	}
	var outs []out
	send := func(j, raw string) {
		if c := s.conns[j]; c != nil {
			outs = append(outs, out{c, raw})
		}
	}
	switch st.Name {
	case "presence":
		if nick == "forbidden" {
			send(from.jid, fmt.Sprintf("<presence type='error' from='%s'><error type='auth'><forbidden xmlns='%s'/></error></presence>",
				Escape(st.To), nsStanzas))
			break
		}
		if st.Type == "unavailable" {
			for _, j := range occ {
				code := ""
				if j == from.jid {
					code = "<status code='110'/>"
				}
				send(j, fmt.Sprintf("<presence type='unavailable' from='%s/%s'><x xmlns='%s'><item role='none'/>%s</x></presence>",
					Escape(room), Escape(nick), nsMUCUser, code))
			}
			delete(occ, nick)
			break
		}
		for n := range occ {
			send(from.jid, fmt.Sprintf("<presence from='%s/%s'><x xmlns='%s'><item role='participant'/></x></presence>",
				Escape(room), Escape(n), nsMUCUser))
		}
		occ[nick] = from.jid
		for n, j := range occ {
			code := ""
			if n == nick {
				code = "<status code='110'/>"
			}
			send(j, fmt.Sprintf("<presence from='%s/%s'><x xmlns='%s'><item role='participant'/>%s</x></presence>",
				Escape(room), Escape(nick), nsMUCUser, code))
		}
	case "message":
		sender := ""
		for n, j := range occ {
			if j == from.jid {
				sender = n
			}
		}
		if sender == "" {
			break
		}
		for _, j := range occ {
			send(j, fmt.Sprintf("<message type='groupchat' from='%s/%s'><body>%s</body></message>",
				Escape(room), Escape(sender), Escape(st.Body)))
		}
	}
	s.mu.Unlock()
	for _, o := range outs {
		o.c.write(o.raw)
	}
}
