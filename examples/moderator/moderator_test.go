// Package moderator_test runs the moderator example: exactly the
// config.toml beside it, on the crier binary, with the embedded XMPP server
// it starts.
package moderator_test

import (
	"os/exec"
	"strings"
	"testing"

	"crier/internal/crierproc"
	"crier/internal/xmpptest"
)

const lobby = "lobby@conference.localhost"

// example is the parts of config.toml the test needs to reach the bot.
type example struct {
	XMPP struct {
		JID string `toml:"jid"`
	} `toml:"xmpp"`
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

// TestModerator plays the example on its embedded server
// (crierproc.RunModeratorExample; test/peers plays it on Prosody).
func TestModerator(t *testing.T) {
	_, ex, run := startExample(t)
	crierproc.RunModeratorExample(t, crierproc.ModeratorExampleEnv{
		Daemon: run.Daemon, Lobby: lobby, BotNick: ex.Rooms[0].Nick, BotBare: ex.XMPP.JID,
		Dial: func(t *testing.T, name string) *xmpptest.Client {
			return xmpptest.Dial(t, xmpptest.Options{Addr: run.Addr, JID: name + "@localhost", Password: name, RootCAs: run.Pool})
		},
	})
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
