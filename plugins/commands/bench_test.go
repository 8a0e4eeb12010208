package commands

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"crier/plugins"
)

// benchFixture has 100 commands of another plugin besides the built-ins,
// and no rate limit.
func benchFixture(b *testing.B) *fixture {
	var extra []plugins.Command
	for i := range 100 {
		extra = append(extra, plugins.Command{Name: fmt.Sprintf("cmd%03d", i), Summary: "bench",
			Args: []plugins.Arg{{Name: "text", Rest: true}},
			Run: func(_ context.Context, c *plugins.Call) (plugins.Reply, error) {
				return plugins.Reply{Text: "ok"}, nil
			}})
	}
	return newFixture(b, func(c *Config) { c.Rate = Rate{} }, extra...)
}

// BenchmarkHandleNotCommand is the chain link's cost on an ordinary
// message.
func BenchmarkHandleNotCommand(b *testing.B) {
	f := benchFixture(b)
	ev := inRoom(occupant{nick: "bob"}, "hello everyone, the build is green again")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if f.p.Handle(ctx, &ev) != plugins.Continue {
			b.Fatal("stopped")
		}
	}
}

// BenchmarkHandleCommand is a whole command from the chain link to its
// reply (parse, rights, goroutine, run, send), for a built-in and for the
// last of 100 commands of another plugin.
func BenchmarkHandleCommand(b *testing.B) {
	for _, body := range []string{"!version", "!cmd099 some text here"} {
		b.Run(strings.Fields(body)[0][1:], func(b *testing.B) {
			f := benchFixture(b)
			ev := inRoom(occupant{nick: "bob"}, body)
			ctx := context.Background()
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				if f.p.Handle(ctx, &ev) != plugins.Stop {
					b.Fatal("not a command")
				}
				f.p.wg.Wait()
				if n++; n%1024 == 0 {
					f.h.Reset()
				}
			}
			if len(f.h.Sent()) == 0 {
				b.Fatal("no reply")
			}
		})
	}
}
