package miniserver

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func isSM(local string) func(*el) bool {
	return func(e *el) bool { return e.Name.Space == nsSM && e.Name.Local == local }
}

func TestSMEnableCountAndAck(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "sm")
	bob := login(t, s, "bob", "sm")
	alice.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	en := alice.expect("enabled", isSM("enabled"))
	if en.attr("id") == "" || en.attr("resume") != "true" || en.attr("max") != "60" {
		t.Errorf("enabled = %s: want an id, resumption and max='60'", en)
	}
	for i := range 5 {
		alice.send("<message to='bob@localhost/sm' type='chat'><body>m%d</body></message>", i)
	}
	alice.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	alice.send("<r xmlns='urn:xmpp:sm:3'/>")
	if a := alice.expect("ack", isSM("a")); a.attr("h") != "6" {
		t.Errorf("a = %s, want h='6' (five messages and one iq)", a)
	}
	for i := range 5 {
		bob.expect("message", func(e *el) bool {
			return e.Name.Local == "message" && e.childText(nsClient, "body") == fmt.Sprintf("m%d", i)
		})
	}

	// The server's own ack request: alice received one stanza (the ping
	// result) since <enabled/>.
	if err := s.RequestAck(alice.jid.String()); err != nil {
		t.Fatal(err)
	}
	alice.expect("ack request", isSM("r"))
	st, _ := s.SM(alice.jid.String())
	if !st.Enabled || st.Sent != 1 || st.Handled != 6 {
		t.Fatalf("state = %+v, want 1 sent and 6 handled", st)
	}
	alice.send("<a xmlns='urn:xmpp:sm:3' h='1'/>")
	eventually(t, "ack recorded", func() bool {
		st, _ := s.SM(alice.jid.String())
		return st.Acks == 1 && st.Acked == 1
	})

	// Enabling twice is refused; the stream goes on.
	alice.send("<enable xmlns='urn:xmpp:sm:3'/>")
	if f := alice.expect("failed", isSM("failed")); f.child(nsStanzas, "unexpected-request") == nil {
		t.Errorf("failed = %s", f)
	}
	// Acknowledging more than was sent ends the stream.
	alice.send("<a xmlns='urn:xmpp:sm:3' h='5'/>")
	alice.expectClosed("ack above the sent count")
}

func TestSMRequiresEnable(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "sm")
	if err := s.RequestAck(alice.jid.String()); !errors.Is(err, ErrNoSM) {
		t.Errorf("RequestAck before enable = %v, want ErrNoSM", err)
	}
	if err := s.RequestAck("nobody@localhost/x"); !errors.Is(err, ErrNoOccupant) {
		t.Errorf("RequestAck to nobody = %v, want ErrNoOccupant", err)
	}
	alice.send("<r xmlns='urn:xmpp:sm:3'/>")
	alice.expectClosed("<r/> before <enable/>")
}

func TestSMDisabled(t *testing.T) {
	s := startServer(t, func(c *Config) { c.NoSM = true })
	alice := login(t, s, "alice", "sm")
	alice.send("<enable xmlns='urn:xmpp:sm:3'/>")
	alice.expect("failed", isSM("failed"))
	if st, ok := s.SM(alice.jid.String()); !ok || st.Enabled {
		t.Errorf("state = %+v (bound %v)", st, ok)
	}
	if err := s.RequestAck(alice.jid.String()); !errors.Is(err, ErrNoSM) {
		t.Errorf("RequestAck = %v, want ErrNoSM", err)
	}
}

// TestSMDeafCountsNothing checks that a deaf server neither counts what it
// ignores nor answers ack requests.
func TestSMDeafCountsNothing(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "sm")
	alice.send("<enable xmlns='urn:xmpp:sm:3'/>")
	alice.expect("enabled", isSM("enabled"))
	s.SetDeaf(true)
	alice.send("<message to='bob@localhost' type='chat'><body>lost</body></message>")
	alice.send("<r xmlns='urn:xmpp:sm:3'/>")
	alice.expectNone("ack from a deaf server", 300*time.Millisecond, isSM("a"))
	s.SetDeaf(false)
	alice.send("<r xmlns='urn:xmpp:sm:3'/>")
	if a := alice.expect("ack", isSM("a")); a.attr("h") != "0" {
		t.Errorf("a = %s, want h='0'", a)
	}
}
