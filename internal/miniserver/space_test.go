package miniserver

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

// TestClientWhitespace: a client that writes whitespace after its stream
// headers and after every element (as go-sendxmpp writes a newline after
// its header) signs in over STARTTLS and direct TLS, and its stanzas are
// routed.
func TestClientWhitespace(t *testing.T) {
	s := startServer(t, nil)
	bob := xmpptest.Dial(t, xmpptest.Options{Addr: s.Addr(), JID: "bob@localhost", Password: "bobpw", Resource: "b", RootCAs: s.CertPool()})
	for _, mode := range []string{"starttls", "direct"} {
		t.Run(mode, func(t *testing.T) {
			up := s.Addr()
			if mode == "direct" {
				up = s.TLSAddr()
			}
			p := xmpptest.StartSpaceProxy(t, xmpptest.SpaceProxyOptions{Upstream: up, TLS: mode, RootCAs: s.CertPool(), Sides: "client"})
			alice := xmpptest.Dial(t, xmpptest.Options{Addr: p.Addr(), JID: "alice@localhost", Password: "alicepw",
				Resource: "a-" + mode, TLS: mode, RootCAs: p.CertPool()})
			if err := alice.SendMessage("bob@localhost/b", "chat", "hi over "+mode); err != nil {
				t.Fatal(err)
			}
			bob.Expect(t, 5*time.Second, func(st xmpptest.Stanza) bool { return st.Body == "hi over "+mode })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := alice.IQ(ctx, "localhost", "get", "<ping xmlns='urn:xmpp:ping'/>"); err != nil {
				t.Fatalf("ping after whitespace: %v", err)
			}
			if n := p.Inserted(); n < 6 {
				t.Fatalf("the proxy inserted whitespace only %d times", n)
			}
			if err := p.Err(); err != nil {
				t.Fatalf("proxy: %v", err)
			}
		})
	}
}

// TestNegotiationStreamErrors: a client that breaks the protocol while
// negotiating gets a stream error with a defined condition, then the end
// of the stream, before the server closes the connection.
func TestNegotiationStreamErrors(t *testing.T) {
	s := startServer(t, nil)
	const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>\n"
	for _, tc := range []struct{ name, send, cond string }{
		{"stanza before authentication", "<message to='bob@localhost'><body>hi</body></message>", "policy-violation"},
		{"an element in negotiation that is not well-formed", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>a b</wrong>", "not-well-formed"},
		{"wrong password", "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
			base64.StdEncoding.EncodeToString([]byte("\x00alice\x00nope")) + "</auth>", "not-authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", s.TLSAddr(), &tls.Config{RootCAs: s.CertPool(), ServerName: "localhost", NextProtos: []string{"xmpp-client"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, header+tc.send); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("%v after %q", err, got)
			}
			want := "<stream:error><" + tc.cond + " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
			if !strings.HasSuffix(string(got), want) {
				t.Fatalf("the server ended with\n%q\nwant a stream error ending in\n%q", got, want)
			}
		})
	}
}

// TestSpaceConnFilter: whatever the cuts between reads, mellium gets the
// client's stream without the whitespace between top-level elements (and
// before the restarted stream's header), and every byte of the elements.
func TestSpaceConnFilter(t *testing.T) {
	hdr := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
	in := "<?xml version='1.0'?>" + hdr + "\n" +
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>\n \t" +
		"\n" + hdr + " \r\n" +
		"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource> r </resource></bind></iq>\n" +
		"<message><body>x\n y</body></message>  " + "</stream:stream>"
	want := "<?xml version='1.0'?>" + hdr +
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>" +
		hdr +
		"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource> r </resource></bind></iq>" +
		"<message><body>x\n y</body></message>" + "</stream:stream>"
	for step := 1; step <= len(in); step++ {
		c := newSpaceConn(nil)
		var got []byte
		for i := 0; i < len(in); i += step {
			got = append(got, c.filter([]byte(in[i:min(i+step, len(in))]))...)
		}
		got = append(got, c.hold...)
		if string(got) != want {
			t.Fatalf("step %d: mellium gets\n%q\nwant\n%q", step, got, want)
		}
		if c.dead {
			t.Fatalf("step %d: the filter lost the stream", step)
		}
	}
}

// TestSpaceConnGivesUp: once the filter finds the XML broken, or a stanza
// over the server's limits, it passes every byte on unchanged (held bytes
// included) for the decoder to judge.
func TestSpaceConnGivesUp(t *testing.T) {
	hdr := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
	deep := strings.Repeat("<a>", maxDepth+1)
	for _, bad := range []string{"<a b>", "<message>" + deep} {
		for step := 1; step <= 8; step++ {
			in := hdr + "\n" + bad + " \n <stream:stream>"
			c := newSpaceConn(nil)
			var got []byte
			for i := 0; i < len(in); i += step {
				got = append(got, c.filter([]byte(in[i:min(i+step, len(in))]))...)
			}
			got = append(got, c.hold...)
			if want := hdr + bad + " \n <stream:stream>"; string(got) != want {
				t.Fatalf("%q step %d: got\n%q\nwant\n%q", bad, step, got, want)
			}
			if !c.dead {
				t.Fatalf("%q step %d: the filter did not give up", bad, step)
			}
		}
	}
}
