package miniserver

import (
	"context"
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
