package moderator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"crier/internal/config"
	"crier/plugins"
)

// chat is what a well-behaved player says.
var chat = []string{"gg wp", "anyone up for a match?", "I live near Scunthorpe", "that was a classic pass",
	"LOL", "check https://example.org/rules", "brb", "ok", "nice shot!", "let's go", "one more round?", "who has the flag"}

var (
	mallory = occupant{nick: "mallory", jid: "mallory@example.org", oid: "occ-m"}
	bob     = occupant{nick: "bob", jid: "bob@example.org", oid: "occ-b"}
)

// TestLadder floods from one occupant while another chats: the flooder is
// warned, muted, kicked and banned for a time, the ban and the mute end
// after a restart in between, and the other occupant gets nothing.
func TestLadder(t *testing.T) {
	f := newFixture(t, "[moderator]\nalert = [\""+mods+"\"]\n[moderator.links]\nallow = [\"example.org\"]\n")
	f.join(mallory)
	f.join(bob)
	var verdicts []plugins.Verdict
	for i := 1; i <= 11; i++ {
		verdicts = append(verdicts, f.say(mallory, fmt.Sprintf("hi %d", i)))
		if i%3 == 0 {
			if v := f.say(bob, chat[i%len(chat)]); v != plugins.Continue {
				t.Fatalf("bob's message %d: verdict %v", i, v)
			}
		}
		f.clk.Advance(100 * time.Millisecond)
	}
	for i, v := range verdicts {
		want := plugins.Continue
		if i >= 6 {
			want = plugins.Stop // acted on: rules must not see it
		}
		if v != want {
			t.Errorf("message %d: verdict %v, want %v", i+1, v, want)
		}
	}
	want := []string{"devoice mallory", "devoice mallory", "kick mallory", "ban mallory@example.org"}
	if got := f.actions(); !slices.Equal(got, want) {
		t.Fatalf("actions = %q, want %q", got, want)
	}
	var warned bool
	for _, m := range f.h.Sent() {
		if m.To == lobby && m.Type == "groupchat" && strings.HasPrefix(m.Body, "mallory: warning for flooding") && strings.Contains(m.Body, "Next: mute for 5m") {
			warned = true
		}
		if strings.Contains(m.Body, "bob") {
			t.Errorf("bob was named: %q", m.Body)
		}
	}
	if !warned {
		t.Errorf("no warning in %+v", f.h.Sent())
	}
	c := f.waitCase(5, "done")
	if c.Action != ActTempban || c.JID != "mallory@example.org" || c.Detector != "flood" || c.Target != "oid:occ-m" || c.By != "auto" || c.Expires.IsZero() {
		t.Errorf("case 5 = %+v", c)
	}

	// A restart: a new instance on the same namespace ends the timed
	// actions when their time comes.
	f.restart()
	f.h.Reset()
	f.clk.Advance(4 * time.Minute)
	f.h.Store.Expire(f.clk.Now())
	if got := f.actions(); len(got) != 0 {
		t.Fatalf("before the mute ends: %q", got)
	}
	f.clk.Advance(2 * time.Minute)
	f.h.Store.Expire(f.clk.Now())
	if got := f.actions(); !slices.Equal(got, []string{"voice mallory"}) {
		t.Fatalf("after the mute: %q", got)
	}
	f.clk.Advance(time.Hour)
	f.h.Store.Expire(f.clk.Now())
	if got := f.actions(); !slices.Equal(got, []string{"voice mallory", "unban mallory@example.org"}) {
		t.Fatalf("after the tempban: %q", got)
	}
	if n := f.counter("crier_moderator_hits_total", map[string]string{"detector": "flood", "mode": "enforced"}); n != 0 {
		t.Errorf("a new instance has its own registry: %v", n)
	}
	f.waitCounter("crier_moderator_actions_total", map[string]string{"action": "unban", "result": "done"}, 1)
}

// TestEscalationKeepsStepInCooldown: points decay, but the step reached
// does not go down again within the cooldown.
func TestEscalationKeepsStepInCooldown(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\nword_points = 2\nretract = []\n[moderator.repeat]\nenabled = false\n")
	f.join(mallory)
	f.say(mallory, "free coins")    // 2 points: warn
	f.say(mallory, "free coins")    // 4: mute
	f.clk.Advance(9 * time.Minute)  // 4 decayed to 0
	f.say(mallory, "free coins")    // 2, but still a mute in the cooldown
	f.clk.Advance(11 * time.Minute) // cooldown over
	f.say(mallory, "free coins")    // 2: warn
	got := f.actions()
	if want := []string{"devoice mallory", "devoice mallory"}; !slices.Equal(got, want) {
		t.Fatalf("actions %q, want %q", got, want)
	}
	sent := f.h.Sent()
	if len(sent) != 2 || !strings.HasPrefix(sent[1].Body, "mallory: warning") {
		t.Fatalf("sent %+v", sent)
	}
}

// TestEvadedWordRetracted: a blocked phrase written in fullwidth letters
// with spaces and a zero-width space is retracted and its sender warned.
func TestEvadedWordRetracted(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\n")
	f.join(mallory)
	f.join(bob)
	if v := f.say(bob, "the free market decides coins"); v != plugins.Continue {
		t.Fatalf("innocent text: %v", v)
	}
	if v := f.say(mallory, "get ｆｒ\u200bｅｅ c o i n s now"); v != plugins.Stop {
		t.Fatalf("verdict %v", v)
	}
	got := f.actions()
	if len(got) != 1 || !strings.HasPrefix(got[0], "retract sid-") {
		t.Fatalf("actions %q", got)
	}
	c := f.waitCaseFn(1, "done", func(c *Case) bool { return c.Retract != "sent" })
	if c.Detector != "words" || c.Retract != "done" || c.Norm == "" || !strings.Contains(c.Raw, "ｆｒ\u200bｅｅ") || c.Steps == "" {
		t.Errorf("case %+v", c)
	}
	if s := f.h.Sent(); len(s) != 1 || !strings.Contains(s[0].Body, "a blocked word") {
		t.Errorf("sent %+v", s)
	}
}

// TestRetractFallback: a room without stanza-ids cannot retract: the
// moderators are told and the configured fallback is taken.
func TestRetractFallback(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\nretract_fallback = \"kick\"\nalert = [\""+mods+"\"]\n")
	f.join(mallory)
	ev := &plugins.Event{Kind: plugins.EventMessage, Type: "groupchat", Room: lobby, Nick: "mallory", Body: "free coins",
		OccupantID: "occ-m", RealJID: "mallory@example.org", Role: "participant", Affiliation: "none", BotNick: "crier"}
	if v := f.p.Handle(context.Background(), ev); v != plugins.Stop {
		t.Fatalf("verdict %v", v)
	}
	if got := f.actions(); !slices.Equal(got, []string{"kick mallory"}) {
		t.Fatalf("actions %q", got)
	}
	var told bool
	for _, m := range f.h.Sent() {
		told = told || m.To == mods && m.Type == "groupchat" && strings.Contains(m.Body, "cannot retract")
	}
	if !told {
		t.Errorf("no alert: %+v", f.h.Sent())
	}
	if n := f.counter("crier_moderator_failures_total", map[string]string{"action": "retract", "reason": "unsupported"}); n != 1 {
		t.Errorf("failures = %v", n)
	}
}

// TestCleanUserGetsNothing: a chatty but well-behaved occupant.
func TestCleanUserGetsNothing(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\", \"ass\", \"*cunt*\"]\nallow = [\"scunthorpe\"]\n[moderator.links]\nallow = [\"example.org\"]\n")
	f.join(bob)
	for i, body := range chat {
		if v := f.say(bob, body); v != plugins.Continue {
			t.Errorf("%q: verdict %v", body, v)
		}
		f.clk.Advance(time.Duration(i+1) * time.Second)
	}
	if len(f.h.Actions()) != 0 || len(f.h.Sent()) != 0 {
		t.Fatalf("actions %q, sent %+v", f.actions(), f.h.Sent())
	}
}

// TestExemptions: moderators, listed JIDs, a permit and the bot itself are
// left alone; someone who cannot be identified is never acted on.
func TestExemptions(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\nexempt = [\"moderator\", \"friend@example.org\"]\n")
	cases := []occupant{
		{nick: "modder", jid: "modder@example.org", role: "moderator"},
		{nick: "friend", jid: "Friend@example.org"},
		{nick: "crier", jid: botJID},
		{nick: ""},
	}
	for _, o := range cases {
		if v := f.say(o, "free coins"); v != plugins.Continue {
			t.Errorf("%+v: verdict %v", o, v)
		}
	}
	f.join(mallory)
	if _, err := f.run("permit", map[string]string{"nick": "mallory", "duration": "1m"}); err != nil {
		t.Fatal(err)
	}
	if v := f.say(mallory, "free coins"); v != plugins.Continue {
		t.Errorf("permitted: %v", v)
	}
	if len(f.h.Actions()) != 0 || len(f.h.Sent()) != 0 {
		t.Fatalf("actions %q, sent %+v", f.actions(), f.h.Sent())
	}
	if n := f.counter("crier_moderator_unidentified_total", nil); n != 1 {
		t.Errorf("unidentified = %v", n)
	}
	f.clk.Advance(2 * time.Minute)
	if v := f.say(mallory, "free coins"); v != plugins.Stop {
		t.Errorf("permit over: %v", v)
	}
}

// TestNickChangeKeepsCounters: in a room without occupant ids or real
// JIDs, the counters follow the nick change.
func TestNickChangeKeepsCounters(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\nretract = []\n")
	carol := occupant{nick: "carol"}
	f.join(carol)
	f.say(carol, "free coins") // 3: warn
	f.h.AddOccupant(plugins.Occupant{Room: lobby, Nick: "carol2", Role: "participant", Affiliation: "none"})
	f.p.Handle(context.Background(), &plugins.Event{Kind: plugins.EventNick, Type: "groupchat", Room: lobby, Nick: "carol", NewNick: "carol2",
		Role: "participant", Affiliation: "none", BotNick: "crier"})
	f.say(occupant{nick: "carol2"}, "free coins") // 6: mute
	if got := f.actions(); !slices.Equal(got, []string{"devoice carol2"}) {
		t.Fatalf("actions %q", got)
	}
	r, err := f.run("why", map[string]string{"who": "carol2"})
	if err != nil || !strings.Contains(r.Text, "6.0 strike points") {
		t.Fatalf("why: %q %v", r.Text, err)
	}
	// A room the bot is not in is refused, not answered with zero points.
	if r, err := f.run("why", map[string]string{"who": "carol2", "room": "room=lobby@conference.example.org"}); !errors.Is(err, plugins.ErrNotRoom) {
		t.Fatalf("why in a room the bot is not in: %q %v, want ErrNotRoom", r.Text, err)
	}
}

// TestDryRun: observe mode acts on nothing but reports what it would do.
func TestDryRun(t *testing.T) {
	f := newFixture(t, "[moderator]\ndry_run = true\nwords = [\"free coins\"]\nalert = [\""+mods+"\"]\n")
	f.join(mallory)
	for range 3 {
		if v := f.say(mallory, "free coins"); v != plugins.Continue {
			t.Fatalf("observe mode stopped the chain")
		}
	}
	if got := f.actions(); len(got) != 0 {
		t.Fatalf("actions %q", got)
	}
	sent := f.h.Sent()
	if len(sent) != 3 {
		t.Fatalf("sent %+v", sent)
	}
	for _, m := range sent {
		if m.To != mods || !strings.Contains(m.Body, "(observe): would retract and ") {
			t.Errorf("report %+v", m)
		}
	}
	if !strings.Contains(sent[1].Body, "would retract and mute for 5m mallory") {
		t.Errorf("second report %q", sent[1].Body)
	}
	c := f.waitCase(1, "observed")
	if !c.Observed {
		t.Errorf("case %+v", c)
	}
	if n := f.counter("crier_moderator_hits_total", map[string]string{"detector": "words", "mode": "observed"}); n != 3 {
		t.Errorf("observed hits %v", n)
	}
	if _, err := f.run("observe", map[string]string{"on": "off"}); err != nil {
		t.Fatal(err)
	}
	if v := f.say(mallory, "free coins"); v != plugins.Stop {
		t.Errorf("observe off: %v", v)
	}
}

// TestRuleObserve: a rule in observe mode counts no points.
func TestRuleObserve(t *testing.T) {
	f := newFixture(t, "[moderator]\nobserve = [\"regex/gold\"]\n[[moderator.patterns]]\nname = \"gold\"\nexpr = \"cheap gold\"\npoints = 3\n")
	f.join(mallory)
	if v := f.say(mallory, "cheap gold here"); v != plugins.Continue {
		t.Fatalf("verdict %v", v)
	}
	if len(f.h.Actions())+len(f.h.Sent()) != 0 {
		t.Fatalf("acted: %q %+v", f.actions(), f.h.Sent())
	}
	if n := f.counter("crier_moderator_hits_total", map[string]string{"detector": "regex", "rule": "gold", "mode": "observed"}); n != 1 {
		t.Errorf("observed hits %v", n)
	}
}

// TestJoinWave: many joins make the room members-only, and it opens again
// when the time is up, across a restart.
func TestJoinWave(t *testing.T) {
	f := newFixture(t, "[moderator]\n[moderator.joinwave]\njoins = 3\nduration = \"10m\"\n")
	for i := range 4 {
		f.join(occupant{nick: fmt.Sprintf("raider%d", i), oid: fmt.Sprintf("r%d", i)})
	}
	f.p.flush()
	if got := f.actions(); !slices.Equal(got, []string{"configure muc#roomconfig_membersonly=1"}) {
		t.Fatalf("actions %q", got)
	}
	f.restart()
	f.clk.Advance(11 * time.Minute)
	f.h.Store.Expire(f.clk.Now())
	if got := f.actions(); !slices.Equal(got, []string{"configure muc#roomconfig_membersonly=1", "configure muc#roomconfig_membersonly=0"}) {
		t.Fatalf("actions %q", got)
	}
}

// TestNickFilter: a blocked nick, disguised, is kicked at join.
func TestNickFilter(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"badword\"]\n")
	f.join(occupant{nick: "B4DW0RD", oid: "x"})
	if got := f.actions(); !slices.Equal(got, []string{"kick B4DW0RD"}) {
		t.Fatalf("actions %q", got)
	}
}

// TestMutedRejoin: leaving and coming back does not end a mute.
func TestMutedRejoin(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\nretract = []\n[[moderator.ladder]]\npoints = 1\naction = \"mute\"\nduration = \"5m\"\n")
	f.join(mallory)
	f.say(mallory, "free coins")
	f.join(mallory)
	if got := f.actions(); !slices.Equal(got, []string{"devoice mallory", "devoice mallory"}) {
		t.Fatalf("actions %q", got)
	}
}

// TestCommands: tempban, case, history, unban, pardon and revert.
func TestCommands(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\nretract = []\nsubject = \"crier.moderator\"\n")
	f.h.Lock()
	f.h.PublishErr = nil
	f.h.Unlock()
	f.join(mallory)
	r, err := f.run("tempban", map[string]string{"nick": "mallory", "duration": "2h", "reason": "spam"})
	if err != nil || !strings.Contains(r.Text, "mallory banned from "+lobby+" for 2h [case 1]") {
		t.Fatalf("tempban: %q %v", r.Text, err)
	}
	r, err = f.run("case", map[string]string{"id": "1"})
	if err != nil || !strings.Contains(r.Text, "tempban of mallory <mallory@example.org>") || !strings.Contains(r.Text, "by mod@example.org") {
		t.Fatalf("case: %q %v", r.Text, err)
	}
	if _, err := f.run("revert", map[string]string{"id": "1"}); err != nil {
		t.Fatal(err)
	}
	if got := f.actions(); !slices.Equal(got, []string{"ban mallory@example.org", "unban mallory@example.org"}) {
		t.Fatalf("actions %q", got)
	}
	f.p.flush()
	f.clk.Advance(3 * time.Hour)
	f.h.Store.Expire(f.clk.Now())
	if got := f.actions(); len(got) != 2 {
		t.Fatalf("the reverted ban's timer fired: %q", got)
	}
	f.say(mallory, "free coins")
	f.say(mallory, "free coins")
	r, err = f.run("history", map[string]string{"who": "mallory@example.org"})
	if err != nil || r.Table == nil || len(r.Table.Rows) != 4 {
		t.Fatalf("history: %+v %v", r, err)
	}
	if _, err := f.run("pardon", map[string]string{"who": "mallory"}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(2 * time.Minute) // out of the repeat detector's window
	f.say(mallory, "free coins")
	if got := f.actions(); !slices.Equal(got[2:], []string{"devoice mallory"}) || !strings.HasPrefix(f.h.Sent()[len(f.h.Sent())-1].Body, "mallory: warning") {
		t.Fatalf("after pardon: %q", got)
	}
	if _, err := f.run("unmute", map[string]string{"nick": "mallory"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.run("unban", map[string]string{"jid": "mallory@example.org"}); err != nil {
		t.Fatal(err)
	}
	r, err = f.run("explain", map[string]string{"text": "ｆｒｅｅ coins"})
	if err != nil || !strings.Contains(r.Text, `normalised`) || !strings.Contains(r.Text, `words:`) || !strings.Contains(r.Text, "would do") {
		t.Fatalf("explain: %q %v", r.Text, err)
	}
	// The answers come on the fake host's goroutines: wait for them.
	var kinds []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		kinds = kinds[:0]
		for _, pub := range f.h.Published() {
			var c Case
			if pub.Subject != "crier.moderator" || json.Unmarshal(pub.Data, &c) != nil {
				t.Fatalf("published %q %s", pub.Subject, pub.Data)
			}
			kinds = append(kinds, c.Action)
		}
		if slices.Contains(kinds, ActTempban) && slices.Contains(kinds, ActWarn) && slices.Contains(kinds, ActMute) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %q", kinds)
		}
	}
	if _, err := f.run("case", map[string]string{"id": "99"}); err == nil {
		t.Errorf("case 99 found")
	}
}

// TestRights: a room where the bot is no moderator is named in the status
// and the moderators are told.
func TestRights(t *testing.T) {
	f := newFixture(t, "[moderator]\nalert = [\"admin@example.org\"]\n")
	f.h.AddRoom(plugins.RoomInfo{JID: "weak@conference.example.org", Nick: "crier", State: "joined", Role: "participant", Affiliation: "none"})
	f.p.checkRights()
	st := f.p.Status()
	if len(st) != 1 || !strings.Contains(st[0], "weak@conference.example.org: not a moderator") {
		t.Fatalf("status %q", st)
	}
	ok, why := f.p.Ready()
	if !ok || !strings.Contains(why, "not an owner") {
		t.Errorf("ready %v %q", ok, why)
	}
	sent := f.h.Sent()
	if len(sent) != 1 || sent[0].To != "admin@example.org" || sent[0].Type != "chat" {
		t.Errorf("alert %+v", sent)
	}
	f.p.checkRights()
	if len(f.h.Sent()) != 1 {
		t.Errorf("told twice")
	}
}

// TestRefusedAction: a server refusal is counted and alerted.
func TestRefusedAction(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\nretract = []\nalert = [\""+mods+"\"]\n[[moderator.ladder]]\npoints = 1\naction = \"kick\"\n")
	f.join(mallory)
	f.h.Lock()
	f.h.DoErr = fmt.Errorf("%w: kick needs the moderator role", plugins.ErrNoRights)
	f.h.Unlock()
	f.say(mallory, "free coins")
	if n := f.counter("crier_moderator_failures_total", map[string]string{"action": "kick", "reason": "no_rights"}); n != 1 {
		t.Errorf("failures %v", n)
	}
	c := f.waitCase(1, "refused")
	if !strings.Contains(c.Result, "rights") {
		t.Errorf("case %+v", c)
	}
	if s := f.h.Sent(); len(s) != 1 || !strings.Contains(s[0].Body, "cannot kick mallory") {
		t.Errorf("alert %+v", s)
	}
}

// TestConfigErrors: bad values are reported at their lines.
func TestConfigErrors(t *testing.T) {
	t.Setenv(config.PasswordEnv, "")
	table := `[moderator]
steps = ["nfkc", "sparkle"]
retract = ["magic"]
exempt = ["friends"]
[[moderator.ladder]]
points = 2
action = "smite"
[[moderator.ladder]]
points = 1
action = "mute"
[[moderator.patterns]]
name = "bad"
expr = "(unclosed"
[moderator.caps]
ratio = 1.5
[[moderator.room]]
jid = "not a jid"
warn = "loudly"
`
	_, err := config.LoadBytes("test.toml", []byte(minimal+table))
	if err == nil {
		t.Fatal("loaded")
	}
	msg := err.Error()
	if strings.Contains(msg, "test.toml:20: moderator.room.steps") {
		t.Errorf("an inherited value is reported again for the room:\n%s", msg)
	}
	for _, want := range []string{
		"test.toml:6: moderator.steps: ", "sparkle",
		"test.toml:7: moderator.retract: \"magic\" is not a detector",
		"test.toml:8: moderator.exempt: \"friends\"",
		"test.toml:11: moderator.ladder.action: \"smite\"",
		"test.toml:13: moderator.ladder.points: steps must go up",
		"test.toml:12: moderator.ladder.duration: a mute needs a positive duration",
		"test.toml:17: moderator.patterns.expr: ", "missing closing )",
		"test.toml:18: moderator.caps: ", "ratio 1.5 is not between 0 and 1",
		"test.toml:21: moderator.room.jid: ",
		"test.toml:22: moderator.room.warn: \"loudly\"",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("no %q in\n%s", want, msg)
		}
	}
}

// TestRoomOverride: a room's override changes only the keys it writes.
func TestRoomOverride(t *testing.T) {
	cfg := loadConfig(t, "[moderator]\nwords = [\"free coins\"]\n[moderator.caps]\nmin_letters = 20\n[[moderator.room]]\njid = \""+lobby+"\"\ndry_run = true\n[moderator.room.caps]\nratio = 0.9\n")
	r := cfg.Room[0].Settings
	if !r.DryRun || r.Caps.Ratio != 0.9 || r.Caps.MinLetters != 20 || !r.Caps.Enabled || !slices.Equal(r.Words, []string{"free coins"}) || r.Flood.Messages != 6 {
		t.Fatalf("override %+v", r)
	}
	if cfg.DryRun || cfg.Caps.Ratio != 0.75 {
		t.Fatalf("top level changed: %+v", cfg.Settings)
	}
}

// TestExplain prints every detector's verdict and the normalised text.
func TestExplain(t *testing.T) {
	cfg := loadConfig(t, "[moderator]\nwords = [\"free coins\"]\n")
	out, err := Explain(cfg, lobby, "bob", "FREE C0INS at discord.gg/xyz")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"normalised (", `"fre coins at discord.g/xyz"`, "words:", `words/words +3 "FREE C0INS"`, "links:", "discord.gg", "caps:", "flood:", "nick:", "points: 6", "would do (first offence): retract and mute for 5m"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// TestWordsFile: entries from words_file count like words.
func TestWordsFile(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords_file = \"testdata/words.txt\"\nretract = []\n")
	f.join(mallory)
	if v := f.say(mallory, "selling CHEAP G0LD"); v != plugins.Stop {
		t.Fatalf("verdict %v", v)
	}
	_, err := config.LoadBytes("test.toml", []byte(minimal+"[moderator]\nwords_file = \"testdata/missing.txt\"\n"))
	if err == nil || !strings.Contains(err.Error(), "test.toml:6: moderator.words_file: ") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestSweep: decayed strikes and ended permits leave memory.
func TestSweep(t *testing.T) {
	f := newFixture(t, "[moderator]\nwords = [\"free coins\"]\nretract = []\n")
	f.join(mallory)
	f.say(mallory, "free coins")
	if _, err := f.run("permit", map[string]string{"nick": "bob", "duration": "1m"}); err != nil {
		t.Fatal(err)
	}
	counts := func() (int, int) {
		f.p.mu.Lock()
		defer f.p.mu.Unlock()
		return len(f.p.strikes), len(f.p.permits)
	}
	f.p.sweep(f.clk.Now())
	if s, p := counts(); s != 1 || p != 1 {
		t.Fatalf("swept too early: %d strikes, %d permits", s, p)
	}
	f.p.sweep(f.clk.Now().Add(30 * time.Minute))
	if s, p := counts(); s != 0 || p != 0 {
		t.Fatalf("not swept: %d strikes, %d permits", s, p)
	}
}

// TestRaid: many occupants flooding at once make the room moderated for
// a while; the moderators are told.
func TestRaid(t *testing.T) {
	f := newFixture(t, "[moderator]\nalert = [\""+mods+"\"]\n[moderator.raid]\nmessages = 6\nsenders = 3\nwindow = \"10s\"\nduration = \"2m\"\n")
	for i := range 8 {
		o := occupant{nick: fmt.Sprintf("r%d", i%4), oid: fmt.Sprintf("r%d", i%4)}
		f.say(o, fmt.Sprintf("wave %d", i))
		f.clk.Advance(100 * time.Millisecond)
	}
	if got := f.actions(); !slices.Equal(got, []string{"configure muc#roomconfig_moderatedroom=1"}) {
		t.Fatalf("actions %q", got)
	}
	var told bool
	for _, m := range f.h.Sent() {
		told = told || m.To == mods && strings.Contains(m.Body, "is moderated for 2m")
	}
	if !told {
		t.Errorf("sent %+v", f.h.Sent())
	}
	f.clk.Advance(3 * time.Minute)
	f.h.Store.Expire(f.clk.Now())
	if got := f.actions(); len(got) != 2 || got[1] != "configure muc#roomconfig_moderatedroom=0" {
		t.Fatalf("actions %q", got)
	}
}
