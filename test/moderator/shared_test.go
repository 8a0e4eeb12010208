package moderator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/natstest"
	"crier/internal/xmpptest"
)

// sharedTables is one of two crier processes sharing a ban list in a KV
// bucket of one NATS server, each in a room of its own.
const sharedTables = `[bot]
state_dir = %q

[[rooms]]
jid = %q
nick = %q

[commands]
admins = ["bob@localhost"]

[nats]
url = %q

[moderator]
[moderator.banlist]
enabled = true
bucket = "crier-bans"
poll = "500ms"
`

// TestBanListAcrossProcesses: two crier processes, each in its own room,
// share the ban list through one NATS server: bob's ban in the first
// room bans alice in the second, which the other process watches; his
// unban there lets her in again.
func TestBanListAcrossProcesses(t *testing.T) {
	srv := crierproc.StartMini(t, "alice", "bob")
	nats := natstest.Start(t)
	roomA, roomB := "shareda@conference.localhost", "sharedb@conference.localhost"
	for i, r := range []struct{ room, nick string }{{roomA, "crier1"}, {roomB, "crier2"}} {
		path, httpAddr := crierproc.WriteConfig(t, srv.XMPP(fmt.Sprintf("crier%d", i+1)), fmt.Sprintf(sharedTables, t.TempDir(), r.room, r.nick, nats.URL()))
		crierproc.Start(t, path, httpAddr).WaitReady(t, 30*time.Second)
	}
	alice, bob := srv.Dial(t, "alice"), srv.Dial(t, "bob")
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
	say := func(room, body string) {
		t.Helper()
		if err := bob.SendMessage(room, "groupchat", body); err != nil {
			t.Fatal(err)
		}
	}
	say(roomA, "!ban alice@localhost cheating")
	bob.Expect(t, wait, from(roomA+"/crier1", "confirm"))
	say(roomA, "!confirm")
	bob.Expect(t, wait, from(roomA+"/crier1", "on the ban list"))
	alice.Expect(t, wait, func(s xmpptest.Stanza) bool {
		return s.Name == "presence" && s.From == roomB+"/alice" && s.Type == "unavailable" && s.HasStatus("301")
	})
	say(roomB, "!banlist")
	bob.Expect(t, wait, from(roomB+"/crier2", "1 entries"))
	say(roomB, "!unban alice@localhost")
	bob.Expect(t, wait, from(roomB+"/crier2", "off the ban list"))
	deadline := time.Now().Add(wait)
	for {
		err := alice.Join(roomA, "alice") // lifted by the first process
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice cannot join %s after the unban in %s: %v", roomA, roomB, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
