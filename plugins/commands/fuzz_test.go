package commands

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"crier/plugins"
)

// FuzzParseLine: any chat line either parses into values that pass their
// own checks, or is refused with an *argError; never a panic.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"ops@example.org hello", `"a b" c`, "type=headline x@y z", "“curly” quotes", `"\"\\`, "", "  \t "} {
		f.Add(s)
	}
	p := New(*defaultConfig(), plugins.Core{})
	cmds := []*plugins.Command{p.builtin("say"), p.builtin("acl"), p.builtin("join"), &typedCmd}
	f.Fuzz(func(t *testing.T, line string) {
		for _, c := range cmds {
			vals, err := parseLine(c, line, 64)
			if err != nil {
				if _, ok := err.(*argError); !ok {
					t.Fatalf("%s %q: error %T %v", c.Name, line, err, err)
				}
				continue
			}
			for i := range c.Args {
				a := &c.Args[i]
				v, ok := vals[a.Name]
				if !ok {
					if a.Required {
						t.Fatalf("%s %q: required %s missing", c.Name, line, a.Name)
					}
					continue
				}
				if !utf8.ValidString(v) || len(v) > 64 && a.Default != v {
					t.Fatalf("%s %q: %s = %q passed unchecked", c.Name, line, a.Name, v)
				}
			}
		}
	})
}

// FuzzAdHoc: any payload gets an answer or an *plugins.IQError, never a
// panic or another error.
func FuzzAdHoc(f *testing.F) {
	for _, s := range []string{
		`<command xmlns="http://jabber.org/protocol/commands" node="join"/>`,
		`<command xmlns="http://jabber.org/protocol/commands" node="say" action="complete"><x xmlns="jabber:x:data" type="submit"><field var="to"><value>a@b</value></field><field var="body"><value>x</value></field></x></command>`,
		`<command xmlns="http://jabber.org/protocol/commands" node="leave" sessionid="x" action="prev"/>`,
		`<command node="rooms"/>`,
		`<command`,
	} {
		f.Add(s)
	}
	fx := newFixture(f, func(c *Config) { c.Rate = Rate{} })
	f.Fuzz(func(t *testing.T, payload string) {
		if strings.Contains(payload, `"reload"`) || strings.Contains(payload, `"leave"`) {
			return // keep the fake host's rooms and config as they are
		}
		fx.h.Reset()
		out, err := fx.p.handleIQ(context.Background(), plugins.IQ{From: adminPhone, Type: "set", Name: cmdName, Payload: []byte(payload)})
		if err != nil {
			if _, ok := err.(*plugins.IQError); !ok {
				t.Fatalf("%q: error %T %v", payload, err, err)
			}
			return
		}
		if len(out) == 0 {
			t.Fatalf("%q: empty answer", payload)
		}
	})
}
