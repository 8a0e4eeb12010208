package transport

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

func connect(t *testing.T, o Options) *Conn {
	t.Helper()
	c, err := Connect(context.Background(), o)
	if err != nil {
		t.Fatalf("Connect: %v (reason %s)", err, Reason(err))
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs the client session's input loop until it ends.
func serve(t *testing.T, c *Conn) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.Session.Serve(nil) }()
	return done
}

func TestConnectStartTLS(t *testing.T) {
	s := startServer(t, modeStartTLS)
	c := connect(t, s.options())

	if got, want := c.JID.String(), "bot@localhost/crier"; got != want {
		t.Errorf("JID = %s, want %s", got, want)
	}
	if !c.Secure || c.Transport != TransportTCP || c.Server != s.addr {
		t.Errorf("Secure=%v Transport=%q Server=%q", c.Secure, c.Transport, c.Server)
	}
	if c.Mechanism != "SCRAM-SHA-256" {
		t.Errorf("Mechanism = %q, want SCRAM-SHA-256", c.Mechanism)
	}
	resources, mechs, _, _ := s.snapshot()
	if !slices.Equal(resources, []string{"crier"}) {
		t.Errorf("server saw bind requests for %q, want [crier]", resources)
	}
	if !slices.Equal(mechs, []string{"SCRAM-SHA-256"}) {
		t.Errorf("server saw mechanisms %q", mechs)
	}

	done := serve(t, c)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-s.served:
		if err != nil {
			t.Errorf("server session ended with %v, want a clean end of stream", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server never saw the end of the stream")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("client Serve did not return after Close")
	}
}

func TestConnectDirectTLS(t *testing.T) {
	s := startServer(t, modeDirect)
	c := connect(t, s.options())
	if c.JID.String() != "bot@localhost/crier" || !c.Secure {
		t.Fatalf("JID=%s Secure=%v", c.JID, c.Secure)
	}
	_, _, alpn, _ := s.snapshot()
	if !slices.Equal(alpn, []string{"xmpp-client"}) {
		t.Errorf("ALPN = %q, want [xmpp-client] (XEP-0368)", alpn)
	}
}

func TestConnectEmptyResource(t *testing.T) {
	s := startServer(t, modeStartTLS)
	o := s.options()
	o.Resource = ""
	c := connect(t, o)
	if c.JID.String() != "bot@localhost/generated" {
		t.Fatalf("JID = %s, want the server's choice", c.JID)
	}
	if res, _, _, _ := s.snapshot(); !slices.Equal(res, []string{""}) {
		t.Fatalf("server saw %q", res)
	}
}

func TestMechanismPreference(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		offered []string
		want    string
	}{
		{modeStartTLS, []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"}, "SCRAM-SHA-256"},
		{modeStartTLS, []string{"PLAIN", "SCRAM-SHA-1"}, "SCRAM-SHA-1"},
		{modeStartTLS, []string{"PLAIN"}, "PLAIN"},
		{modeDirect, []string{"PLAIN"}, "PLAIN"},
		{modeNone, []string{"SCRAM-SHA-1", "PLAIN"}, "SCRAM-SHA-1"},
		{modeNone, []string{"PLAIN"}, "PLAIN"}, // tls none was chosen explicitly, to loopback
	} {
		t.Run(tc.mode+"/"+strings.Join(tc.offered, ","), func(t *testing.T) {
			s := startServer(t, tc.mode, tc.offered...)
			c := connect(t, s.options())
			if c.Mechanism != tc.want {
				t.Errorf("client used %q, want %q", c.Mechanism, tc.want)
			}
			if _, mechs, _, _ := s.snapshot(); !slices.Equal(mechs, []string{tc.want}) {
				t.Errorf("server saw %q", mechs)
			}
			if c.Secure != (tc.mode != modeNone) {
				t.Errorf("Secure = %v", c.Secure)
			}
		})
	}
}

func TestTapSeesBothDirections(t *testing.T) {
	s := startServer(t, modeStartTLS, "PLAIN")
	msg := make(chan struct{})
	s.ready = func(sess *xmpp.Session) {
		go func() {
			_ = sess.Send(context.Background(), stanza.Message{
				To: jid.MustParse("bot@localhost/crier"), Type: stanza.ChatMessage,
			}.Wrap(nil))
			close(msg)
		}()
	}
	rec := &recorder{}
	o := s.options()
	o.Tap = rec
	c := connect(t, o)
	serve(t, c)
	<-msg
	if err := c.Session.Send(context.Background(), stanza.Presence{}.Wrap(nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, in := rec.find(In, nsClient, "message", "")
		_, out := rec.find(Out, nsClient, "presence", "")
		return in && out
	})

	for _, want := range []struct {
		dir          Direction
		space, local string
		sub          string
	}{
		{In, nsStream, "features", "PLAIN"},
		{Out, nsSASL, "auth", `mechanism="PLAIN"`},
		{In, nsSASL, "success", ""},
		{In, nsStream, "features", "xmpp-bind"},
		{Out, nsClient, "iq", "<resource>crier</resource>"},
		{In, nsClient, "iq", "<jid>bot@localhost/crier</jid>"},
		{In, nsClient, "message", ""},
		{Out, nsClient, "presence", ""},
	} {
		if _, ok := rec.find(want.dir, want.space, want.local, want.sub); !ok {
			t.Errorf("tap missed %s {%s}%s containing %q", want.dir, want.space, want.local, want.sub)
		}
	}
	// The pre-TLS exchange is not reported, and the password never shows.
	secret := base64.StdEncoding.EncodeToString([]byte("\x00bot\x00pw"))
	for _, ev := range rec.events() {
		if ev.name.Local == "starttls" || ev.name.Local == "proceed" {
			t.Errorf("tap saw the plain-text %s", ev.name.Local)
		}
		if strings.Contains(ev.raw, secret) {
			t.Errorf("tap saw the PLAIN credentials in %s", ev.raw)
		}
	}
	auth, _ := rec.find(Out, nsSASL, "auth", "")
	if !strings.Contains(auth.raw, "[redacted]") {
		t.Errorf("auth not redacted: %s", auth.raw)
	}
	// Order within a direction is stream order.
	var outs []string
	for _, ev := range rec.events() {
		if ev.dir == Out {
			outs = append(outs, ev.name.Local)
		}
	}
	if !slices.Equal(outs[:2], []string{"auth", "iq"}) {
		t.Errorf("outgoing order %q, want auth then iq first", outs)
	}
}

func TestTapSCRAMExchange(t *testing.T) {
	s := startServer(t, modeDirect, "SCRAM-SHA-256")
	rec := &recorder{}
	o := s.options()
	o.Tap = rec
	connect(t, o)
	for _, want := range []struct {
		dir   Direction
		local string
	}{{Out, "auth"}, {In, "challenge"}, {Out, "response"}, {In, "success"}} {
		if _, ok := rec.find(want.dir, nsSASL, want.local, ""); !ok {
			t.Errorf("tap missed %s %s", want.dir, want.local)
		}
	}
	resp, _ := rec.find(Out, nsSASL, "response", "")
	if !strings.Contains(resp.raw, "[redacted]") {
		t.Errorf("response not redacted: %s", resp.raw)
	}
}

func TestInject(t *testing.T) {
	s := startServer(t, modeStartTLS)
	rec := &recorder{}
	o := s.options()
	o.Tap = rec
	c := connect(t, o)
	if err := c.Inject([]byte(`<r xmlns='urn:xmpp:sm:3'/>`)); err != nil {
		t.Fatal(err)
	}
	if err := c.Inject([]byte(`<r xmlns='urn:xmpp:sm:3'/><a/>`)); !errors.Is(err, ErrConfig) {
		t.Errorf("two elements: got %v, want ErrConfig", err)
	}
	if err := c.Inject([]byte(`<r xmlns='urn:xmpp:sm:3'>`)); !errors.Is(err, ErrConfig) {
		t.Errorf("half an element: got %v, want ErrConfig", err)
	}
	waitFor(t, func() bool {
		_, _, _, got := s.snapshot()
		return slices.Contains(got, xml.Name{Space: "urn:xmpp:sm:3", Local: "r"})
	})
	if _, ok := rec.find(Out, "urn:xmpp:sm:3", "r", ""); !ok {
		t.Error("tap did not see the injected element")
	}
	c.Close()
	if err := c.Inject([]byte(`<r xmlns='urn:xmpp:sm:3'/>`)); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: got %v, want ErrClosed", err)
	}
}

func TestInjectWaitsForElementBoundary(t *testing.T) {
	// A write that stops in the middle of an element holds injected
	// elements back until the element is complete.
	client, server := net.Pipe()
	defer server.Close()
	tc := newTapConn(client, nil, slog.New(slog.DiscardHandler))
	got := make(chan string, 1)
	go func() {
		var all []byte
		buf := make([]byte, 256)
		for {
			n, err := server.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil || strings.Contains(string(all), "</message>") && strings.Contains(string(all), "<r/>") {
				got <- string(all)
				return
			}
		}
	}()
	mustWrite(t, tc, "<stream:stream xmlns='jabber:client' xmlns:stream='"+nsStream+"'><message><body>he")
	if err := tc.inject([]byte("<r/>")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, tc, "llo</body></message>")
	want := "<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "'><message><body>hello</body></message><r/>"
	select {
	case s := <-got:
		if s != want {
			t.Fatalf("wire:\n%s\nwant\n%s", s, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing written")
	}
	tc.Close()
}

func TestErrors(t *testing.T) {
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	nothing := refused() // discovery (XEP-0156) finds nothing there
	old := hostMetaBase
	hostMetaBase = func(string) string { return "https://" + nothing }
	t.Cleanup(func() { hostMetaBase = old })
	for _, tc := range []struct {
		name     string
		mode     string
		mechs    []string
		edit     func(*Options)
		sentinel error
		reason   string
		text     string
	}{
		{"wrong password SCRAM", modeStartTLS, nil, func(o *Options) { o.Password = "nope" }, ErrAuth, "auth", "not-authorized"},
		{"wrong password PLAIN", modeDirect, []string{"PLAIN"}, func(o *Options) { o.Password = "nope" }, ErrAuth, "auth", "not-authorized"},
		{"unknown account", modeStartTLS, nil, func(o *Options) { o.JID = jid.MustParse("who@localhost") }, ErrAuth, "auth", "not-authorized"},
		{"untrusted cert", modeStartTLS, nil, func(o *Options) { o.TLSConfig = nil }, ErrTLS, "tls", "x509"},
		{"untrusted cert direct", modeDirect, nil, func(o *Options) { o.TLSConfig = nil }, ErrTLS, "tls", "certificate"},
		{"wrong name", modeStartTLS, nil, func(o *Options) { o.TLSConfig.ServerName = "example.org" }, ErrTLS, "tls", "example.org"},
		{"refused port", modeStartTLS, nil, func(o *Options) { o.Address = refused() }, ErrConnect, "connect", "refused"},
		{"no starttls", modeNoStartTLS, nil, nil, ErrTLS, "tls", "server does not offer STARTTLS"},
		{"stream error", modeStreamErr, nil, nil, ErrProtocol, "protocol", "host-unknown (no such domain)"},
		{"silent server", modeSilent, nil, func(o *Options) { o.Timeout = 300 * time.Millisecond }, ErrTimeout, "timeout", "timed out"},
		{"tls none off loopback", modeNone, nil, func(o *Options) { o.Address = "192.0.2.1:5222" }, ErrInsecure, "insecure", "192.0.2.1"},
		{"tls none without address", modeNone, nil, func(o *Options) { o.Address = "" }, ErrInsecure, "insecure", "loopback"},
		{"direct TLS to a STARTTLS port", modeStartTLS, nil, func(o *Options) { o.TLS = "direct" }, ErrTLS, "tls", ""},
		{"no common mechanism", modeStartTLS, []string{"X-UNKNOWN"}, nil, ErrAuth, "auth", "no SASL mechanism in common, server offers [X-UNKNOWN]"},
		{"bind conflict", modeStartTLS, nil, func(o *Options) { o.Resource = "taken" }, ErrProtocol, "protocol", "conflict"},
		{"bad transport", modeStartTLS, nil, func(o *Options) { o.Transport = "udp" }, ErrConfig, "config", "udp"},
		{"bosh without URL, none discovered", modeStartTLS, nil, func(o *Options) { o.Transport = "bosh" }, ErrResolve, "dns", "no BOSH endpoint found for localhost by XEP-0156"},
		{"bosh http off loopback", modeStartTLS, nil, func(o *Options) {
			o.Transport, o.BOSHURL = "bosh", "http://192.0.2.1/http-bind"
		}, ErrInsecure, "insecure", "192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.mode, tc.mechs...)
			o := s.options()
			if tc.edit != nil {
				tc.edit(&o)
			}
			start := time.Now()
			c, err := Connect(context.Background(), o)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded")
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("error %q does not wrap %v", err, tc.sentinel)
			}
			if got := Reason(err); got != tc.reason {
				t.Errorf("Reason = %q, want %q (err %v)", got, tc.reason, err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
			if strings.Contains(err.Error(), "nope") {
				t.Errorf("error leaks the password: %q", err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestMechanismsList(t *testing.T) {
	names := func(ms []sasl.Mechanism) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	obs := &observed{}
	if got := names(mechanisms(false, obs)); !slices.Equal(got, []string{"SCRAM-SHA-256", "SCRAM-SHA-1"}) {
		t.Errorf("insecure stream: %q", got)
	}
	if got := names(mechanisms(true, obs)); !slices.Equal(got, []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}) {
		t.Errorf("secure stream: %q", got)
	}
}

func TestConnectCanceled(t *testing.T) {
	s := startServer(t, modeSilent)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := Connect(ctx, s.options())
	if !errors.Is(err, context.Canceled) || Reason(err) != "canceled" {
		t.Fatalf("got %v (reason %s), want canceled", err, Reason(err))
	}
}

func TestBOSHIsWired(t *testing.T) {
	// The BOSH client reports its own errors; Connect must reach it and
	// classify what it says.
	s := startServer(t, modeStartTLS)
	o := s.options()
	o.Transport, o.BOSHURL = TransportBOSH, "http://127.0.0.1:1/http-bind"
	_, err := Connect(context.Background(), o)
	if !errors.Is(err, ErrConnect) || Reason(err) != "connect" {
		t.Fatalf("got %v (reason %s), want a connect error from the BOSH client", err, Reason(err))
	}
}

// deaf is a connection whose deadlines do nothing, as a careless
// transport's might.
type deaf struct{ net.Conn }

func (deaf) SetDeadline(time.Time) error      { return nil }
func (deaf) SetReadDeadline(time.Time) error  { return nil }
func (deaf) SetWriteDeadline(time.Time) error { return nil }

func TestNegotiateTimeoutWithoutDeadlines(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go func() { _, _ = io.Copy(io.Discard, server) }() // reads, never answers
	o, err := Options{JID: jid.MustParse("bot@localhost"), Timeout: 200 * time.Millisecond}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	start := time.Now()
	_, err = negotiate(ctx, o, deaf{client}, true)
	if Reason(err) != "timeout" || !errors.Is(err, ErrTimeout) {
		t.Errorf("got %v (reason %s), want a timeout", err, Reason(err))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("negotiate returned after %v", d)
	}
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		err    error
		ph     phase
		reason string
	}{
		{&net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}, phaseDial, "dns"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, phaseDial, "connect"},
		{errors.New("EOF"), phaseTLS, "tls"},
		{stanza.Error{Condition: stanza.NotAllowed}, phaseNegotiate, "protocol"},
		{context.Canceled, phaseNegotiate, "canceled"},
	} {
		err := classify(ctx, tc.ph, tc.err, nil)
		if got := Reason(err); got != tc.reason {
			t.Errorf("%v: Reason = %q, want %q", tc.err, got, tc.reason)
		}
	}
	dead, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if got := Reason(classify(dead, phaseNegotiate, errors.New("i/o timeout"), nil)); got != "timeout" {
		t.Errorf("deadline: %q", got)
	}
	if got := Reason(classify(dead, phaseDial, errors.New("i/o timeout"), nil)); got != "connect" {
		t.Errorf("dial deadline: %q", got)
	}
	if Reason(nil) != "" || Reason(errors.New("x")) != "other" {
		t.Error("Reason of nil or unknown")
	}
}

func TestRedactAndResolve(t *testing.T) {
	raw := []byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGJvdABwdw==</auth>`)
	got := string(redact(xml.Name{Space: nsSASL, Local: "auth"}, raw))
	if got != `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>[redacted]</auth>` {
		t.Errorf("redact: %s", got)
	}
	if got := redact(xml.Name{Space: nsClient, Local: "message"}, []byte("<message>x</message>")); string(got) != "<message>x</message>" {
		t.Errorf("redacted a stanza: %s", got)
	}
	for _, tc := range []struct {
		raw   xml.Name
		attrs []xml.Attr
		want  xml.Name
	}{
		{xml.Name{Local: "message"}, nil, xml.Name{Space: nsClient, Local: "message"}},
		{xml.Name{Local: "r"}, []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: "urn:xmpp:sm:3"}}, xml.Name{Space: "urn:xmpp:sm:3", Local: "r"}},
		{xml.Name{Space: "stream", Local: "features"}, nil, xml.Name{Space: nsStream, Local: "features"}},
		{xml.Name{Space: "sm", Local: "a"}, []xml.Attr{{Name: xml.Name{Space: "xmlns", Local: "sm"}, Value: "urn:xmpp:sm:3"}}, xml.Name{Space: "urn:xmpp:sm:3", Local: "a"}},
	} {
		if got := resolve(tc.raw, tc.attrs, nsClient); got != tc.want {
			t.Errorf("resolve(%v) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustWrite(t *testing.T, c net.Conn, s string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := c.Write([]byte(s)); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write blocked")
	}
}
