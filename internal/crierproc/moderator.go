package crierproc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

// ModeratorEnv is what the moderator acceptance scenario needs of a
// server: the mini server in the fast suite, Prosody in the peers suite.
type ModeratorEnv struct {
	// Domain is the users' domain; MUC the rooms' service.
	Domain, MUC string
	// XMPP is crier's [xmpp] table for the server.
	XMPP XMPP
	// Dial logs the account local in: "alice" (the flooder) and "bob" (a
	// well-behaved player).
	Dial func(t *testing.T, local string) *xmpptest.Client
	// NoRetract is set for a server without XEP-0425 moderation: the
	// scenario then expects crier to fall back to a warning.
	NoRetract bool
	// OutcastRejoins is set for a server that lets an outcast whose role
	// was changed back in (ejabberd 23.01): the scenario then expects
	// crier to ban her again as she joins, and while crier is stopped
	// nobody keeps her out.
	OutcastRejoins bool
	// NoOccupantID is set for a server whose rooms give no XEP-0421
	// occupant ids: the moderator then keys alice on her real JID.
	NoOccupantID bool
}

// moderatorTables is the scenario's config: strict, short timers.
const moderatorTables = `[bot]
state_dir = %q

[[rooms]]
jid = %q
nick = "crier"

[moderator]
words = ["free coins"]
word_points = 2
decay = "1h"
cooldown = "1h"
[moderator.flood]
messages = 3
window = "1m"
points = 2
[moderator.repeat]
enabled = false
[[moderator.ladder]]
points = 2
action = "warn"
[[moderator.ladder]]
points = 4
action = "mute"
duration = "3s"
[[moderator.ladder]]
points = 6
action = "kick"
[[moderator.ladder]]
points = 8
action = "tempban"
duration = "5s"
[[moderator.ladder]]
points = 30
action = "ban"

[[rules]]
name  = "saw"
match = "now$|three|four|five"
reply = "rule saw {{.Nick}}"
`

const (
	nsMUCUser  = "http://jabber.org/protocol/muc#user"
	nsFasten   = "urn:xmpp:fasten:0"
	nsModerate = "urn:xmpp:message-moderate:0"
)

// RunModeratorScenario drives the moderator end to end: in a room crier
// owns, alice writes a blocked phrase in disguise (retracted, warned),
// then floods: she is muted and gets her voice back when the time is up,
// kicked, banned for a time, and after a crier restart in between the ban
// is lifted when its time is up. bob, in the same room, gets nothing at
// all.
func RunModeratorScenario(t *testing.T, env ModeratorEnv) {
	t.Helper()
	stateDir := t.TempDir()
	room := uniqueRoom(env.MUC, "mod")
	path, httpAddr := WriteConfig(t, env.XMPP, fmt.Sprintf(moderatorTables, stateDir, room))
	d := Start(t, path, httpAddr)
	d.WaitReady(t, 30*time.Second)
	alice := env.Dial(t, "alice")
	bob := env.Dial(t, "bob")
	for _, c := range []struct {
		cl   *xmpptest.Client
		nick string
	}{{alice, "alice"}, {bob, "bob"}} {
		if err := c.cl.Join(room, c.nick); err != nil {
			t.Fatalf("%s joins %s: %v", c.nick, room, err)
		}
	}
	crierNick := room + "/crier"
	from := func(who, sub string) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool {
			return s.Name == "message" && s.From == who && strings.Contains(s.Body, sub)
		}
	}
	selfPresence := func(pred func(xmpptest.Stanza) bool) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool { return s.Name == "presence" && s.From == room+"/alice" && pred(s) }
	}
	role := func(s xmpptest.Stanza) string {
		if it := s.Root.Find(nsMUCUser, "item"); it != nil {
			return it.Attr("role")
		}
		return ""
	}
	say := func(body string) {
		t.Helper()
		if err := alice.SendMessage(room, "groupchat", body); err != nil {
			t.Fatal(err)
		}
	}
	// bob chats; crier must leave him alone, and the rules see his
	// messages.
	if err := bob.SendMessage(room, "groupchat", "gg wp, rematch at three?"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, 15*time.Second, from(crierNick, "rule saw bob"))

	// A disguised blocked phrase: retracted (when the server can) and
	// warned; the chain stops, so no rule sees it.
	say("get ｆｒ\u200bｅｅ c o i n s now")
	alice.Expect(t, 15*time.Second, from(crierNick, "alice: warning for a blocked word"))
	if !env.NoRetract {
		bob.Expect(t, 15*time.Second, func(s xmpptest.Stanza) bool {
			a := s.Find(nsFasten, "apply-to")
			return s.Name == "message" && s.From == room && a != nil && a.Find(nsModerate, "moderated") != nil
		})
	}

	// The flood: the third message in the minute is fine, the fourth is
	// not (4 points: a mute for 3s).
	say("one")
	say("two")
	say("three")
	alice.Expect(t, 15*time.Second, selfPresence(func(s xmpptest.Stanza) bool { return role(s) == "visitor" }))
	alice.Expect(t, 15*time.Second, selfPresence(func(s xmpptest.Stanza) bool { return role(s) == "participant" }))
	say("four") // 6 points: kicked
	alice.Expect(t, 15*time.Second, selfPresence(func(s xmpptest.Stanza) bool { return s.Type == "unavailable" && s.HasStatus("307") }))
	if err := alice.Join(room, "alice"); err != nil {
		t.Fatalf("alice rejoins after the kick: %v", err)
	}
	say("five") // 8 points: banned for 5s
	alice.Expect(t, 15*time.Second, selfPresence(func(s xmpptest.Stanza) bool { return s.Type == "unavailable" && s.HasStatus("301") }))
	banned := time.Now()
	bannedAgain := func() {
		t.Helper()
		if !env.OutcastRejoins {
			t.Fatal("alice rejoined while banned")
		}
		alice.Expect(t, 15*time.Second, selfPresence(func(s xmpptest.Stanza) bool {
			return s.Type == "unavailable" && (s.HasStatus("301") || s.HasStatus("307"))
		}))
	}
	if err := alice.Join(room, "alice"); err == nil {
		bannedAgain() // crier bans her again as she joins
	}

	// A restart while the ban lasts: the new process lifts it in time.
	waitMetric(t, d, 1, "crier_moderator_actions_total", "action", "tempban", "result", "done")
	if err := d.Stop(StopLimit); err != nil {
		t.Fatalf("stop crier: %v", err)
	}
	rejoined := alice.Join(room, "alice") == nil
	if rejoined && !env.OutcastRejoins {
		t.Fatal("alice rejoined while banned")
	}
	d2 := Start(t, path, httpAddr)
	d2.WaitReady(t, 30*time.Second)
	if rejoined {
		bannedAgain() // the new process finds her in the room
	}
	deadline := banned.Add(30 * time.Second)
	removed := func(s xmpptest.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/alice" && s.Type == "unavailable"
	}
	for {
		since := alice.Seq()
		err := alice.Join(room, "alice")
		if err == nil && env.OutcastRejoins {
			// Let in by the server: lifted only if crier leaves her be.
			if _, werr := alice.Wait(context.Background(), since, 2*time.Second, removed); werr == nil {
				err = fmt.Errorf("removed again by crier")
			}
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tempban was not lifted after a restart: %v\n%s", err, d2.LogTail(40))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if time.Since(banned) < 4*time.Second {
		t.Errorf("the ban was lifted after %v, before its 5s", time.Since(banned))
	}
	waitMetric(t, d2, 1, "crier_moderator_actions_total", "action", "unban", "result", "done")

	// bob got nothing: no message naming him, no change of his role; and
	// no rule saw a message the moderator acted on.
	for _, s := range bob.Drain() {
		if s.Name == "message" && s.From == crierNick && strings.Contains(s.Body, "rule saw alice") {
			t.Errorf("a rule saw a message the moderator stopped: %s", s.Raw)
		}
		if s.Name == "message" && s.From == crierNick && strings.Contains(s.Body, "bob") {
			t.Errorf("crier spoke of bob: %s", s.Raw)
		}
		if s.Name == "presence" && s.From == room+"/bob" && (s.Type == "unavailable" || role(s) == "visitor") {
			t.Errorf("bob was acted on: %s", s.Raw)
		}
	}
}

// waitMetric waits up to 10s for a metric of d to reach want.
func waitMetric(t *testing.T, d *Daemon, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := d.ReadMetric(t, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
