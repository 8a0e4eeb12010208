package moderator

import (
	"context"
	"testing"
	"time"
	"unicode/utf8"

	"crier/plugins"
)

// FuzzHandle sends any text, as body and as nick, through the moderator:
// it never panics, and a message it stops was acted on (something was
// done or said, or the action was refused and counted).
func FuzzHandle(f *testing.F) {
	for _, s := range []string{"gg", "ｆｒｅｅ c o i n s", "f\u200br\u200be\u200be coins", "discord.gg/abc", "Z̷̢̛a̸l̶g̵o̴",
		"\xff\xfe", "@alice @bob @carol", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ""} {
		f.Add(s, "mallory")
	}
	fx := newFixture(f, "[moderator]\nwords = [\"free coins\", \"*cunt*\"]\nallow = [\"scunthorpe\"]\n[[moderator.patterns]]\nname = \"gold\"\nexpr = \"cheap gold\"\npoints = 2\n")
	f.Fuzz(func(t *testing.T, body, nick string) {
		if len(body) > 4096 || len(nick) > 64 {
			return
		}
		fx.h.Reset()
		fx.clk.Advance(time.Hour) // each input on its own
		ev := &plugins.Event{Kind: plugins.EventJoin, Type: "groupchat", Room: lobby, Nick: nick, Role: "participant", Affiliation: "none", BotNick: "crier"}
		fx.p.Handle(context.Background(), ev)
		ev.Kind, ev.Body, ev.StanzaID = plugins.EventMessage, body, "s1"
		v := fx.p.Handle(context.Background(), ev)
		fx.p.flush()
		if v == plugins.Stop && len(fx.h.Actions()) == 0 && len(fx.h.Sent()) == 0 {
			t.Fatalf("stopped %q from %q with nothing done", body, nick)
		}
		if !utf8.ValidString(body) {
			_, _ = Explain(fx.cfg, lobby, nick, body)
		}
	})
}
