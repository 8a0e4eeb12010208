package crierproc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

// moderatorListsTables is the config of RunModeratorListsScenario: two
// rooms, bob a commands admin, the ban list on, shouting going on to the
// rules.
const moderatorListsTables = `[bot]
state_dir = %q

[[rooms]]
jid = %q
nick = "crier"

[[rooms]]
jid = %q
nick = "crier"

[commands]
admins = [%q]

[moderator]
exempt = ["owner", "admin", "moderator", %q]
retract = ["slowmode"]
go_on = ["caps"]
decay = "1h"
[moderator.caps]
min_letters = 10
[moderator.repeat]
enabled = false
[moderator.banlist]
enabled = true
poll = "1s"

[[rules]]
name  = "gg"
match = "GREAT MATCH"
reply = "rule saw {{.Nick}}"
`

// RunModeratorListsScenario drives the moderator's room-wide features end
// to end, in two rooms crier owns: alice shouts, is warned, and (caps is in
// go_on) the rules still answer her; bob, an admin, sets slow mode in the
// second room, where alice's second message within it is retracted (when
// the server can) and warned; bob bans alice in the first room and the ban
// list bans her in the second too; his unban lifts both.
func RunModeratorListsScenario(t *testing.T, env ModeratorEnv) {
	t.Helper()
	roomA, roomB := uniqueRoom(env.MUC, "moda"), uniqueRoom(env.MUC, "modb")
	bobJID, aliceJID := "bob@"+env.Domain, "alice@"+env.Domain
	path, httpAddr := WriteConfig(t, env.XMPP, fmt.Sprintf(moderatorListsTables, t.TempDir(), roomA, roomB, bobJID, bobJID))
	d := Start(t, path, httpAddr)
	d.WaitReady(t, 30*time.Second)
	alice := env.Dial(t, "alice")
	bob := env.Dial(t, "bob")
	for _, room := range []string{roomA, roomB} {
		for _, c := range []struct {
			cl   *xmpptest.Client
			nick string
		}{{alice, "alice"}, {bob, "bob"}} {
			if err := c.cl.Join(room, c.nick); err != nil {
				t.Fatalf("%s joins %s: %v", c.nick, room, err)
			}
		}
	}
	const wait = 15 * time.Second
	from := func(who, sub string) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool {
			return s.Name == "message" && s.From == who && strings.Contains(s.Body, sub)
		}
	}
	say := func(c *xmpptest.Client, room, body string) {
		t.Helper()
		if err := c.SendMessage(room, "groupchat", body); err != nil {
			t.Fatal(err)
		}
	}
	banned := func(room string) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool {
			return s.Name == "presence" && s.From == room+"/alice" && s.Type == "unavailable" && s.HasStatus("301")
		}
	}

	// Shouting: warned, and the message goes on to the rules.
	say(alice, roomA, "WHAT A GREAT MATCH EVERYONE")
	alice.Expect(t, wait, from(roomA+"/crier", "alice: warning for shouting"))
	alice.Expect(t, wait, from(roomA+"/crier", "rule saw alice"))

	// Her strikes are kept under the room's occupant id when it gives
	// one, else her real JID.
	say(bob, roomA, "!why alice")
	why := bob.Expect(t, wait, from(roomA+"/crier", "alice in "+roomA))
	key := "[oid:"
	if env.NoOccupantID {
		key = "[jid:" + aliceJID + "]"
	}
	if !strings.Contains(why.Body, key) || !strings.Contains(why.Body, "1.0 strike points") {
		t.Errorf("!why alice: want %s and 1 point, have %q", key, why.Body)
	}

	// Slow mode, set by command in the second room only.
	say(bob, roomB, "!slowmode 30s")
	bob.Expect(t, wait, from(roomB+"/crier", "slow mode on in "+roomB))
	say(alice, roomB, "hello everyone")
	say(alice, roomB, "me again")
	alice.Expect(t, wait, from(roomB+"/crier", "alice: warning for writing faster than the room's slow mode allows"))
	if !env.NoRetract {
		bob.Expect(t, wait, func(s xmpptest.Stanza) bool {
			a := s.Find(nsFasten, "apply-to")
			return s.Name == "message" && s.From == roomB && a != nil && a.Find(nsModerate, "moderated") != nil
		})
	}
	// In the first room there is no slow mode.
	say(alice, roomA, "still here")
	say(alice, roomA, "and here")

	// A ban in the first room is applied in the second by the ban list.
	say(bob, roomA, "!ban "+aliceJID+" cheating")
	bob.Expect(t, wait, from(roomA+"/crier", "confirm"))
	say(bob, roomA, "!confirm")
	bob.Expect(t, wait, from(roomA+"/crier", "on the ban list"))
	alice.Expect(t, wait, banned(roomA))
	alice.Expect(t, wait, banned(roomB))
	if err := alice.Join(roomB, "alice"); err == nil {
		t.Fatal("alice joined the second room while on the ban list")
	}
	say(bob, roomA, "!banlist")
	bob.Expect(t, wait, from(roomA+"/crier", "1 entries"))

	// The unban takes her off the list: she may join both rooms again.
	say(bob, roomA, "!unban "+aliceJID)
	bob.Expect(t, wait, from(roomA+"/crier", "off the ban list"))
	for _, room := range []string{roomA, roomB} {
		deadline := time.Now().Add(wait)
		for {
			err := alice.Join(room, "alice")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("alice cannot join %s after the unban: %v\n%s", room, err, d.LogTail(40))
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	// The unban by command in the first room, the list's in the second.
	waitMetric(t, d, 2, "crier_moderator_actions_total", "action", "unban", "result", "done")
	// alice's lines in the first room after the shouting were never
	// acted on: one warning there, for the shouting.
	for _, s := range alice.Drain() {
		if s.Name == "message" && s.From == roomA+"/crier" && strings.Contains(s.Body, "alice: warning") {
			t.Errorf("alice warned again in the first room: %s", s.Body)
		}
	}
}
