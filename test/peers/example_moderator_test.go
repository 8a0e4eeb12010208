//go:build peers

package peers_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// TestModeratorExample runs examples/moderator/config.toml on Prosody
// with only the connection changed, as its README tells a user with a
// server of their own to do: [embedded] removed, [xmpp] pointed at the
// server, a room of the server's. The example's scenario
// (crierproc.RunModeratorExample) then plays as on the embedded server: the
// disguised phrase retracted (mod_muc_moderation), the flooder warned and
// muted, the admin's !why and !unmute, the clean player untouched.
func TestModeratorExample(t *testing.T) {
	p := peers.Get(t, "prosody")
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "moderator", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if _, err := toml.Decode(string(data), &cfg); err != nil {
		t.Fatalf("examples/moderator/config.toml: %v", err)
	}
	crier := p.Account(t, "crier")
	lobby := fmt.Sprintf("modexample%d@conference.%s", time.Now().UnixNano(), p.Domain)
	httpAddr := crierproc.FreePort(t)
	delete(cfg, "embedded")
	cfg["xmpp"] = map[string]any{"jid": crier.JID, "password": crier.Password, "resource": "crier",
		"address": p.C2S, "tls": "starttls", "ca_file": p.CAFile}
	cfg["http"] = map[string]any{"listen": httpAddr}
	rooms, ok := cfg["rooms"].([]map[string]any)
	if !ok || len(rooms) != 1 {
		t.Fatalf("examples/moderator/config.toml: want one [[rooms]], have %#v", cfg["rooms"])
	}
	rooms[0]["jid"] = lobby
	mod, ok := cfg["moderator"].(map[string]any)
	if !ok {
		t.Fatal("examples/moderator/config.toml: no [moderator]")
	}
	mod["rooms"] = []string{lobby}
	// The example's admin is alice@localhost, the name the players have
	// on Prosody's localhost too.
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	path := crierproc.WriteFile(t, "config.toml", buf.Bytes())
	d := crierproc.Start(t, path, httpAddr)
	d.WaitReady(t, 30*time.Second)

	// The example's players, as Prosody's test accounts.
	accounts := map[string]string{"alice": "alice", "bob": "bob", "carol": "user1", "dave": "user2"}
	crierproc.RunModeratorExample(t, crierproc.ModeratorExampleEnv{
		Daemon: d, Lobby: lobby, BotNick: rooms[0]["nick"].(string), BotBare: crier.JID,
		Dial: func(t *testing.T, name string) *xmpptest.Client { return dialPlayer(t, p, accounts[name]) },
	})
}
