package miniserver

import (
	"slices"
	"testing"
	"time"
)

// TestOccupantIDAndRetraction: the room puts its own occupant-id on
// presences and messages (dropping a forged one) and a stanza-id on
// messages; a moderator's retraction removes the message and is announced
// to everyone; a participant's is refused.
func TestOccupantIDAndRetraction(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	bob := login(t, s, "bob", "b")
	alice.join(lobby+"/Alice", "")
	self := bob.join(lobby+"/Bob", "")
	bobID := self.child(nsOccID, "occupant-id").attr("id")
	if bobID == "" {
		t.Fatalf("no occupant-id in %s", self)
	}
	p := alice.expect("bob's join", isPres(lobby+"/Bob", ""))
	if got := p.child(nsOccID, "occupant-id").attr("id"); got != bobID {
		t.Fatalf("alice sees occupant-id %q, bob %q", got, bobID)
	}
	bob.send("<message to='%s' type='groupchat'><body>spam</body><occupant-id xmlns='%s' id='forged'/></message>", lobby, nsOccID)
	m := alice.expect("bob's message", isMsg(lobby+"/Bob", "spam"))
	if ids := m.children(nsOccID, "occupant-id"); len(ids) != 1 || ids[0].attr("id") != bobID {
		t.Fatalf("occupant ids on the message: %s", m)
	}
	sid := m.child(nsSID, "stanza-id")
	if sid == nil || sid.attr("by") != lobby || sid.attr("id") == "" {
		t.Fatalf("no stanza-id by the room: %s", m)
	}
	id := sid.attr("id")
	if got := s.Retractable(lobby); !slices.Equal(got, []string{id}) {
		t.Fatalf("Retractable = %v", got)
	}
	moderate := "<apply-to xmlns='" + nsFasten + "' id='" + id + "'><moderate xmlns='" + nsModerate + "'><retract xmlns='" + nsRetract + "'/><reason>spam</reason></moderate></apply-to>"
	if res := bob.iq("set", lobby, moderate); errCond(res) != "forbidden" {
		t.Fatalf("a participant retracted: %s", res)
	}
	if res := alice.iq("set", lobby, moderate); res.attr("type") != "result" {
		t.Fatalf("moderator's retraction: %s", res)
	}
	isNote := func(e *el) bool {
		a := e.child(nsFasten, "apply-to")
		return e.Name.Local == "message" && e.attr("from") == lobby && a != nil && a.attr("id") == id &&
			a.child(nsModerate, "moderated") != nil && a.child(nsModerate, "moderated").attr("by") == lobby+"/Alice" &&
			a.child(nsModerate, "moderated").childText(nsModerate, "reason") == "spam"
	}
	bob.expect("retraction notice", isNote)
	alice.expect("retraction notice", isNote)
	if got := s.Retractable(lobby); len(got) != 0 {
		t.Fatalf("still retractable: %v", got)
	}
	if res := alice.iq("set", lobby, moderate); errCond(res) != "item-not-found" {
		t.Fatalf("second retraction: %s", res)
	}
	// The history no longer holds it.
	carol := login(t, s, "carol", "c")
	carol.join(lobby+"/Carol", "")
	carol.expectNone("retracted history", 200*time.Millisecond, isMsg(lobby+"/Bob", "spam"))
}

// TestMembersOnly: a members-only room refuses those without membership.
func TestMembersOnly(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	alice.join(lobby+"/Alice", "")
	form := "<query xmlns='" + nsMUCOwner + "'><x xmlns='" + nsXData + "' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_membersonly'><value>1</value></field></x></query>"
	if res := alice.iq("set", lobby, form); res.attr("type") != "result" {
		t.Fatalf("configure: %s", res)
	}
	if !s.MembersOnly(lobby) {
		t.Fatal("not members-only")
	}
	bob := login(t, s, "bob", "b")
	if got := errCond(bob.join(lobby+"/Bob", "")); got != "registration-required" {
		t.Fatalf("bob joined a members-only room: %q", got)
	}
	alice.iq("set", lobby, "<query xmlns='"+nsMUCAdmin+"'><item affiliation='member' jid='bob@localhost'/></query>")
	if got := errCond(bob.join(lobby+"/Bob", "")); got != "" {
		t.Fatalf("a member refused: %q", got)
	}
	alice.iq("set", lobby, "<query xmlns='"+nsMUCOwner+"'><x xmlns='"+nsXData+"' type='submit'><field var='muc#roomconfig_membersonly'><value>0</value></field></x></query>")
	if s.MembersOnly(lobby) {
		t.Fatal("still members-only")
	}
}
