package moderator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"crier/internal/config"
	"crier/plugins"
	_ "crier/plugins/commands"
)

// TestThroughCommandsPlugin runs every moderator command's Example as a
// lobby moderator through the commands plugin's chat parser, on the same
// host: the commands are offered through plugins.Commander.
func TestThroughCommandsPlugin(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\nretract = []\n")
	alice := occupant{nick: "alice", jid: "alice@example.org", oid: "occ-a"}
	f.join(alice)
	f.say(alice, "free coins") // case 1
	t.Setenv(config.PasswordEnv, "")
	cfg, err := config.LoadBytes("test.toml", []byte(minimal+"[commands]\nrate = \"0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	built, _, err := plugins.BuildOne("commands", cfg.Plugins["commands"], plugins.Core{BotJID: botJID})
	if err != nil {
		t.Fatal(err)
	}
	cp := built.(interface {
		plugins.Starter
		plugins.Stopper
		plugins.Link
		plugins.Fallback
		plugins.Commander
	})
	if err := cp.Start(context.Background(), plugins.Env{Registerer: prometheus.NewRegistry(), Host: f.h}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop(context.Background()) })
	f.h.SetCommands(append(cp.Commands(), f.p.Commands()...))
	chat := func(body string) string {
		t.Helper()
		f.h.Reset()
		ev := &plugins.Event{Kind: plugins.EventMessage, Type: "groupchat", Room: lobby, From: lobby + "/mod", Nick: "mod",
			RealJID: "mod@example.org", Role: "moderator", Affiliation: "member", Body: body, BotNick: "crier"}
		if cp.Handle(context.Background(), ev) == plugins.Continue {
			cp.Unhandled(context.Background(), ev)
		}
		return f.h.WaitSent(t, 1, 5*time.Second)[0].Body
	}
	for _, c := range f.p.Commands() {
		reply := chat("!" + c.Line)
		if c.Destructive && strings.Contains(reply, "!confirm") {
			reply = chat("!confirm")
		}
		t.Logf("!%s -> %s", c.Line, reply)
		if !strings.Contains(reply, c.Want) {
			t.Errorf("!%s: reply %q does not contain %q", c.Line, reply, c.Want)
		}
	}
	// A participant may not.
	f.h.Reset()
	ev := &plugins.Event{Kind: plugins.EventMessage, Type: "groupchat", Room: lobby, From: lobby + "/bob", Nick: "bob",
		Role: "participant", Affiliation: "none", Body: "!pardon alice", BotNick: "crier"}
	cp.Handle(context.Background(), ev)
	if r := f.h.WaitSent(t, 1, 5*time.Second)[0].Body; !strings.Contains(r, "forbidden") {
		t.Errorf("a participant's pardon: %q", r)
	}
}
