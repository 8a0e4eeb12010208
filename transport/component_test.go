package transport

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/internal/miniserver"
)

func startMiniComponent(t *testing.T) *miniserver.Server {
	t.Helper()
	return startMiniWith(t, miniserver.Config{
		Domain:        "localhost",
		Addr:          "127.0.0.1:0",
		ComponentAddr: "127.0.0.1:0",
		Components:    map[string]string{"alerts.localhost": "s3cret"},
		Accounts:      map[string]string{"alice@localhost": "pw"},
	})
}

func componentOptions(s *miniserver.Server) Options {
	return Options{
		JID:       jid.MustParse("alerts.localhost"),
		Password:  "s3cret",
		Transport: TransportComponent,
		Address:   s.ComponentAddr(),
		TLS:       TLSNone,
		Timeout:   10 * time.Second,
	}
}

// TestComponentHandshake connects as a component, receives a message a
// user sent to an address on its domain, and sends one back from another
// address on it.
func TestComponentHandshake(t *testing.T) {
	s := startMiniComponent(t)
	rec := &recorder{}
	o := componentOptions(s)
	o.Tap = rec
	c := connect(t, o)
	if c.JID.String() != "alerts.localhost" || c.Transport != TransportComponent || c.Secure {
		t.Fatalf("JID=%s Transport=%s Secure=%v", c.JID, c.Transport, c.Secure)
	}
	if !s.ComponentConnected("alerts.localhost") {
		t.Fatal("the server does not see the component")
	}
	serve(t, c)

	urec := &recorder{}
	uo := miniOptions(s)
	uo.JID, uo.Tap, uo.TLSConfig = jid.MustParse("alice@localhost"), urec, &tls.Config{RootCAs: s.CertPool()}
	u := connect(t, uo)
	serve(t, u)
	msg := stanza.Message{To: jid.MustParse("bot@alerts.localhost"), Type: stanza.ChatMessage, ID: "m1"}
	if err := u.Session.Send(context.Background(), msg.Wrap(nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		// Read as a client stanza: the component stream's namespace is
		// translated for mellium and the bot.
		_, ok := rec.find(In, nsClient, "message", "to='bot@alerts.localhost'")
		return ok
	})
	back := stanza.Message{From: jid.MustParse("disk@alerts.localhost"), To: jid.MustParse("alice@localhost/crier"), Type: stanza.ChatMessage}
	if err := c.Session.Send(context.Background(), back.Wrap(nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, ok := urec.find(In, nsClient, "message", "from='disk@alerts.localhost'")
		return ok
	})
	// An iq to the server answers: the ping barrier works over a
	// component connection.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iq := stanza.IQ{From: jid.MustParse("alerts.localhost"), To: jid.MustParse("localhost"), Type: stanza.GetIQ}
	resp, err := c.Session.SendIQ(ctx, iq.Wrap(pingPayload()))
	if err != nil {
		t.Fatalf("ping the server: %v", err)
	}
	resp.Close()
	if err := c.Barrier(ctx); !errors.Is(err, ErrNoSM) {
		t.Errorf("Barrier = %v, want ErrNoSM (XEP-0114 has no stream management)", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestComponentWrongSecret(t *testing.T) {
	s := startMiniComponent(t)
	o := componentOptions(s)
	o.Password = "wrong"
	_, err := Connect(context.Background(), o)
	if !errors.Is(err, ErrAuth) || Reason(err) != "auth" || !strings.Contains(err.Error(), "secret") {
		t.Errorf("wrong secret: %v (reason %s)", err, Reason(err))
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the secret is in the error: %v", err)
	}
	o = componentOptions(s)
	o.JID = jid.MustParse("other.localhost")
	_, err = Connect(context.Background(), o)
	if Reason(err) != "protocol" || !strings.Contains(err.Error(), "host-unknown") {
		t.Errorf("unknown domain: %v (reason %s)", err, Reason(err))
	}
}

func TestComponentOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want error
	}{
		{"localpart", func(o *Options) { o.JID = jid.MustParse("bot@alerts.localhost") }, ErrConfig},
		{"no secret", func(o *Options) { o.Password = "" }, ErrConfig},
		{"starttls", func(o *Options) { o.TLS = TLSStartTLS }, ErrConfig},
		{"no address", func(o *Options) { o.Address = "" }, ErrConfig},
		{"plain to a remote host", func(o *Options) { o.Address = "192.0.2.1:5347" }, ErrInsecure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{JID: jid.MustParse("alerts.localhost"), Password: "x", Transport: TransportComponent, Address: "127.0.0.1:1", TLS: TLSNone, Timeout: time.Second}
			tc.edit(&o)
			if _, err := Connect(context.Background(), o); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestComponentTLS: tls "direct" (the default) verifies the certificate
// of the server, named by the address's host.
func TestComponentTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}).Handshake()
			c.Close()
		}
	}()
	o := Options{JID: jid.MustParse("alerts.localhost"), Password: "x", Transport: TransportComponent, Address: ln.Addr().String(), Timeout: 5 * time.Second}
	_, err = Connect(context.Background(), o)
	if !errors.Is(err, ErrTLS) {
		t.Errorf("untrusted certificate: %v (reason %s)", err, Reason(err))
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := miniserver.NewCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pingPayload() xml.TokenReader {
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}})
}

// TestComponentOutScan: the jabber:client declaration comes off every
// top-level element and nothing else changes, however the bytes are cut
// into writes.
func TestComponentOutScan(t *testing.T) {
	in := `<message xmlns="jabber:client" to="a@b" from='x@alerts'><body>a &gt; b <![CDATA[no]]></body><x xmlns="jabber:client"/></message>` +
		`<presence xmlns='jabber:client' to="r@c/n"><x xmlns="http://jabber.org/protocol/muc"/></presence>` +
		`<iq xmlns="jabber:client" type="get" id="1"><ping xmlns="urn:xmpp:ping"></ping></iq>` +
		`<r xmlns="urn:xmpp:sm:3"/><message xmlns="jabber:client"/>` + "\n" + `<iq xmlns="jabber:client" id="a&apos;>"/></stream:stream>`
	want := `<message to="a@b" from='x@alerts'><body>a &gt; b <![CDATA[no]]></body><x xmlns="jabber:client"/></message>` +
		`<presence to="r@c/n"><x xmlns="http://jabber.org/protocol/muc"/></presence>` +
		`<iq type="get" id="1"><ping xmlns="urn:xmpp:ping"></ping></iq>` +
		`<r xmlns="urn:xmpp:sm:3"/><message/>` + "\n" + `<iq id="a&apos;>"/></stream:stream>`
	for step := 1; step <= len(in); step++ {
		var s outScan
		var out []byte
		for i := 0; i < len(in); i += step {
			out = s.feed([]byte(in[i:min(i+step, len(in))]), out)
		}
		if string(out) != want {
			t.Fatalf("writes of %d bytes:\n got %s\nwant %s", step, out, want)
		}
	}
}

// TestComponentSM: a server that offers stream management to components
// (the mini server with ComponentSM; XEP-0114 servers do not) gets it
// enabled, and the barrier is <r/>/<a/> instead of a ping.
func TestComponentSM(t *testing.T) {
	s := startMiniWith(t, miniserver.Config{
		Domain:        "localhost",
		Addr:          "127.0.0.1:0",
		ComponentAddr: "127.0.0.1:0",
		Components:    map[string]string{"alerts.localhost": "s3cret"},
		ComponentSM:   true,
	})
	rec := &recorder{}
	o := componentOptions(s)
	o.Tap = rec
	c := connect(t, o)
	serve(t, c)
	msg := stanza.Message{From: jid.MustParse("disk@alerts.localhost"), To: jid.MustParse("nobody@localhost"), Type: stanza.HeadlineMessage}
	if err := c.Session.Send(context.Background(), msg.Wrap(nil)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Barrier(ctx); err != nil {
		for _, ev := range rec.events() {
			t.Logf("%v %s", ev.dir, ev.raw)
		}
		t.Fatalf("Barrier: %v", err)
	}
	if st := c.SMStats(); !st.Enabled || st.Sent < 1 || st.Acked < 1 {
		t.Errorf("stream management stats %+v, want enabled with the message acknowledged", st)
	}
	if _, ok := rec.find(In, nsSM, "a", ""); !ok {
		t.Error("no <a/> from the server")
	}
	if c.ResumeState() != nil {
		t.Error("a component session offers resumption here")
	}
}
