// Package roombot_test runs the roombot example: exactly the config.toml
// beside it, on the crier binary, with the embedded XMPP server it starts.
package roombot_test

import (
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/xmpptest"
)

const (
	bot   = "roombot@localhost"
	lobby = "lobby@conference.localhost"
	wait  = 15 * time.Second
)

func TestRoombot(t *testing.T) {
	ex := crierproc.StartExample(t, "config.toml", nil)
	d, addr, pool := ex.Daemon, ex.Addr, ex.Pool
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: addr, JID: "alice@localhost", Password: "alice", RootCAs: pool})
	bob := xmpptest.Dial(t, xmpptest.Options{Addr: addr, JID: "bob@localhost", Password: "bob", RootCAs: pool})

	inLobby := func(sub string) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool {
			return s.Name == "message" && s.Type == "groupchat" && s.From == lobby+"/roombot" && strings.Contains(s.Body, sub)
		}
	}
	fromBot := func(sub string) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool {
			return s.Name == "message" && s.Type == "chat" && strings.HasPrefix(s.From, bot+"/") && strings.Contains(s.Body, sub)
		}
	}

	// The greeting on join, then a rule and the commands plugin in the room.
	if err := bob.Join(lobby, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, wait, inLobby("welcome bob!"))
	if err := bob.SendMessage(lobby, "groupchat", "!ping"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, wait, inLobby("pong bob"))
	if err := bob.SendMessage(lobby, "groupchat", "is there coffee?"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, wait, inLobby("coffee machine"))
	if err := bob.SendMessage(lobby, "groupchat", "!help"); err != nil {
		t.Fatal(err)
	}
	help := bob.Expect(t, wait, func(s xmpptest.Stanza) bool {
		return inLobby("rooms")(s) && strings.Contains(s.Body, "version") && strings.Contains(s.Body, "status")
	})
	if strings.Contains(help.Body, "join") {
		t.Errorf("!help shows bob, no admin, the admin commands:\n%s", help.Body)
	}

	// The admin, one to one: !help lists the admin commands, !join joins a
	// second room and !rooms lists both.
	if err := alice.SendMessage(bot, "chat", "!help"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, wait, fromBot("join"))
	second := "games@conference.localhost"
	if err := alice.Join(second, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendMessage(bot, "chat", "!join "+second); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, wait, fromBot("joining "+second))
	alice.Expect(t, wait, func(s xmpptest.Stanza) bool {
		return s.Name == "presence" && s.Type == "" && s.From == second+"/roombot"
	})
	if err := alice.SendMessage(bot, "chat", "!rooms"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, wait, func(s xmpptest.Stanza) bool {
		return fromBot(lobby)(s) && strings.Contains(s.Body, second)
	})
	// A stranger is refused the admin command.
	if err := bob.SendMessage(bot, "chat", "!join other@conference.localhost"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, wait, fromBot("forbidden"))

	for _, rule := range []string{"welcome", "ping", "coffee"} {
		if n := d.ReadMetric(t, "crier_rule_hits_total", "rule", rule); n < 1 {
			t.Errorf("crier_rule_hits_total{rule=%q} = %v, want at least 1", rule, n)
		}
	}
}

// TestCheck runs `crier check` on the example as its README shows.
func TestCheck(t *testing.T) { crierproc.CheckExample(t, "config.toml") }
