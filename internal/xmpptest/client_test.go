package xmpptest

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"
)

func dialFake(t *testing.T, s *fakeServer, user, resource, mode string) *Client {
	t.Helper()
	addr := s.c2s.Addr().String()
	if mode == "direct" {
		addr = s.direct.Addr().String()
	}
	return Dial(t, Options{Addr: addr, JID: user + "@localhost", Password: s.accounts[user],
		Resource: resource, TLS: mode, RootCAs: s.pool, Timeout: 5 * time.Second})
}

func TestDialModes(t *testing.T) {
	s := startFakeServer(t)
	for _, mode := range []string{"starttls", "direct"} {
		t.Run(mode, func(t *testing.T) {
			c := dialFake(t, s, "alice", "r-"+mode, mode)
			if got, want := c.JID().String(), "alice@localhost/r-"+mode; got != want {
				t.Errorf("JID() = %q, want %q (the requested resource)", got, want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := c.IQ(ctx, "localhost", "get", "<ping xmlns='urn:xmpp:ping'/>")
			if err != nil {
				t.Fatalf("IQ ping: %v", err)
			}
			if res.Type != "result" || res.From != "localhost" || res.Name != "iq" {
				t.Errorf("ping reply = %+v", res)
			}
		})
	}
}

func TestServerAssignedResource(t *testing.T) {
	s := startFakeServer(t)
	c := dialFake(t, s, "alice", "", "starttls")
	if c.JID().Resourcepart() == "" || c.JID().Bare().String() != "alice@localhost" {
		t.Errorf("JID() = %q, want alice@localhost/<assigned>", c.JID())
	}
}

func TestConnectFailures(t *testing.T) {
	s := startFakeServer(t)
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"wrong password", Options{Addr: s.c2s.Addr().String(), JID: "alice@localhost", Password: "nope", RootCAs: s.pool}, ""},
		{"untrusted certificate", Options{Addr: s.c2s.Addr().String(), JID: "alice@localhost", Password: "alicepw"}, "certificate"},
		{"bad TLS mode", Options{Addr: s.c2s.Addr().String(), JID: "alice@localhost", Password: "alicepw", TLS: "none"}, "unknown TLS mode"},
		{"bad JID", Options{Addr: s.c2s.Addr().String(), JID: "@@", Password: "x"}, "bad JID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Timeout = 5 * time.Second
			c, err := Connect(context.Background(), tc.opts)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestChatIQAndExpect(t *testing.T) {
	s := startFakeServer(t)
	alice := dialFake(t, s, "alice", "a", "starttls")
	bob := dialFake(t, s, "bob", "b", "direct")

	for _, body := range []string{"one", "two <&> 'three'"} {
		if err := alice.SendMessage(bob.JID().String(), "chat", body); err != nil {
			t.Fatal(err)
		}
	}
	// Both are buffered by now or soon; Expect takes the matching one even
	// though "one" arrived first, and leaves "one" for later.
	got := bob.Expect(t, 5*time.Second, func(s Stanza) bool { return strings.HasPrefix(s.Body, "two") })
	if got.Body != "two <&> 'three'" || got.From != alice.JID().String() || got.Type != "chat" {
		t.Errorf("second message = %+v", got)
	}
	got = bob.Expect(t, 5*time.Second, func(s Stanza) bool { return s.Name == "message" })
	if got.Body != "one" {
		t.Errorf("first message body = %q", got.Body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Bob's client answers pings by itself, while alice's waits for the reply.
	res, err := alice.IQ(ctx, bob.JID().String(), "get", "<ping xmlns='urn:xmpp:ping'/>")
	if err != nil || res.Type != "result" || res.From != bob.JID().String() {
		t.Errorf("ping bob: %v %+v", err, res)
	}
	_, err = alice.IQ(ctx, "nobody@localhost/x", "get", "<ping xmlns='urn:xmpp:ping'/>")
	var se *StanzaError
	if !errors.As(err, &se) || se.Condition != "item-not-found" {
		t.Errorf("IQ to nobody: err = %v, want a StanzaError item-not-found", err)
	}
	if _, err := alice.IQ(ctx, "localhost", "get", "<unclosed>"); err == nil {
		t.Error("IQ with a malformed payload was sent")
	}

	// A token reader is sent as well as a string.
	dec := xml.NewDecoder(strings.NewReader("<message type='chat' to='" + bob.JID().String() + "'><body>tokens</body></message>"))
	if err := alice.Send(ctx, dec); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, 5*time.Second, func(s Stanza) bool { return s.Body == "tokens" })

	// Nothing else matches: Wait reports a timeout instead of hanging.
	start := time.Now()
	if _, err := bob.Wait(ctx, 0, 200*time.Millisecond, func(Stanza) bool { return false }); !errors.Is(err, ErrTimeout) {
		t.Errorf("Wait = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Wait took %v for a 200ms timeout", d)
	}
}

func TestSendRejects(t *testing.T) {
	s := startFakeServer(t)
	c := dialFake(t, s, "alice", "", "starttls")
	ctx := context.Background()
	for _, bad := range []any{"<a><b></a>", "<a/><b/>", "text", "", 42} {
		if err := c.Send(ctx, bad); err == nil {
			t.Errorf("Send(%#v) succeeded, want an error", bad)
		}
	}
}

func TestJoinLeave(t *testing.T) {
	s := startFakeServer(t)
	alice := dialFake(t, s, "alice", "a", "starttls")
	bob := dialFake(t, s, "bob", "b", "starttls")
	room := "lobby@conference.localhost"
	if err := alice.Join(room, "alice"); err != nil {
		t.Fatalf("alice joins: %v", err)
	}
	if err := bob.Join(room, "bob"); err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	alice.Expect(t, 5*time.Second, func(s Stanza) bool { return s.Name == "presence" && s.From == room+"/bob" })
	if err := bob.SendMessage(room, "groupchat", "hi room"); err != nil {
		t.Fatal(err)
	}
	m := alice.Expect(t, 5*time.Second, func(s Stanza) bool { return s.Type == "groupchat" })
	if m.From != room+"/bob" || m.Body != "hi room" {
		t.Errorf("groupchat = %+v", m)
	}
	if err := bob.Leave(room); err != nil {
		t.Errorf("bob leaves: %v", err)
	}
	if err := bob.Leave(room); err == nil {
		t.Error("leaving a room twice succeeded")
	}
	err := alice.Join("locked@conference.localhost", "forbidden")
	var se *StanzaError
	if !errors.As(err, &se) || se.Condition != "forbidden" {
		t.Errorf("join refused: err = %v, want a StanzaError forbidden", err)
	}
}

func TestClose(t *testing.T) {
	s := startFakeServer(t)
	c := dialFake(t, s, "alice", "", "starttls")
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if c.Err() == nil {
		t.Error("Err() = nil after Close")
	}
	if err := c.SendMessage("bob@localhost", "chat", "late"); err == nil {
		t.Error("SendMessage after Close succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.IQ(ctx, "localhost", "get", "<ping xmlns='urn:xmpp:ping'/>"); err == nil {
		t.Error("IQ after Close succeeded")
	}
}

func TestStanzaParse(t *testing.T) {
	const in = `<presence xmlns='jabber:client' from='r@conference.localhost/n' to='a@localhost/x' type='error' id='p1'>` +
		`<x xmlns='http://jabber.org/protocol/muc#user'><item role='none'/><status code='110'/><status code='307'/></x>` +
		`<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error>` +
		`<body>a &amp; b</body></presence>`
	d := xml.NewDecoder(strings.NewReader(in))
	tok, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	root, err := readElement(d, tok.(xml.StartElement))
	if err != nil {
		t.Fatal(err)
	}
	s := newStanza(root, 7)
	checks := []struct{ name, got, want string }{
		{"Name", s.Name, "presence"},
		{"From", s.From, "r@conference.localhost/n"},
		{"To", s.To, "a@localhost/x"},
		{"Type", s.Type, "error"},
		{"ID", s.ID, "p1"},
		{"Body", s.Body, "a & b"},
		{"ErrorCondition", s.ErrorCondition(), "forbidden"},
		{"StatusCodes", strings.Join(s.StatusCodes(), ","), "110,307"},
		{"item role", s.Find(nsMUCUser, "item").Attr("role"), "none"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !s.HasStatus("307") || s.HasStatus("201") {
		t.Errorf("HasStatus wrong for codes %v", s.StatusCodes())
	}
	// Raw parses back to the same tree.
	d2 := xml.NewDecoder(strings.NewReader(s.Raw))
	tok, err = d2.Token()
	if err != nil {
		t.Fatalf("Raw %q: %v", s.Raw, err)
	}
	again, err := readElement(d2, tok.(xml.StartElement))
	if err != nil {
		t.Fatalf("Raw %q: %v", s.Raw, err)
	}
	if got := newStanza(again, 7).Raw; got != s.Raw {
		t.Errorf("Raw does not round-trip:\n%s\n%s", s.Raw, got)
	}
	if _, err := readElement(xml.NewDecoder(strings.NewReader("<a><b>")), xml.StartElement{Name: xml.Name{Local: "x"}}); err == nil {
		t.Error("readElement of a truncated element succeeded")
	}
}
