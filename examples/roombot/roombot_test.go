// Package roombot_test runs the roombot example: exactly the config.toml
// beside it, on the crier binary, with the embedded XMPP server it starts.
package roombot_test

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"crier/internal/crierproc"
	"crier/internal/xmpptest"
)

const (
	bot   = "roombot@localhost"
	lobby = "lobby@conference.localhost"
	wait  = 15 * time.Second
)

// example is the parts of config.toml the test needs to reach the bot.
type example struct {
	XMPP struct {
		Address string `toml:"address"`
	} `toml:"xmpp"`
	HTTP struct {
		Listen string `toml:"listen"`
	} `toml:"http"`
}

// startExample copies config.toml, unchanged, into a new directory (so that
// the state and the certificate are not written into the repository), runs
// crier on it, and returns the daemon, the XMPP address and a pool holding
// the embedded server's certificate.
func startExample(t *testing.T) (*crierproc.Daemon, string, *x509.CertPool) {
	t.Helper()
	data, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	var ex example
	if _, err := toml.Decode(string(data), &ex); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d := crierproc.Start(t, path, ex.HTTP.Listen)
	d.WaitReady(t, 30*time.Second)
	pem, err := os.ReadFile(filepath.Join(dir, ".crier", "embedded-localhost.pem"))
	if err != nil {
		t.Fatalf("the embedded server's certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in .crier/embedded-localhost.pem")
	}
	return d, ex.XMPP.Address, pool
}

func TestRoombot(t *testing.T) {
	d, addr, pool := startExample(t)
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
func TestCheck(t *testing.T) {
	out, err := exec.Command(crierproc.Binary(t), "check", "-c", "config.toml").CombinedOutput()
	if err != nil {
		t.Fatalf("crier check -c config.toml: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ok") {
		t.Errorf("crier check -c config.toml: %s", out)
	}
}
