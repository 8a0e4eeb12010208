package crierproc

import (
	"strings"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

// ModeratorExampleEnv is where RunModeratorExample finds the moderator
// example (examples/moderator/config.toml) running: on its embedded server,
// or on a real one with only the connection changed.
type ModeratorExampleEnv struct {
	Daemon *Daemon
	// Lobby is the example's room, BotNick the bot's nick in it and
	// BotBare its bare JID (its one-to-one answers come from there).
	Lobby, BotNick, BotBare string
	// Dial signs in the player name ("alice", the admin of the example's
	// [commands]; "bob", "carol", "dave") on the server, not yet in the
	// room.
	Dial func(t *testing.T, name string) *xmpptest.Client
}

// RunModeratorExample plays the example's README in the lobby: a blocked
// phrase in disguise is retracted (XEP-0425) and its author warned; a
// flooder is warned and muted, the admin asks why and unmutes him; the
// clean player gets nothing at all.
func RunModeratorExample(t *testing.T, env ModeratorExampleEnv) {
	t.Helper()
	const wait = 15 * time.Second
	d, lobby := env.Daemon, env.Lobby
	botNick := lobby + "/" + env.BotNick
	dial := func(name string) *xmpptest.Client {
		c := env.Dial(t, name)
		if err := c.Join(lobby, name); err != nil {
			t.Fatalf("%s joins %s: %v", name, lobby, err)
		}
		return c
	}
	// carol is a well-behaved player; her join shows the bot already in
	// the room as its owner, so it has the rights the ladder needs.
	carol := dial("carol")
	carol.Expect(t, wait, func(s xmpptest.Stanza) bool {
		it := mucItem(s)
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
		if it := mucItem(s); it != nil {
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
	// The room may tell the occupants before it answers the bot's
	// request, which the metric counts.
	muted := func() float64 {
		return d.ReadMetric(t, "crier_moderator_actions_total", "action", "mute", "result", "done")
	}
	for end := time.Now().Add(5 * time.Second); muted() < 1 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := muted(); n != 1 {
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
	if err := alice.SendMessage(env.BotBare, "chat", "!why carol "+lobby); err != nil {
		t.Fatal(err)
	}
	why = alice.Expect(t, wait, func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.Type == "chat" && strings.HasPrefix(s.From, env.BotBare+"/") && strings.Contains(s.Body, "carol in "+lobby)
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

// mucItem is the MUC user item of a presence, or nil.
func mucItem(s xmpptest.Stanza) *xmpptest.Node {
	return s.Root.Find(nsMUCUser, "item")
}
