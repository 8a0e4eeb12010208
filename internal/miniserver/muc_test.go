package miniserver

import (
	"errors"
	"slices"
	"testing"
)

const lobby = "lobby@conference.localhost"

func itemOf(e *el) *el {
	if x := e.child(nsMUCUser, "x"); x != nil {
		return x.child(nsMUCUser, "item")
	}
	return nil
}

func TestMUCJoinAndBroadcast(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	bob := login(t, s, "bob", "b")

	self := alice.join(lobby+"/Alice", "")
	if !hasStatus(self, 201) || errCond(self) != "" {
		t.Fatalf("creator self-presence: %s", self)
	}
	if it := itemOf(self); it.attr("affiliation") != "owner" || it.attr("role") != "moderator" {
		t.Fatalf("creator item: %s", self)
	}
	subj := alice.expect("subject", func(e *el) bool { return e.Name.Local == "message" && e.child(nsClient, "subject") != nil })
	if subj.attr("from") != lobby {
		t.Fatalf("subject from %q", subj.attr("from"))
	}

	self = bob.join(lobby+"/Bob", "")
	if hasStatus(self, 201) {
		t.Fatalf("second join marked as creation: %s", self)
	}
	if it := itemOf(self); it.attr("affiliation") != "none" || it.attr("role") != "participant" || it.attr("jid") != "bob@localhost/b" {
		t.Fatalf("joiner item: %s", self)
	}
	// Alice (moderator) sees bob's real JID.
	p := alice.expect("bob's join", isPres(lobby+"/Bob", ""))
	if itemOf(p).attr("jid") != "bob@localhost/b" || hasStatus(p, 110) {
		t.Fatalf("join seen by moderator: %s", p)
	}
	if got := s.Occupants("lobby"); !slices.Equal(got, []string{"Alice", "Bob"}) {
		t.Fatalf("Occupants = %v", got)
	}

	// Groupchat reaches everyone, sender included, from room/nick.
	bob.send("<message to='%s' type='groupchat' id='g1'><body>hello room</body></message>", lobby)
	alice.expect("groupchat", isMsg(lobby+"/Bob", "hello room"))
	echo := bob.expect("echo", isMsg(lobby+"/Bob", "hello room"))
	if echo.attr("id") != "g1" {
		t.Fatalf("echo lost its id: %s", echo)
	}

	// Nick conflict.
	carol := login(t, s, "carol", "c")
	if e := carol.join(lobby+"/Bob", ""); errCond(e) != "conflict" {
		t.Fatalf("taken nick: %s", e)
	}
	// Private message.
	alice.send("<message to='%s/Bob' type='chat'><body>psst</body></message>", lobby)
	pm := bob.expect("private message", isMsg(lobby+"/Alice", "psst"))
	if pm.child(nsMUCUser, "x") == nil {
		t.Fatalf("pm without muc#user x: %s", pm)
	}
	alice.send("<message to='%s/Nobody' type='chat' id='pm2'><body>?</body></message>", lobby)
	if e := alice.expect("pm error", func(e *el) bool { return e.attr("id") == "pm2" }); errCond(e) != "item-not-found" {
		t.Fatalf("pm to missing nick: %s", e)
	}
	// Not an occupant.
	carol.send("<message to='%s' type='groupchat' id='g2'><body>intruder</body></message>", lobby)
	if e := carol.expect("not-acceptable", func(e *el) bool { return e.attr("id") == "g2" }); errCond(e) != "not-acceptable" {
		t.Fatalf("groupchat from a non-occupant: %s", e)
	}

	// Subject change is broadcast and sent to later joiners.
	alice.send("<message to='%s' type='groupchat'><subject>Topic!</subject></message>", lobby)
	bob.expect("subject change", func(e *el) bool { return e.childText(nsClient, "subject") == "Topic!" })
	dave := login(t, s, "dave", "d")
	dave.join(lobby+"/Dave", "<history maxstanzas='0'/>")
	st := dave.expect("subject on join", func(e *el) bool {
		if e.Name.Local == "message" && e.child(nsClient, "body") != nil {
			t.Fatalf("history sent despite maxstanzas=0: %s", e)
		}
		return e.Name.Local == "message" && e.child(nsClient, "subject") != nil
	})
	if st.childText(nsClient, "subject") != "Topic!" || st.attr("from") != lobby+"/Alice" {
		t.Fatalf("subject on join: %s", st)
	}

	// Nick change (303).
	bob.send("<presence to='%s/Robert'/>", lobby)
	u := alice.expect("nick change", isPres(lobby+"/Bob", "unavailable"))
	if !hasStatus(u, 303) || itemOf(u).attr("nick") != "Robert" {
		t.Fatalf("nick change: %s", u)
	}
	alice.expect("new nick", isPres(lobby+"/Robert", ""))
	if got := s.Occupants(lobby); !slices.Contains(got, "Robert") || slices.Contains(got, "Bob") {
		t.Fatalf("Occupants after rename = %v", got)
	}

	// Leave: 110 for the leaver, unavailable for the others.
	bob.send("<presence to='%s/Robert' type='unavailable'/>", lobby)
	if l := bob.expect("own leave", isPres(lobby+"/Robert", "unavailable")); !hasStatus(l, 110) {
		t.Fatalf("leave: %s", l)
	}
	alice.expect("bob left", isPres(lobby+"/Robert", "unavailable"))

	// Disconnecting removes the occupant too.
	_ = dave.conn.Close()
	alice.expect("dave gone", isPres(lobby+"/Dave", "unavailable"))
	if got := s.Occupants(lobby); !slices.Equal(got, []string{"Alice"}) {
		t.Fatalf("Occupants = %v", got)
	}
}

func TestMUCHistory(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	alice.join(lobby+"/Alice", "")
	for i := range 25 {
		alice.send("<message to='%s' type='groupchat'><body>m%d</body></message>", lobby, i)
	}
	alice.expect("last message", isMsg(lobby+"/Alice", "m24"))

	bob := login(t, s, "bob", "b")
	bob.join(lobby+"/Bob", "")
	var got []string
	for {
		e := bob.expect("history or subject", func(e *el) bool { return e.Name.Local == "message" })
		if e.child(nsClient, "subject") != nil {
			break
		}
		if e.child(nsDelay, "delay") == nil {
			t.Fatalf("history without delay: %s", e)
		}
		got = append(got, e.childText(nsClient, "body"))
	}
	if len(got) != maxHistory || got[0] != "m5" || got[len(got)-1] != "m24" {
		t.Fatalf("history = %v", got)
	}

	carol := login(t, s, "carol", "c")
	carol.join(lobby+"/Carol", "<history maxstanzas='3'/>")
	got = nil
	for {
		e := carol.expect("history or subject", func(e *el) bool { return e.Name.Local == "message" })
		if e.child(nsClient, "subject") != nil {
			break
		}
		got = append(got, e.childText(nsClient, "body"))
	}
	if !slices.Equal(got, []string{"m22", "m23", "m24"}) {
		t.Fatalf("maxstanzas=3 history = %v", got)
	}

	dave := login(t, s, "dave", "d")
	dave.join(lobby+"/Dave", "<history maxchars='0'/>")
	e := dave.expect("first message", func(e *el) bool { return e.Name.Local == "message" })
	if e.child(nsClient, "subject") == nil {
		t.Fatalf("history sent despite maxchars=0: %s", e)
	}
}

func TestMUCPassword(t *testing.T) {
	s := startServer(t, nil)
	if err := s.SetRoomPassword("secret", "pw"); err != nil {
		t.Fatal(err)
	}
	alice := login(t, s, "alice", "a")
	if e := alice.join("secret@conference.localhost/Alice", ""); errCond(e) != "not-authorized" {
		t.Fatalf("join without password: %s", e)
	}
	if e := alice.join("secret@conference.localhost/Alice", "<password>nope</password>"); errCond(e) != "not-authorized" {
		t.Fatalf("join with a wrong password: %s", e)
	}
	if e := alice.join("secret@conference.localhost/Alice", "<password>pw</password>"); errCond(e) != "" {
		t.Fatalf("join with the password: %s", e)
	}

	// An owner can protect a room through the configuration form.
	alice.join(lobby+"/Alice", "")
	r := alice.iq("set", lobby, "<query xmlns='"+nsMUCOwner+"'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"+
		"<field var='muc#roomconfig_roomsecret'><value>s3</value></field></x></query>")
	if r.attr("type") != "result" {
		t.Fatalf("config submit: %s", r)
	}
	bob := login(t, s, "bob", "b")
	if e := bob.join(lobby+"/Bob", ""); errCond(e) != "not-authorized" {
		t.Fatalf("join after protection: %s", e)
	}
	if e := bob.join(lobby+"/Bob", "<password>s3</password>"); errCond(e) != "" {
		t.Fatalf("join with the new password: %s", e)
	}
	// Only owners configure.
	if r := bob.iq("get", lobby, "<query xmlns='"+nsMUCOwner+"'/>"); errCond(r) != "forbidden" {
		t.Fatalf("config by non-owner: %s", r)
	}
}

func TestMUCModeration(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	bob := login(t, s, "bob", "b")
	alice.join(lobby+"/Alice", "")
	bob.join(lobby+"/Bob", "")

	// A participant cannot kick.
	if r := bob.iq("set", lobby, "<query xmlns='"+nsMUCAdmin+"'><item nick='Alice' role='none'/></query>"); errCond(r) != "forbidden" {
		t.Fatalf("kick by participant: %s", r)
	}
	// Revoke voice: bob becomes a visitor and cannot speak.
	if r := alice.iq("set", lobby, "<query xmlns='"+nsMUCAdmin+"'><item nick='Bob' role='visitor'/></query>"); r.attr("type") != "result" {
		t.Fatalf("revoke voice: %s", r)
	}
	if p := bob.expect("visitor presence", isPres(lobby+"/Bob", "")); itemOf(p).attr("role") != "visitor" {
		t.Fatalf("after revoke: %s", p)
	}
	bob.send("<message to='%s' type='groupchat' id='v1'><body>muted?</body></message>", lobby)
	if e := bob.expect("forbidden", func(e *el) bool { return e.attr("id") == "v1" }); errCond(e) != "forbidden" {
		t.Fatalf("visitor message: %s", e)
	}
	if r := alice.iq("set", lobby, "<query xmlns='"+nsMUCAdmin+"'><item nick='Bob' role='participant'/></query>"); r.attr("type") != "result" {
		t.Fatalf("grant voice: %s", r)
	}
	if p := bob.expect("participant presence", isPres(lobby+"/Bob", "")); itemOf(p).attr("role") != "participant" {
		t.Fatalf("after grant: %s", p)
	}
	bob.send("<message to='%s' type='groupchat'><body>back</body></message>", lobby)
	alice.expect("voice restored", isMsg(lobby+"/Bob", "back"))

	// Kick with 307.
	if r := alice.iq("set", lobby, "<query xmlns='"+nsMUCAdmin+"'><item nick='Bob' role='none'><reason>bye</reason></item></query>"); r.attr("type") != "result" {
		t.Fatalf("kick: %s", r)
	}
	k := bob.expect("kicked", isPres(lobby+"/Bob", "unavailable"))
	if !hasStatus(k, 307) || !hasStatus(k, 110) || itemOf(k).childText(nsMUCUser, "reason") != "bye" {
		t.Fatalf("kick presence: %s", k)
	}
	if k := alice.expect("kick seen", isPres(lobby+"/Bob", "unavailable")); !hasStatus(k, 307) || hasStatus(k, 110) {
		t.Fatalf("kick seen by others: %s", k)
	}
	if got := s.Occupants(lobby); !slices.Equal(got, []string{"Alice"}) {
		t.Fatalf("Occupants after kick = %v", got)
	}

	// Ban by JID with 301; a banned user cannot rejoin.
	bob.join(lobby+"/Bob", "")
	if r := alice.iq("set", lobby, "<query xmlns='"+nsMUCAdmin+"'><item jid='bob@localhost' affiliation='outcast'/></query>"); r.attr("type") != "result" {
		t.Fatalf("ban: %s", r)
	}
	b := bob.expect("banned", isPres(lobby+"/Bob", "unavailable"))
	if !hasStatus(b, 301) || itemOf(b).attr("affiliation") != "outcast" {
		t.Fatalf("ban presence: %s", b)
	}
	if e := bob.join(lobby+"/Bob", ""); errCond(e) != "forbidden" {
		t.Fatalf("rejoin after ban: %s", e)
	}
	r := alice.iq("get", lobby, "<query xmlns='"+nsMUCAdmin+"'><item affiliation='outcast'/></query>")
	if it := r.child(nsMUCAdmin, "query").child(nsMUCAdmin, "item"); it == nil || it.attr("jid") != "bob@localhost" {
		t.Fatalf("outcast list: %s", r)
	}
	if r := alice.iq("set", lobby, "<query xmlns='"+nsMUCAdmin+"'><item jid='bob@localhost' affiliation='none'/></query>"); r.attr("type") != "result" {
		t.Fatalf("unban: %s", r)
	}
	bob.join(lobby+"/Bob", "")

	// Moderators cannot be kicked.
	if r := alice.iq("set", lobby, "<query xmlns='"+nsMUCAdmin+"'><item jid='bob@localhost' affiliation='admin'/></query>"); r.attr("type") != "result" {
		t.Fatalf("make admin: %s", r)
	}
	if p := bob.expect("moderator presence", isPres(lobby+"/Bob", "")); itemOf(p).attr("role") != "moderator" {
		t.Fatalf("after admin: %s", p)
	}
	if r := bob.iq("set", lobby, "<query xmlns='"+nsMUCAdmin+"'><item nick='Alice' role='none'/></query>"); errCond(r) != "not-allowed" {
		t.Fatalf("admin kicking the owner: %s", r)
	}
}

func TestKickAPI(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	bob := login(t, s, "bob", "b")
	alice.join(lobby+"/Alice", "")
	for _, code := range []int{307, 332, 333} {
		bob.join(lobby+"/Bob", "")
		if err := s.Kick("lobby", "Bob", code); err != nil {
			t.Fatalf("Kick %d: %v", code, err)
		}
		if p := bob.expect("kick", isPres(lobby+"/Bob", "unavailable")); !hasStatus(p, code) || !hasStatus(p, 110) {
			t.Fatalf("Kick %d presence: %s", code, p)
		}
		alice.expect("kick seen", isPres(lobby+"/Bob", "unavailable"))
	}
	bob.join(lobby+"/Bob", "")
	if err := s.Kick(lobby, "Bob", 301); err != nil {
		t.Fatal(err)
	}
	if p := bob.expect("ban", isPres(lobby+"/Bob", "unavailable")); !hasStatus(p, 301) {
		t.Fatalf("ban presence: %s", p)
	}
	if e := bob.join(lobby+"/Bob", ""); errCond(e) != "forbidden" {
		t.Fatalf("rejoin after Kick 301: %s", e)
	}
	if err := s.Kick("lobby", "Nobody", 307); !errors.Is(err, ErrNoOccupant) {
		t.Fatalf("missing nick: %v", err)
	}
	if err := s.Kick("nowhere", "Alice", 307); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("missing room: %v", err)
	}
	if err := s.Kick("lobby", "Alice", 999); !errors.Is(err, ErrBadStatus) {
		t.Fatalf("bad status: %v", err)
	}
}

func TestMUCSelfPingAndDisco(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	alice.join(lobby+"/Alice", "")
	ping := "<ping xmlns='urn:xmpp:ping'/>"
	if r := alice.iq("get", lobby+"/Alice", ping); r.attr("type") != "result" {
		t.Fatalf("self-ping while joined: %s", r)
	}
	bob := login(t, s, "bob", "b")
	if r := bob.iq("get", lobby+"/Alice", ping); errCond(r) != "not-acceptable" {
		t.Fatalf("ping from a non-occupant: %s", r)
	}
	if err := s.Kick(lobby, "Alice", 333); err != nil {
		t.Fatal(err)
	}
	if r := alice.iq("get", lobby+"/Alice", ping); errCond(r) != "not-acceptable" {
		t.Fatalf("self-ping after removal: %s", r)
	}

	r := alice.iq("get", lobby, "<query xmlns='"+nsDiscoInfo+"'/>")
	q := r.child(nsDiscoInfo, "query")
	if q == nil || q.child(nsDiscoInfo, "identity").attr("category") != "conference" {
		t.Fatalf("room disco: %s", r)
	}
	r = alice.iq("get", "conference.localhost", "<query xmlns='"+nsDiscoInfo+"'/>")
	if q := r.child(nsDiscoInfo, "query"); q == nil || q.child(nsDiscoInfo, "feature").attr("var") != nsMUC {
		t.Fatalf("service disco: %s", r)
	}
	r = alice.iq("get", "conference.localhost", "<query xmlns='"+nsDiscoItem+"'/>")
	if it := r.child(nsDiscoItem, "query").child(nsDiscoItem, "item"); it == nil || it.attr("jid") != lobby {
		t.Fatalf("service items: %s", r)
	}
	if r := alice.iq("get", "nowhere@conference.localhost", "<query xmlns='"+nsDiscoInfo+"'/>"); errCond(r) != "item-not-found" {
		t.Fatalf("missing room disco: %s", r)
	}
	if e := alice.join("room@conference.elsewhere.example/A", ""); errCond(e) != "remote-server-not-found" {
		t.Fatalf("join on a missing service: %s", e)
	}
	alice.send("<message to='nowhere@conference.localhost' type='groupchat' id='x1'><body>?</body></message>")
	if e := alice.expect("error", func(e *el) bool { return e.attr("id") == "x1" }); errCond(e) != "item-not-found" {
		t.Fatalf("message to a missing room: %s", e)
	}
}

func TestMUCInvite(t *testing.T) {
	s := startServer(t, nil)
	alice := login(t, s, "alice", "a")
	bob := login(t, s, "bob", "b")
	bob.available(0)
	alice.join(lobby+"/Alice", "")
	alice.send("<message to='%s'><x xmlns='%s'><invite to='bob@localhost'><reason>come</reason></invite></x></message>", lobby, nsMUCUser)
	m := bob.expect("invite", func(e *el) bool { return e.Name.Local == "message" && e.attr("from") == lobby })
	inv := m.child(nsMUCUser, "x").child(nsMUCUser, "invite")
	if inv == nil || inv.attr("from") != "alice@localhost" || inv.childText(nsMUCUser, "reason") != "come" {
		t.Fatalf("invite: %s", m)
	}
}
