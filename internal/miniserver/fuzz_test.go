package miniserver

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"net"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// pipeLogin negotiates a session for alice over an in-memory pipe served by
// ServeConn, returning the client side and a channel closed when ServeConn
// returns.
func pipeLogin(t testing.TB, s *Server) (net.Conn, <-chan struct{}) {
	t.Helper()
	cli, srv := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.ServeConn(srv, true)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var bound jid.JID
	neg := xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
			xmpp.SASL("", "alicepw", sasl.Plain), bindFeature("fuzz", &bound),
		}}
	})
	_ = cli.SetDeadline(time.Now().Add(waitFor))
	if _, err := xmpp.NewSession(ctx, jid.MustParse("localhost"), jid.MustParse("alice@localhost"), cli, xmpp.Secure, neg); err != nil {
		_ = cli.Close()
		t.Fatalf("login over pipe: %v", err)
	}
	return cli, served
}

func FuzzStanzas(f *testing.F) {
	for _, seed := range []string{
		"<message to='bob@localhost' type='chat'><body>hi</body></message>",
		"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<iq type='get' id='2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<presence to='r@conference.localhost/n'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/></x></presence>",
		"<message to='r@conference.localhost' type='groupchat'><body>x</body><subject>s</subject></message>",
		"<iq type='set' id='3' to='r@conference.localhost'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='n' role='none'/></query></iq>",
		"<iq type='set' id='4'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>",
		"<presence to='bob@localhost' type='subscribe'/><presence type='unavailable'/>",
		"<message xmlns:a='urn:a' a:x='1' xml:lang='en'><body>&amp;&lt;</body></message>",
		"<iq type='get' id='5' to='r@conference.localhost/n'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<message><body>unterminated",
		"</stream:stream>",
		"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
		"<!DOCTYPE x [<!ENTITY a 'b'>]><message/>",
		"<a><b><c><d><e><f><g><h><i><j><k><l><m><n><o><p><q><r><s><t><u><v><w><x><y><z><a><b><c><d><e><f><g><h>",
	} {
		f.Add([]byte(seed))
	}
	s := startServer(f, func(c *Config) { c.MaxStanza = 8 << 10 })
	f.Fuzz(func(t *testing.T, data []byte) {
		cli, served := pipeLogin(t, s)
		go func() {
			_, _ = cli.Write(data)
			_, _ = cli.Write([]byte("<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>"))
		}()
		// Read until the server closes or a short while passes.
		_ = cli.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = io.Copy(io.Discard, cli)
		_ = cli.Close()
		select {
		case <-served:
		case <-time.After(waitFor):
			t.Fatal("ServeConn did not return after the client left")
		}
		if n := s.stats.panics.Load(); n != 0 {
			t.Fatalf("%d handler panics", n)
		}
	})
}

// componentLogin connects the component alerts.localhost (secret s3cret)
// over an in-memory pipe and completes the XEP-0114 handshake.
func componentLogin(t testing.TB, s *Server) (net.Conn, <-chan struct{}) {
	t.Helper()
	cli, srv := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.handleComponent(srv)
	}()
	_ = cli.SetDeadline(time.Now().Add(waitFor))
	go func() {
		_, _ = io.WriteString(cli, "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='alerts.localhost'>")
	}()
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte("id='")) || !bytes.Contains(got[bytes.Index(got, []byte("id='"))+4:], []byte("'")) {
		n, err := cli.Read(buf)
		if err != nil {
			t.Fatalf("component header: %v (%q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	rest := got[bytes.Index(got, []byte("id='"))+4:]
	id := string(rest[:bytes.IndexByte(rest, '\'')])
	sum := sha1.Sum([]byte(id + "s3cret"))
	go func() { _, _ = io.WriteString(cli, "<handshake>"+hex.EncodeToString(sum[:])+"</handshake>") }()
	got = got[:0]
	for !bytes.Contains(got, []byte("<handshake/>")) {
		n, err := cli.Read(buf)
		if err != nil {
			t.Fatalf("component handshake: %v (%q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	return cli, served
}

// FuzzComponentStanzas: whatever a connected component sends, the server
// neither panics nor hangs.
func FuzzComponentStanzas(f *testing.F) {
	for _, seed := range []string{
		"<message from='bot@alerts.localhost' to='alice@localhost' type='chat'><body>hi</body></message>",
		"<message to='alice@localhost'><body>no from</body></message>",
		"<message from='bot@localhost' to='alice@localhost'/>",
		"<presence from='bot@alerts.localhost/r' to='r@conference.localhost/bot'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
		"<iq from='alerts.localhost' to='localhost' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<message xmlns='jabber:client' from='x@alerts.localhost' to='x@alerts.localhost'><body>loop</body></message>",
		"<handshake>again</handshake>",
		"</stream:stream>",
	} {
		f.Add([]byte(seed))
	}
	s := startServer(f, func(c *Config) {
		c.MaxStanza = 8 << 10
		c.Components = map[string]string{"alerts.localhost": "s3cret"}
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		cli, served := componentLogin(t, s)
		go func() {
			_, _ = cli.Write(data)
			_, _ = cli.Write([]byte("<iq from='alerts.localhost' to='localhost' type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>"))
		}()
		_ = cli.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = io.Copy(io.Discard, cli)
		_ = cli.Close()
		select {
		case <-served:
		case <-time.After(waitFor):
			t.Fatal("the component connection did not end after the component left")
		}
		if n := s.stats.panics.Load(); n != 0 {
			t.Fatalf("%d handler panics", n)
		}
	})
}
