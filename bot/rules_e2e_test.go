package bot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

// The tests in this file drive rules and cron jobs end to end: a user talks
// in a room of the mini server, the bot answers through its rule engine, and
// the test watches what the user receives.

// kickRule kicks whoever says the forbidden word.
const kickRule = `
[[rules]]
name     = "language"
keywords = ["frobnicate"]
actions  = [{ do = "kick", text = "mind your language, {{.Nick}}" }]
`

// labelled returns the value of the series name{label="value"}, or 0 when the
// series does not exist yet.
func labelled(t *testing.T, b *Bot, name, label, value string) float64 {
	t.Helper()
	return labelledN(t, b, name, label, value)
}

// labelledN returns the value of the series of name whose labels include
// every label-value pair of kv, or 0 when there is none yet.
func labelledN(t *testing.T, b *Bot, name string, kv ...string) float64 {
	t.Helper()
	mfs, err := b.met.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if got[kv[i]] != kv[i+1] {
					continue series
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

func isPresence(from, typ string) func(xmpptest.Stanza) bool {
	return func(s xmpptest.Stanza) bool {
		return s.Name == "presence" && s.From == from && s.Type == typ
	}
}

// TestRuleKicks has the bot create the room, so that it owns it and is a
// moderator; a rule then kicks alice for a forbidden word.
func TestRuleKicks(t *testing.T) {
	h := readyBot(t, kickRule)
	srv := h.srv
	if role, aff, joined := h.bot.rooms.selfRole(room); !joined || role != "moderator" || aff != "owner" {
		t.Fatalf("bot in the room it created: role %q affiliation %q joined %v, want an owner moderator", role, aff, joined)
	}

	alice := joinRoom(t, h, "alice")
	bob := joinRoom(t, h, "bob")
	if err := alice.SendMessage(room, "groupchat", "let us Frobnicate the widget"); err != nil {
		t.Fatal(err)
	}
	kicked := alice.Expect(t, 5*time.Second, isPresence(room+"/alice", "unavailable"))
	if !kicked.HasStatus("307") {
		t.Fatalf("alice's unavailable presence lacks status 307: %s", kicked.Raw)
	}
	if reason := kicked.Find("", "reason"); reason == nil || reason.Text != "mind your language, alice" {
		t.Errorf("kick reason: %s", kicked.Raw)
	}
	seen := bob.Expect(t, 5*time.Second, isPresence(room+"/alice", "unavailable"))
	if !seen.HasStatus("307") {
		t.Errorf("bob sees alice leave without status 307: %s", seen.Raw)
	}
	if contains(srv.Occupants(room), "alice") {
		t.Fatalf("alice is still in the room: %v", srv.Occupants(room))
	}
	waitFor(t, "the moderation log line", func() bool { return strings.Contains(h.logs.String(), "moderation done") })
	if got := labelled(t, h.bot, "crier_rule_hits_total", "rule", "language"); got != 1 {
		t.Errorf("crier_rule_hits_total{rule=language} = %v, want 1", got)
	}
	// bob's innocent message neither kicks him nor is refused.
	if err := bob.SendMessage(room, "groupchat", "!ping"); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, 5*time.Second, isBody(room+"/crier", "pong bob"))
	if !contains(srv.Occupants(room), "bob") {
		t.Fatalf("bob was removed too: %v", srv.Occupants(room))
	}
}

// TestRuleKickRefusedWithoutRole lets bob create the room, so the bot is a
// plain participant: the kick is refused by the bot itself, logged and
// counted, and alice stays.
func TestRuleKickRefusedWithoutRole(t *testing.T) {
	srv := startServer(t)
	bob := xmpptest.Dial(t, xmpptest.Options{Addr: srv.Addr(), JID: "bob@localhost", Password: "bobpw", RootCAs: srv.CertPool(), Timeout: 5 * time.Second})
	if err := bob.Join(room, "bob"); err != nil {
		t.Fatal(err)
	}
	h := startBot(t, srv, botConfig(t, srv, kickRule), Options{})
	h.waitReady(5 * time.Second)
	if role, aff, _ := h.bot.rooms.selfRole(room); role != "participant" || aff != "none" {
		t.Fatalf("bot in bob's room: role %q affiliation %q, want a participant without affiliation", role, aff)
	}

	alice := joinRoom(t, h, "alice")
	if err := alice.SendMessage(room, "groupchat", "frobnicate!"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "crier_rejected_total{reason=not_moderator} to reach 1", func() bool {
		return labelled(t, h.bot, "crier_rejected_total", "reason", "not_moderator") == 1
	})
	logs := h.logs.String()
	if !strings.Contains(logs, "rule action refused") || !strings.Contains(logs, "rule=language") || !strings.Contains(logs, "role=participant") {
		t.Errorf("no log line tells why the kick was refused:\n%s", logs)
	}
	// The room goes on: alice is still there and still answered.
	if err := alice.SendMessage(room, "groupchat", "!ping"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	for _, s := range alice.Drain() {
		if s.Name == "presence" && s.From == room+"/alice" && s.Type == "unavailable" {
			t.Fatalf("alice was kicked although the bot is no moderator: %s", s.Raw)
		}
	}
	if !contains(srv.Occupants(room), "alice") {
		t.Fatalf("alice left the room: %v", srv.Occupants(room))
	}
}

// TestCronPostsToRoom runs a job every two seconds: alice sees it post
// repeatedly, and the posts stop with the bot.
func TestCronPostsToRoom(t *testing.T) {
	srv := startServer(t)
	cfg := botConfig(t, srv, `
[[cron]]
name     = "tick"
schedule = "*/2 * * * * *"
timezone = "UTC"
to       = "`+room+`"
body     = '{{.Name}} at {{.Time.Format "15:04:05"}}'
`)
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	alice := joinRoom(t, h, "alice")

	isTick := func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.From == room+"/crier" && strings.HasPrefix(s.Body, "tick at ")
	}
	start := time.Now()
	var stamps []time.Time
	for len(stamps) < 2 {
		left := 7*time.Second - time.Since(start)
		if left <= 0 {
			t.Fatalf("only %d cron posts within 7s", len(stamps))
		}
		s, err := alice.Wait(context.Background(), 0, left, isTick)
		if err != nil {
			t.Fatalf("after %d cron posts: %v\n%s", len(stamps), err, alice.Recent(10))
		}
		if s.Type != "groupchat" {
			t.Errorf("cron post has type %q, want groupchat", s.Type)
		}
		at, err := time.Parse("15:04:05", strings.TrimPrefix(s.Body, "tick at "))
		if err != nil {
			t.Fatalf("cron post %q: %v", s.Body, err)
		}
		if at.Second()%2 != 0 {
			t.Errorf("cron post %q is not on an even second", s.Body)
		}
		stamps = append(stamps, at)
	}
	if d := stamps[1].Sub(stamps[0]); d != 2*time.Second {
		t.Errorf("cron posts %v apart, want 2s", d)
	}

	h.shutdown()
	alice.Expect(t, 5*time.Second, isPresence(room+"/crier", "unavailable"))
	since := alice.Seq()
	runs := labelled(t, h.bot, "crier_rule_hits_total", "rule", "tick")
	// Two periods: a scheduler still running would fire at least once.
	s, err := alice.Wait(context.Background(), since, 4500*time.Millisecond, isTick)
	if err == nil {
		t.Fatalf("cron post after the bot stopped: %s", s.Raw)
	}
	if !errors.Is(err, xmpptest.ErrTimeout) {
		t.Fatal(err)
	}
	if after := labelled(t, h.bot, "crier_rule_hits_total", "rule", "tick"); after != runs {
		t.Fatalf("the cron job ran %v more times after the bot stopped", after-runs)
	}
}

// TestReloadChangesRoomReply reloads a changed reply: the room gets the new
// reply, over the same session and without leaving the room.
func TestReloadChangesRoomReply(t *testing.T) {
	srv := startServer(t)
	rule := func(reply string) string {
		return "\n[[rules]]\nname = \"hello\"\nmatch = \"(?i)^hello crier$\"\nreply = \"" + reply + "\"\n"
	}
	h := startBot(t, srv, botConfig(t, srv, rule("hello {{.Nick}}")), Options{})
	h.waitReady(5 * time.Second)
	alice := joinRoom(t, h, "alice")
	if err := alice.SendMessage(room, "groupchat", "Hello crier"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "hello alice"))

	since := alice.Seq()
	if err := h.bot.Reload(botConfig(t, srv, rule("welcome back, {{.Nick | upper}}"))); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if err := alice.SendMessage(room, "groupchat", "hello crier"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "welcome back, ALICE"))
	if got := counter(t, h.bot, "crier_connects_total"); got != 1 {
		t.Errorf("crier_connects_total = %v after a reload, want 1", got)
	}
	if got := labelled(t, h.bot, "crier_reloads_total", "result", "ok"); got != 1 {
		t.Errorf("crier_reloads_total{result=ok} = %v, want 1", got)
	}
	for _, s := range alice.Drain() {
		if s.Seq <= since {
			continue
		}
		if s.Name == "presence" && s.From == room+"/crier" {
			t.Errorf("the bot left or rejoined the room on reload: %s", s.Raw)
		}
		if s.Name == "message" && s.Body == "hello alice" {
			t.Errorf("old reply after the reload: %s", s.Raw)
		}
	}
}

// TestJoinLeaveTriggers greets a newcomer and says goodbye when she leaves.
func TestJoinLeaveTriggers(t *testing.T) {
	h := readyBot(t, `
[[rules]]
name  = "welcome"
on    = ["join"]
reply = "welcome {{.Nick}} ({{.Role}})"

[[rules]]
name  = "bye"
on    = ["leave"]
reply = "bye {{.Nick}}"
`)
	alice := joinRoom(t, h, "alice")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "welcome alice (participant)"))

	bob := joinRoom(t, h, "bob")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "welcome bob (participant)"))
	bob.Expect(t, 5*time.Second, isBody(room+"/crier", "welcome bob (participant)"))
	if err := bob.Leave(room); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "bye bob"))
	// Messages are no join: a groupchat message from alice triggers neither.
	if err := alice.SendMessage(room, "groupchat", "!ping"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	for _, s := range alice.Drain() {
		if s.Name == "message" && s.From == room+"/crier" {
			t.Errorf("unexpected message from the bot: %s", s.Raw)
		}
	}
	if got := labelled(t, h.bot, "crier_rule_hits_total", "rule", "welcome"); got != 2 {
		t.Errorf("crier_rule_hits_total{rule=welcome} = %v, want 2", got)
	}
}

// TestTemplateFailsAtRunTime uses a template that passes the load-time check
// (the sample body is long enough) but fails on a short body: the failure is
// logged and counted, and the room keeps being answered.
func TestTemplateFailsAtRunTime(t *testing.T) {
	h := readyBot(t, `
[[rules]]
name  = "head"
match = "^!head"
reply = "head: {{slice .Body 0 10}}"
`)
	alice := joinRoom(t, h, "alice")

	if err := alice.SendMessage(room, "groupchat", "!head"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the template failure to be counted", func() bool {
		return h.bot.engine.Load().Stats().TemplateErrors == 1
	})
	logs := h.logs.String()
	if !strings.Contains(logs, "rule action failed") || !strings.Contains(logs, "rule=head") || !strings.Contains(logs, "template failed") {
		t.Errorf("the template failure is not logged:\n%s", logs)
	}
	if err := alice.SendMessage(room, "groupchat", "!ping"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	if err := alice.SendMessage(room, "groupchat", "!head and shoulders"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "head: !head and "))
	for _, s := range alice.Drain() {
		if s.Name == "message" && s.From == room+"/crier" {
			t.Errorf("unexpected message from the bot: %s", s.Raw)
		}
	}
	if got := h.bot.engine.Load().Stats().TemplateErrors; got != 1 {
		t.Errorf("template errors = %d, want 1", got)
	}
}
