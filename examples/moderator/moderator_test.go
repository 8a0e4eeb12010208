// Package moderator_test runs the moderator example: exactly the
// config.toml beside it, on the crier binary, with the embedded XMPP server
// it starts.
package moderator_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/xmpptest"
)

const (
	lobby = "lobby@conference.localhost"
	wait  = 15 * time.Second

	nsMUCUser  = "http://jabber.org/protocol/muc#user"
	nsFasten   = "urn:xmpp:fasten:0"
	nsModerate = "urn:xmpp:message-moderate:0"
)

// example is the parts of config.toml the test needs to reach the bot.
type example struct {
	Rooms []struct {
		JID  string `toml:"jid"`
		Nick string `toml:"nick"`
	} `toml:"rooms"`
}

// startExample runs crier on config.toml (see crierproc.StartExample) and
// checks the example has the one room the test talks in.
func startExample(t *testing.T) (*crierproc.Daemon, example, *crierproc.Example) {
	t.Helper()
	var ex example
	run := crierproc.StartExample(t, "config.toml", &ex)
	if len(ex.Rooms) != 1 || ex.Rooms[0].JID != lobby {
		t.Fatalf("config.toml: want the one room %s, have %+v", lobby, ex.Rooms)
	}
	return run.Daemon, ex, run
}

// item is the MUC user item of a presence, or nil.
func item(s xmpptest.Stanza) *xmpptest.Node {
	return s.Root.Find(nsMUCUser, "item")
}

func TestModerator(t *testing.T) {
	d, ex, run := startExample(t)
	pool := run.Pool
	botNick := lobby + "/" + ex.Rooms[0].Nick
	dial := func(name string) *xmpptest.Client {
		c := xmpptest.Dial(t, xmpptest.Options{Addr: run.Addr, JID: name + "@localhost", Password: name, RootCAs: pool})
		if err := c.Join(lobby, name); err != nil {
			t.Fatalf("%s joins %s: %v", name, lobby, err)
		}
		return c
	}
	// carol is a well-behaved player; her join shows the bot already in
	// the room as its owner, so it has the rights the ladder needs.
	carol := dial("carol")
	carol.Expect(t, wait, func(s xmpptest.Stanza) bool {
		it := item(s)
		return s.Name == "presence" && s.From == botNick && it != nil && it.Attr("affiliation") == "owner"
	})
	bob := dial("bob")
	dave := dial("dave")
	fromBot := func(sub string) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool {
			return s.Name == "message" && s.Type == "groupchat" && s.From == botNick && strings.Contains(s.Body, sub)
		}
	}
	presenceOf := func(nick string, pred func(xmpptest.Stanza) bool) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool { return s.Name == "presence" && s.From == lobby+"/"+nick && pred(s) }
	}
	role := func(s xmpptest.Stanza) string {
		if it := item(s); it != nil {
			return it.Attr("role")
		}
		return ""
	}

	// carol chats, with a link to an allowed site.
	for _, body := range []string{"gg wp, rematch at nine?", "the map guide: https://wiki.example.org/maps/dust"} {
		if err := carol.SendMessage(lobby, "groupchat", body); err != nil {
			t.Fatal(err)
		}
	}

	// dave writes a blocked phrase in disguise: full-width letters, a
	// zero-width space and spaced letters. It is retracted and he is warned.
	if err := dave.SendMessage(lobby, "groupchat", "get ｆｒ\u200bｅｅ c o i n s at my site"); err != nil {
		t.Fatal(err)
	}
	warned := carol.Expect(t, wait, fromBot("dave: warning for a blocked word"))
	t.Logf("the bot: %s", warned.Body)
	carol.Expect(t, wait, func(s xmpptest.Stanza) bool {
		a := s.Find(nsFasten, "apply-to")
		return s.Name == "message" && s.From == lobby && a != nil && a.Find(nsModerate, "moderated") != nil
	})

	// bob floods: five messages in ten seconds are fine, the sixth is a
	// warning, the seventh a mute (his voice revoked).
	for _, body := range []string{
		"anyone up for a match?", "need one more for ranked", "map is dust tonight",
		"who has the new patch", "lag is awful today", "queue takes forever", "ok starting now",
	} {
		if err := bob.SendMessage(lobby, "groupchat", body); err != nil {
			t.Fatal(err)
		}
	}
	warned = carol.Expect(t, wait, fromBot("bob: warning for flooding"))
	t.Logf("the bot: %s", warned.Body)
	carol.Expect(t, wait, presenceOf("bob", func(s xmpptest.Stanza) bool { return role(s) == "visitor" }))
	if n := d.ReadMetric(t, "crier_moderator_actions_total", "action", "mute", "result", "done"); n != 1 {
		t.Errorf("crier_moderator_actions_total{action=mute,result=done} = %v, want 1", n)
	}

	// alice, the admin, in the room: her lines are never checked, and the
	// moderator's commands answer her there.
	alice := dial("alice")
	if err := alice.SendMessage(lobby, "groupchat", "!why bob"); err != nil {
		t.Fatal(err)
	}
	why := alice.Expect(t, wait, func(s xmpptest.Stanza) bool {
		return fromBot("bob")(s) && strings.Contains(s.Body, "strike points")
	})
	t.Logf("!why bob: %s", why.Body)
	if err := alice.SendMessage(lobby, "groupchat", "!unmute bob"); err != nil {
		t.Fatal(err)
	}
	carol.Expect(t, wait, presenceOf("bob", func(s xmpptest.Stanza) bool { return role(s) == "participant" }))

	// One more line from carol, then the admin asks the bot about her
	// (one to one, as [commands] admins may): once the answer is in, the
	// bot has had the time to act on everything carol said.
	if err := carol.SendMessage(lobby, "groupchat", "brb, getting snacks"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendMessage("moderator@localhost", "chat", "!why carol "+lobby); err != nil {
		t.Fatal(err)
	}
	why = alice.Expect(t, wait, func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.Type == "chat" && strings.HasPrefix(s.From, "moderator@localhost/") && strings.Contains(s.Body, "carol in "+lobby)
	})
	if !strings.Contains(why.Body, "0.0 strike points") || !strings.Contains(why.Body, "no cases") {
		t.Errorf("!why carol: want no strikes and no cases, have %s", why.Body)
	}
	t.Logf("!why carol: %s", why.Body)

	// carol got nothing at all: no strikes (above), no message naming her,
	// no change of her role.
	for _, s := range carol.Drain() {
		if s.Name == "message" && s.From == botNick && strings.Contains(s.Body, "carol") {
			t.Errorf("the bot spoke of carol: %s", s.Raw)
		}
		if s.Name == "presence" && s.From == lobby+"/carol" && (s.Type == "unavailable" || role(s) == "visitor") {
			t.Errorf("carol was acted on: %s", s.Raw)
		}
	}
	if n := d.ReadMetric(t, "crier_moderator_hits_total", "detector", "links"); n != 0 {
		t.Errorf("crier_moderator_hits_total{detector=links} = %v, want 0 (carol's link is allowed)", n)
	}
}

// TestCheck runs `crier check` on the example as its README shows.
func TestCheck(t *testing.T) { crierproc.CheckExample(t, "config.toml") }

// TestModeratorTest runs `crier moderator test` on the example as its
// README shows: the verdict for a disguised blocked word, exit 0.
func TestModeratorTest(t *testing.T) {
	out, err := exec.Command(crierproc.Binary(t), "moderator", "test", "-c", "config.toml",
		"--room", lobby, "--nick", "bob", "--body", "get fr33 c0ins").CombinedOutput()
	if err != nil {
		t.Fatalf("crier moderator test: %v, want exit 0\n%s", err, out)
	}
	for _, want := range []string{`entry "free coins"`, "would do (first offence): retract and warn"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("crier moderator test: no %q in\n%s", want, out)
		}
	}
}
