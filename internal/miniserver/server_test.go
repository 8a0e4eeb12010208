package miniserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/stream"
)

func TestLoginMechanisms(t *testing.T) {
	s := startServer(t, nil)
	for _, m := range []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.Plain} {
		for _, direct := range []bool{false, true} {
			name := fmt.Sprintf("%s-direct=%v", m.Name, direct)
			t.Run(name, func(t *testing.T) {
				res := strings.ToLower(strings.ReplaceAll(name, "=", ""))
				c, err := tryLogin(t, s, "alice", res, dialOpts{mech: m, direct: direct})
				if err != nil {
					t.Fatalf("login: %v", err)
				}
				if got, want := c.jid.String(), "alice@localhost/"+res; got != want {
					t.Fatalf("bound %q, want %q", got, want)
				}
				if on := s.Online("alice@localhost"); !slices.Contains(on, res) {
					t.Fatalf("Online = %v, want it to contain %q", on, res)
				}
				// The session works: the server answers a ping.
				if r := c.iq("get", "localhost", "<ping xmlns='urn:xmpp:ping'/>"); r.attr("type") != "result" {
					t.Fatalf("ping: %s", r)
				}
			})
		}
	}
	if st := s.Stats(); st.Logins < 6 {
		t.Errorf("Stats.Logins = %d, want >= 6", st.Logins)
	}
}

func TestWrongPassword(t *testing.T) {
	s := startServer(t, nil)
	for _, m := range []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.Plain} {
		t.Run(m.Name, func(t *testing.T) {
			if _, err := tryLogin(t, s, "alice", "x", dialOpts{mech: m, pass: "wrong"}); err == nil {
				t.Fatal("login with a wrong password succeeded")
			}
			if _, err := tryLogin(t, s, "nobody", "x", dialOpts{mech: m, pass: "pw"}); err == nil {
				t.Fatal("login of an unknown user succeeded")
			}
		})
	}
	if on := s.Online("alice@localhost"); len(on) != 0 {
		t.Fatalf("Online = %v after failed logins", on)
	}
	eventually(t, "6 auth failures counted", func() bool { return s.Stats().AuthFailures >= 6 })
}

func TestAddAccount(t *testing.T) {
	s := startServer(t, nil)
	s.AddAccount("erin@localhost", "erinpw")
	if _, err := tryLogin(t, s, "erin", "r", dialOpts{pass: "erinpw"}); err != nil {
		t.Fatalf("login of added account: %v", err)
	}
	s.AddAccount("erin", "newpw")
	if _, err := tryLogin(t, s, "erin", "r2", dialOpts{pass: "erinpw"}); err == nil {
		t.Fatal("old password still accepted after the account changed")
	}
	if _, err := tryLogin(t, s, "erin", "r3", dialOpts{pass: "newpw"}); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
}

func TestBindResource(t *testing.T) {
	s := startServer(t, nil)
	c := login(t, s, "alice", "")
	if c.jid.Resourcepart() == "" || c.jid.Bare().String() != "alice@localhost" {
		t.Fatalf("generated JID %q", c.jid)
	}
	first := login(t, s, "bob", "same")
	second := login(t, s, "bob", "same")
	if second.jid.String() != "bob@localhost/same" {
		t.Fatalf("second bind got %q", second.jid)
	}
	first.expectClosed("replaced session")
	if !errors.Is(first.err, stream.Conflict) {
		t.Fatalf("replaced session ended with %v, want a conflict stream error", first.err)
	}
	if on := s.Online("bob@localhost"); !slices.Equal(on, []string{"same"}) {
		t.Fatalf("Online = %v", on)
	}
	if r := second.iq("get", "", "<ping xmlns='urn:xmpp:ping'/>"); r.attr("type") != "result" {
		t.Fatalf("replacing session does not work: %s", r)
	}
}

func TestMessageRouting(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	bob1 := login(t, s, "bob", "one")
	bob2 := login(t, s, "bob", "two")
	alice.available(0)
	bob1.available(5)
	bob2.available(1)

	// Full JID, with a forged from: the server stamps the real sender.
	alice.send("<message to='bob@localhost/two' from='carol@localhost/x' type='chat'><body>full</body></message>")
	bob2.expect("full-JID message", isMsg("alice@localhost/a", "full"))

	// Chat to the bare JID goes to the highest priority only.
	alice.send("<message to='bob@localhost' type='chat'><body>bare chat</body></message>")
	bob1.expect("bare chat on the top resource", isMsg("alice@localhost/a", "bare chat"))
	// Normal to the bare JID goes to every non-negative resource.
	alice.send("<message to='bob@localhost'><body>bare normal</body></message>")
	bob1.expect("bare normal on one", isMsg("alice@localhost/a", "bare normal"))
	bob2.expect("bare normal on two", func(e *el) bool {
		if isMsg("alice@localhost/a", "bare chat")(e) {
			t.Fatalf("chat to the bare JID reached the lower priority resource")
		}
		return isMsg("alice@localhost/a", "bare normal")(e)
	})
	// A full JID that is offline falls back to the bare JID.
	alice.send("<message to='bob@localhost/gone' type='chat'><body>fallback</body></message>")
	bob1.expect("fallback", isMsg("alice@localhost/a", "fallback"))

	// Unknown account and other domains.
	alice.send("<message to='nobody@localhost' id='m1' type='chat'><body>x</body></message>")
	if e := alice.expect("error for unknown user", func(e *el) bool { return e.attr("id") == "m1" }); errCond(e) != "service-unavailable" {
		t.Fatalf("unknown user: %s", e)
	}
	alice.send("<message to='x@elsewhere.example' id='m2'><body>x</body></message>")
	if e := alice.expect("error for remote", func(e *el) bool { return e.attr("id") == "m2" }); errCond(e) != "remote-server-not-found" {
		t.Fatalf("remote: %s", e)
	}
	alice.send("<message to='not a jid@@' id='m3'><body>x</body></message>")
	if e := alice.expect("error for bad jid", func(e *el) bool { return e.attr("id") == "m3" }); errCond(e) != "jid-malformed" {
		t.Fatalf("bad jid: %s", e)
	}

	// Offline storage: chat is kept with a delay, headline is not.
	alice.send("<message to='carol@localhost' type='headline'><body>headline</body></message>")
	alice.send("<message to='carol@localhost' type='chat'><body>stored</body></message>")
	if r := alice.iq("get", "", "<ping xmlns='urn:xmpp:ping'/>"); r.attr("type") != "result" {
		t.Fatal("ping failed")
	}
	carol := login(t, s, "carol", "c")
	carol.send("<presence/>")
	m := carol.expect("offline message", isMsg("alice@localhost/a", "stored"))
	if m.child(nsDelay, "delay") == nil {
		t.Fatalf("offline message without delay: %s", m)
	}
	carol.expectNone("headline stored offline", 200*time.Millisecond, isMsg("alice@localhost/a", "headline"))
}

func TestIQRouting(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	bob := login(t, s, "bob", "b")
	alice.send("<iq type='get' id='q1' to='bob@localhost/b'><query xmlns='jabber:iq:version'/></iq>")
	q := bob.expect("routed iq", func(e *el) bool { return e.attr("id") == "q1" })
	if q.attr("from") != "alice@localhost/a" {
		t.Fatalf("iq from %q", q.attr("from"))
	}
	bob.send("<iq type='result' id='q1' to='alice@localhost/a'><query xmlns='jabber:iq:version'><name>b</name></query></iq>")
	r := alice.expect("iq result", func(e *el) bool { return e.attr("id") == "q1" })
	if r.attr("type") != "result" || r.attr("from") != "bob@localhost/b" {
		t.Fatalf("result: %s", r)
	}
	if r := alice.iq("get", "bob@localhost/nope", "<ping xmlns='urn:xmpp:ping'/>"); errCond(r) != "service-unavailable" {
		t.Fatalf("iq to an offline resource: %s", r)
	}
	// An iq to a bare JID is answered by the server for the account.
	if r := alice.iq("get", "bob@localhost", "<query xmlns='"+nsDiscoInfo+"'/>"); r.attr("type") != "result" ||
		r.child(nsDiscoInfo, "query").child(nsDiscoInfo, "identity").attr("category") != "account" {
		t.Fatalf("disco on a bare JID: %s", r)
	}
	if r := alice.iq("get", "bob@localhost", "<query xmlns='urn:example:unknown'/>"); errCond(r) != "service-unavailable" {
		t.Fatalf("unknown namespace on a bare JID: %s", r)
	}
}

func TestServerIQ(t *testing.T) {
	s := startServer(t, nil)
	c := login(t, s, "alice", "a")
	r := c.iq("get", "localhost", "<query xmlns='"+nsDiscoInfo+"'/>")
	q := r.child(nsDiscoInfo, "query")
	if q == nil || q.child(nsDiscoInfo, "identity").attr("category") != "server" || q.child(nsDiscoInfo, "identity").attr("type") != "im" {
		t.Fatalf("disco#info: %s", r)
	}
	var feats []string
	for _, f := range q.children(nsDiscoInfo, "feature") {
		feats = append(feats, f.attr("var"))
	}
	for _, want := range []string{nsPing, nsDiscoInfo, nsRoster} {
		if !slices.Contains(feats, want) {
			t.Errorf("feature %q missing from %v", want, feats)
		}
	}
	r = c.iq("get", "localhost", "<query xmlns='"+nsDiscoItem+"'/>")
	if it := r.child(nsDiscoItem, "query").child(nsDiscoItem, "item"); it == nil || it.attr("jid") != "conference.localhost" {
		t.Fatalf("disco#items: %s", r)
	}
	if r := c.iq("get", "localhost", "<ping xmlns='urn:xmpp:ping'/>"); r.attr("type") != "result" || r.attr("from") != "localhost" {
		t.Fatalf("ping: %s", r)
	}
	if r := c.iq("get", "localhost", "<query xmlns='urn:example:nothing'/>"); errCond(r) != "service-unavailable" {
		t.Fatalf("unknown namespace: %s", r)
	}
	if r := c.iq("get", "localhost", "<ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/>"); errCond(r) != "bad-request" {
		t.Fatalf("two payloads: %s", r)
	}
	if r := c.iq("bogus", "localhost", "<ping xmlns='urn:xmpp:ping'/>"); errCond(r) != "bad-request" {
		t.Fatalf("bad type: %s", r)
	}
	if r := c.iq("get", "", "<ping xmlns='urn:xmpp:ping'/>"); r.attr("type") != "result" {
		t.Fatalf("ping without to: %s", r)
	}
}

func TestRosterAndPresence(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	bob := login(t, s, "bob", "b")
	alice.available(0)
	bob.available(0)

	r := alice.iq("set", "", "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query>")
	if r.attr("type") != "result" {
		t.Fatalf("roster set: %s", r)
	}
	push := alice.expect("roster push", func(e *el) bool {
		return e.Name.Local == "iq" && e.attr("type") == "set" && e.child(nsRoster, "query") != nil
	})
	if it := push.child(nsRoster, "query").child(nsRoster, "item"); it.attr("name") != "Bob" || it.attr("subscription") != "none" {
		t.Fatalf("push: %s", push)
	}

	alice.send("<presence to='bob@localhost' type='subscribe'/>")
	bob.expect("subscription request", isPres("alice@localhost", "subscribe"))
	bob.send("<presence to='alice@localhost' type='subscribed'/>")
	alice.expect("approval", isPres("bob@localhost", "subscribed"))
	alice.expect("bob's presence after approval", isPres("bob@localhost/b", ""))

	r = alice.iq("get", "", "<query xmlns='jabber:iq:roster'/>")
	it := r.child(nsRoster, "query").child(nsRoster, "item")
	if it == nil || it.attr("jid") != "bob@localhost" || it.attr("subscription") != "to" || it.childText(nsRoster, "group") != "Friends" {
		t.Fatalf("roster: %s", r)
	}
	r = bob.iq("get", "", "<query xmlns='jabber:iq:roster'/>")
	if it := r.child(nsRoster, "query").child(nsRoster, "item"); it == nil || it.attr("subscription") != "from" {
		t.Fatalf("bob's roster: %s", r)
	}

	// Bob's presence changes reach alice; alice's do not reach bob.
	bob.send("<presence><show>away</show><status>lunch</status></presence>")
	p := alice.expect("bob away", isPres("bob@localhost/b", ""))
	if p.childText(nsClient, "show") != "away" {
		t.Fatalf("presence: %s", p)
	}
	alice.send("<presence><show>dnd</show></presence>")
	bob.expectNone("alice's presence without subscription", 200*time.Millisecond, isPres("alice@localhost/a", ""))

	// Bob goes offline: alice sees unavailable.
	_ = bob.conn.Close()
	alice.expect("bob unavailable", isPres("bob@localhost/b", "unavailable"))

	// A new session of alice gets bob's state with its initial presence.
	bob2 := login(t, s, "bob", "b2")
	bob2.available(3)
	alice.expect("bob2 available", isPres("bob@localhost/b2", ""))
	alice2 := login(t, s, "alice", "a2")
	alice2.send("<presence/>")
	alice2.expect("probe result for bob2", isPres("bob@localhost/b2", ""))

	// Removing the contact cancels the subscription.
	r = alice.iq("set", "", "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query>")
	if r.attr("type") != "result" {
		t.Fatalf("remove: %s", r)
	}
	bob2.expect("unsubscribe", isPres("alice@localhost", "unsubscribe"))
	r = bob2.iq("get", "", "<query xmlns='jabber:iq:roster'/>")
	if it := r.child(nsRoster, "query").child(nsRoster, "item"); it == nil || it.attr("subscription") != "none" {
		t.Fatalf("bob's roster after removal: %s", r)
	}
}

func TestOversizeStanza(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxStanza = 4096 })
	c := login(t, s, "alice", "a")
	c.send("<message to='bob@localhost'><body>%s</body></message>", strings.Repeat("x", 5000))
	c.expectClosed("oversize stanza")
	if !errors.Is(c.err, stream.PolicyViolation) {
		t.Fatalf("stream ended with %v, want policy-violation", c.err)
	}
	// Much larger input hits the byte cap before the parser buffers it.
	d := login(t, s, "alice", "b")
	_ = d.conn.SetWriteDeadline(time.Now().Add(waitFor))
	go func() { _, _ = d.conn.Write([]byte("<message><body>" + strings.Repeat("y", 1<<20))) }()
	d.expectClosed("huge stanza")
	if st := s.Stats(); st.StreamErrors < 1 {
		t.Fatalf("StreamErrors = %d", st.StreamErrors)
	}
	// Smaller stanzas still pass.
	e := login(t, s, "alice", "c")
	if r := e.iq("get", "", "<ping xmlns='urn:xmpp:ping'/>"); r.attr("type") != "result" {
		t.Fatal("server broken after oversize stanzas")
	}
}

func TestMalformedInput(t *testing.T) {
	s := startServer(t, nil)
	c := login(t, s, "alice", "a")
	c.send("<message><body>unclosed</bodyx></message>")
	c.expectClosed("not well-formed")
	if !errors.Is(c.err, stream.NotWellFormed) {
		t.Fatalf("ended with %v, want not-well-formed", c.err)
	}
	d := login(t, s, "alice", "b")
	d.send("<foo xmlns='urn:example'/>")
	d.expectClosed("unsupported stanza")
	if !errors.Is(d.err, stream.UnsupportedStanzaType) {
		t.Fatalf("ended with %v", d.err)
	}
}

func TestDropAll(t *testing.T) {
	s := startServer(t, nil)
	a := login(t, s, "alice", "a")
	b := login(t, s, "bob", "b")
	s.DropAll()
	a.expectClosed("drop")
	b.expectClosed("drop")
	if a.err == nil || errors.As(a.err, new(stream.Error)) {
		t.Fatalf("drop ended the stream with %v, want an abrupt close", a.err)
	}
	if on := s.Online("alice@localhost"); len(on) != 0 {
		t.Fatalf("Online after DropAll = %v", on)
	}
	c := login(t, s, "alice", "a")
	if r := c.iq("get", "", "<ping xmlns='urn:xmpp:ping'/>"); r.attr("type") != "result" {
		t.Fatal("reconnect after DropAll failed")
	}
}

func TestSetDeaf(t *testing.T) {
	s := startServer(t, nil)
	c := login(t, s, "alice", "a")
	s.SetDeaf(true)
	c.send("<iq type='get' id='deaf1'><ping xmlns='urn:xmpp:ping'/></iq>")
	c.expectNone("answer while deaf", 300*time.Millisecond, func(e *el) bool { return true })
	select {
	case <-c.done:
		t.Fatal("connection closed while deaf")
	default:
	}
	// A new connection is not served while deaf.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := tryLogin(t, s, "bob", "b", dialOpts{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("login completed while deaf: %v", err)
	case <-ctx.Done():
	}
	s.SetDeaf(false)
	if err := <-done; err != nil {
		t.Fatalf("login after deafness: %v", err)
	}
	if r := c.iq("get", "", "<ping xmlns='urn:xmpp:ping'/>"); r.attr("type") != "result" {
		t.Fatal("no answer after SetDeaf(false)")
	}
	if s.Stats().Dropped < 1 {
		t.Fatal("Dropped counter not updated")
	}
}

func TestRestart(t *testing.T) {
	s := startServer(t, func(c *Config) { c.HTTPAddr = "127.0.0.1:0" })
	addr, tlsAddr, httpAddr := s.Addr(), s.TLSAddr(), s.HTTPAddr()
	a := login(t, s, "alice", "a")
	a.join("room@conference.localhost/alice", "")
	if err := s.Restart(context.Background()); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	a.expectClosed("restart")
	if s.Addr() != addr || s.TLSAddr() != tlsAddr || s.HTTPAddr() != httpAddr {
		t.Fatalf("addresses changed: %s %s %s -> %s %s %s", addr, tlsAddr, httpAddr, s.Addr(), s.TLSAddr(), s.HTTPAddr())
	}
	if occ := s.Occupants("room"); len(occ) != 0 {
		t.Fatalf("occupants survived the restart: %v", occ)
	}
	b := login(t, s, "alice", "a")
	if r := b.iq("get", "conference.localhost", "<query xmlns='"+nsDiscoItem+"'/>"); r.child(nsDiscoItem, "query").firstChild() != nil {
		t.Fatalf("rooms survived the restart: %s", r)
	}
	if _, err := tryLogin(t, s, "bob", "b", dialOpts{direct: true}); err != nil {
		t.Fatalf("direct TLS after restart: %v", err)
	}
}

func TestMaxConns(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxConns = 1 })
	a := login(t, s, "alice", "a")
	if _, err := tryLogin(t, s, "bob", "b", dialOpts{}); err == nil {
		t.Fatal("second connection accepted over MaxConns")
	}
	if s.Stats().Refused < 1 {
		t.Fatal("Refused not counted")
	}
	_ = a.conn.Close()
	eventually(t, "connection released", func() bool { return s.Stats().Active == 0 })
	login(t, s, "bob", "b")
}

func TestCloseTwice(t *testing.T) {
	s := startServer(t, nil)
	a := login(t, s, "alice", "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	a.expectClosed("server closed")
	if err := s.Restart(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Restart after Close = %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(context.Background(), Config{Domain: "a@b", Logger: quietLogger()}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("bad domain: %v", err)
	}
	if _, err := Start(context.Background(), Config{Addr: "256.0.0.1:1", Logger: quietLogger()}); err == nil {
		t.Fatal("bad address accepted")
	}
}
