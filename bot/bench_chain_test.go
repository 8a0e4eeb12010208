package bot

import (
	"context"
	"fmt"
	"testing"

	"crier/internal/config"
	"crier/plugins"
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

// BenchmarkChain measures what the message chain adds per message: the
// same room message through chain.handle with no link and with three
// links that pass it on, the rules engine (the demo's ping rule, which
// does not match) last in both.
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
			for i := range n {
				l := &passLink{n: i}
				rp := bot.plugins.wrap(l.Name(), l, nil)
				rp.started.Store(true)
				list = append(list, rp)
				names = append(names, l.Name())
			}
			bot.plugins.list.Store(&list)
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
