package rules

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/internal/diag"
)

const lobby = "lobby@conference.example.org"

// clock is a settable time source for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 5, 6, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustCompile(t testing.TB, specs []Spec, opts Options) *Engine {
	t.Helper()
	e, errs := Compile(specs, opts)
	if len(errs) > 0 {
		t.Fatalf("Compile: %v", errs)
	}
	return e
}

func groupchat(nick, body string) Message {
	return Message{Type: TypeGroupchat, From: lobby + "/" + nick, Room: lobby, Nick: nick, Body: body,
		BotNick: "crier", BotJID: "crier@example.org"}
}

func chat(from, body string) Message {
	return Message{Type: TypeChat, From: from, Body: body, BotJID: "crier@example.org"}
}

func TestEvaluatePing(t *testing.T) {
	e := mustCompile(t, []Spec{{Name: "ping", Match: "^!ping$", Reply: "pong {{.Nick}}"}}, Options{})
	tests := []struct {
		name string
		msg  Message
		want []Action
	}{
		{"groupchat answers in the room", groupchat("alice", "!ping"),
			[]Action{{Rule: "ping", Kind: ActReply, To: lobby, Type: TypeGroupchat, Text: "pong alice"}}},
		{"chat answers the sender", chat("bob@example.org/phone", "!ping"),
			[]Action{{Rule: "ping", Kind: ActReply, To: "bob@example.org/phone", Type: TypeChat, Text: "pong bob"}}},
		{"no match", groupchat("alice", "!ping please"), nil},
		{"own nick in the room", groupchat("crier", "!ping"), nil},
		{"own nick in another case", groupchat("Crier", "!ping"), nil},
		{"own JID", chat("crier@example.org/other", "!ping"), nil},
		{"delayed", func() Message { m := groupchat("alice", "!ping"); m.Delayed = true; return m }(), nil},
		{"headline not in default types", Message{Type: TypeHeadline, From: "news@example.org", Body: "!ping"}, nil},
		{"room itself", Message{Type: TypeGroupchat, From: lobby, Room: lobby, Body: "!ping"}, nil},
		{"type defaults from room", Message{From: lobby + "/dave", Room: lobby, Body: "!ping"},
			[]Action{{Rule: "ping", Kind: ActReply, To: lobby, Type: TypeGroupchat, Text: "pong dave"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Evaluate(tt.msg)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Evaluate = %+v, want %+v", got, tt.want)
			}
		})
	}
	if got := e.Stats().Hits["ping"]; got != 3 {
		t.Errorf("hits = %d, want 3", got)
	}
}

func TestSenderLimit(t *testing.T) {
	clk := newClock()
	var logs bytes.Buffer
	e := mustCompile(t, []Spec{
		{Name: "echo", Match: "hello", Reply: "hi {{.Nick}}"},
		{Name: "audit", Match: "hello", Actions: []ActionSpec{{Do: "log", Text: "saw {{.Nick}}"}}},
	}, Options{SenderLimit: Rate{N: 2, Per: time.Minute}, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	kinds := func(as []Action) string {
		var k []string
		for _, a := range as {
			k = append(k, string(a.Kind))
		}
		return strings.Join(k, ",")
	}
	steps := []struct {
		msg     Message
		advance time.Duration
		want    string
	}{
		{groupchat("otherbot", "hello"), 0, "reply,log"},
		{groupchat("otherbot", "hello"), 0, "reply,log"},
		{groupchat("otherbot", "hello"), 0, "log"}, // limited: only the local log stays
		{groupchat("alice", "hello"), 0, "reply,log"},
		{groupchat("otherbot", "hello"), 30 * time.Second, "reply,log"}, // one token back
		{groupchat("otherbot", "hello"), 0, "log"},
		{groupchat("otherbot", "hello"), 0, "log"}, // refused again: counted, not logged again
	}
	for i, s := range steps {
		clk.Add(s.advance)
		if got := kinds(e.Evaluate(s.msg)); got != s.want {
			t.Errorf("step %d: actions %q, want %q", i, got, s.want)
		}
	}
	if got := e.Stats().SenderLimited; got != 3 {
		t.Errorf("SenderLimited = %d, want 3", got)
	}
	// Logged once per run of refusals, naming the sender and the limit.
	if n := strings.Count(logs.String(), "loop breaker"); n != 2 {
		t.Errorf("%d log lines about the sender limit, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "otherbot") || !strings.Contains(logs.String(), "limit=2/1m") {
		t.Errorf("the log does not name the sender and the limit:\n%s", logs.String())
	}
}

func TestCompileErrors(t *testing.T) {
	pos := diag.Pos{File: "c.toml", Line: 10, Keys: map[string]int{"match": 12, "in": 13, "reply": 14, "rate": 15, "timezone": 16, "name": 11, "actions": 17, "role": 18, "not.match": 21, "on": 19, "days": 20}}
	specs := []Spec{
		{Name: "a", Match: "(", Reply: "x", Pos: pos},
		{Name: "b", In: []string{"groupchat", "email"}, Reply: "x", Pos: pos},
		{Name: "c", Reply: "{{.Nick", Pos: pos},
		{Name: "d", Reply: "{{.Nickname}}", Pos: pos},
		{Name: "e", Reply: "x", Rate: "fast", Pos: pos},
		{Name: "f", Reply: "x", Days: []string{"mon"}, Timezone: "Europe/Pariss", Pos: pos},
		{Name: "f", Reply: "x", Pos: pos},
		{Name: "g", Actions: []ActionSpec{{Do: "explode"}}, Pos: pos},
		{Name: "h", Reply: "x", Role: []string{"king"}, Pos: pos},
		{Name: "i", Reply: "x", Not: &Cond{Match: "[z-a]"}, Pos: pos},
		{Name: "j", Reply: "x", On: []string{"typing"}, Pos: pos},
		{Name: "k", Reply: "x", Days: []string{"funday"}, Pos: pos},
		{Name: "l", Match: "(?P<word>\\w+)", Reply: "{{.Groups.wrod}}", Pos: pos},
		{Name: "m", Match: "(a)", Reply: "{{index .Match 2}}", Pos: pos},
		{Name: "", Reply: "x", Pos: pos},
		{Name: "n", Pos: pos},
	}
	want := []string{
		`c.toml:12: rule "a": invalid match regex`,
		`c.toml:13: rule "b": unknown message type "email"`,
		`c.toml:14: rule "c": reply template`,
		`c.toml:14: rule "d": reply template`,
		`c.toml:15: rule "e": rules: rate must be`,
		`c.toml:16: rule "f": timezone: unknown time zone "Europe/Pariss"`,
		`c.toml:11: rule "f": duplicate rule name (also rule #6)`,
		`c.toml:17: rule "g": actions[0]: unknown action "explode"`,
		`c.toml:18: rule "h": role: unknown value "king"`,
		`c.toml:21: rule "i": invalid not.match regex`,
		`c.toml:19: rule "j": unknown trigger "typing"`,
		`c.toml:20: rule "k": days: unknown day "funday"`,
		`c.toml:14: rule "l": reply template`,
		`c.toml:14: rule "m": reply template`,
		`c.toml:11: rule "#15": name is required`,
		`c.toml:11: rule "n": the rule does nothing`,
	}
	e, errs := Compile(specs, Options{})
	if e != nil {
		t.Fatal("Compile returned an engine despite errors")
	}
	text := errs.Error()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("missing error %q in:\n%s", w, text)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(errs), len(want), text)
	}
}
