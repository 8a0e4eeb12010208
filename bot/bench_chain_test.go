package bot

import (
	"context"
	"fmt"
	"testing"

	"crier/internal/config"
	"crier/plugins"
	_ "crier/plugins/commands" // on by default, as in crier
	"crier/rules"
)

// passLink is a chain link that looks at the body and passes the event on,
// as a moderator or commands plugin does with a message not for it.
type passLink struct{ n int }

func (l *passLink) Name() string { return fmt.Sprintf("pass%d", l.n) }

func (l *passLink) Handle(_ context.Context, ev *plugins.Event) plugins.Verdict {
	if len(ev.Body) > 0 && ev.Body[0] == '\x00' {
		return plugins.Stop
	}
	return plugins.Continue
}

// hundredCommands is a Commander with 100 commands, as a plugin that
// brings many would be.
type hundredCommands struct{}

func (hundredCommands) Name() string { return "hundred" }

func (hundredCommands) Commands() []plugins.Command {
	out := make([]plugins.Command, 100)
	for i := range out {
		out[i] = plugins.Command{Name: fmt.Sprintf("cmd%03d", i), Summary: "a command",
			Args: []plugins.Arg{{Name: "text", Rest: true}},
			Run: func(context.Context, *plugins.Call) (plugins.Reply, error) {
				return plugins.Reply{Text: "ok"}, nil
			}}
	}
	return out
}

// BenchmarkChain measures what the message chain adds per message: the
// same room message through chain.handle with no link, and with three
// links: a pass-through link, the commands plugin with 100 more commands
// registered (the message is not a command), and another pass-through;
// the rules engine (the demo's ping rule, which does not match) last in
// both. BenchmarkReplyPath is the whole reply path for comparison.
func BenchmarkChain(b *testing.B) {
	for _, n := range []int{0, 3} {
		b.Run(fmt.Sprintf("links=%d", n), func(b *testing.B) {
			cfg, err := config.LoadBytes("bench.toml", []byte(`
[xmpp]
jid = "crier@localhost"
password = "x"
address = "127.0.0.1:1"
tls = "none"
[[rooms]]
jid = "lobby@conference.localhost"
[[rules]]
name = "ping"
match = "^!ping$"
reply = "pong {{.Nick}}"
`))
			if err != nil {
				b.Fatal(err)
			}
			bot, err := New(cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			var list []*runningPlugin
			var names []string
			if n > 0 {
				// The commands plugin, built from the defaults, and 100
				// commands of another plugin.
				var cmds *runningPlugin
				for _, rp := range bot.pending {
					if rp.name == "commands" {
						cmds = rp
					}
				}
				if cmds == nil {
					b.Fatal("the commands plugin was not built")
				}
				h := bot.plugins.wrap("hundred", hundredCommands{}, nil)
				p0, p2 := &passLink{n: 0}, &passLink{n: 2}
				list = []*runningPlugin{bot.plugins.wrap(p0.Name(), p0, nil), cmds, bot.plugins.wrap(p2.Name(), p2, nil), h}
				if err := bot.plugins.startAll(context.Background(), list); err != nil {
					b.Fatal(err)
				}
				defer bot.plugins.stopAll()
				names = []string{p0.Name(), "commands", p2.Name()}
				if got := len(bot.plugins.commands()); got < 100 {
					b.Fatalf("%d commands registered", got)
				}
			}
			st := *bot.cfg.Load()
			st.chain = names
			bot.cfg.Store(&st)
			m := rules.Message{Kind: rules.KindMessage, Type: "groupchat", From: "lobby@conference.localhost/alice",
				Room: "lobby@conference.localhost", Nick: "alice", BotNick: "crier", BotJID: "crier@localhost",
				Body: "hello everybody, how is the game going tonight?"}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				it := &chainItem{m: m, ev: eventOf(&m, "id1", "", "")}
				bot.chain.handle(ctx, it, 0)
			}
		})
	}
}
