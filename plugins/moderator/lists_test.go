package moderator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"crier/internal/config"
	"crier/internal/natstest"
	"crier/internal/state"
	"crier/plugins"
	_ "crier/plugins/natsrelay" // [nats], for a shared ban list's config
	"crier/plugins/pluginstest"
)

// banTable is a ladder that bans at the second flood and a ban list.
const banTable = `[moderator]
retract = []
[moderator.flood]
messages = 2
window = "1m"
points = 5
[moderator.repeat]
enabled = false
[[moderator.ladder]]
points = 1
action = "warn"
[[moderator.ladder]]
points = 10
action = "ban"
[moderator.banlist]
enabled = true
poll = "50ms"
`

// waitActions waits up to 5s for ok to accept the actions done so far.
func (f *fixture) waitActions(what string, ok func([]string) bool) []string {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := f.actions()
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: actions %q", what, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// TestBanListAcrossRooms: a ban in the lobby is applied in the other
// watched room, an occupant on the list who joins a room that missed it
// is banned, and an unban in one room lifts the ban everywhere.
func TestBanListAcrossRooms(t *testing.T) {
	f := newFixture(t, banTable)
	f.join(mallory)
	for i := range 4 {
		f.say(mallory, fmt.Sprintf("spam %d", i))
	}
	f.waitActions("ban in both rooms", func(a []string) bool { return count(a, "ban mallory@example.org") == 2 })
	var rooms []string
	for _, a := range f.h.Actions() {
		if a.Kind == plugins.ActBan {
			rooms = append(rooms, a.Room)
		}
	}
	if !slices.Contains(rooms, lobby) || !slices.Contains(rooms, mods) {
		t.Fatalf("banned in %q, want %s and %s", rooms, lobby, mods)
	}
	r, err := f.run("banlist", nil)
	if err != nil || r.Table == nil || len(r.Table.Rows) != 1 || r.Table.Rows[0][0] != "mallory@example.org" || r.Table.Rows[0][1] != "2" {
		t.Fatalf("banlist: %+v %v", r.Table, err)
	}
	// The list's ban in the other room is a case of its own, naming the
	// case that put the entry there.
	var listCase Case
	for id := int64(1); id < 10; id++ {
		if c, err := f.p.getCase(id); err == nil && c.By == "banlist" {
			listCase = c
		}
	}
	if listCase.Room != mods || !strings.Contains(listCase.Reason, "case 2 in "+lobby) {
		t.Fatalf("the list's case: %+v", listCase)
	}

	// A third room, joined later, applies the list when the bot is in.
	third := "third@conference.example.org"
	f.h.AddRoom(plugins.RoomInfo{JID: third, Nick: "crier", State: "joined", Role: "moderator", Affiliation: "admin"})
	f.waitActions("ban in the third room", func(a []string) bool { return count(a, "ban mallory@example.org") == 3 })

	// An unban in the lobby takes mallory off the list: lifted in every
	// room, and the list is empty.
	r, err = f.run("unban", map[string]string{"jid": "mallory@example.org"})
	if err != nil || !strings.Contains(r.Text, "off the ban list") {
		t.Fatalf("unban: %q %v", r.Text, err)
	}
	f.waitActions("unban everywhere", func(a []string) bool { return count(a, "unban mallory@example.org") == 3 })
	time.Sleep(200 * time.Millisecond) // a few polls: nothing more
	if got := f.actions(); count(got, "unban mallory@example.org") != 3 || count(got, "ban mallory@example.org") != 3 {
		t.Fatalf("after the unban: %q", got)
	}
	if len(f.p.listEntries()) != 0 {
		t.Fatalf("the list still has %+v", f.p.listEntries())
	}
}

// TestBanListOff: without [moderator.banlist] a ban stays in its room.
func TestBanListOff(t *testing.T) {
	f := newFixture(t, strings.Split(banTable, "[moderator.banlist]")[0])
	f.join(mallory)
	for i := range 4 {
		f.say(mallory, fmt.Sprintf("spam %d", i))
	}
	f.waitActions("ban", func(a []string) bool { return count(a, "ban mallory@example.org") == 1 })
	time.Sleep(100 * time.Millisecond)
	if got := f.actions(); count(got, "ban mallory@example.org") != 1 {
		t.Fatalf("banned beyond the lobby: %q", got)
	}
}

// TestBanListTempbans: with tempbans = true a tempban is on the list
// until it ends; every room's ban ends with it, after a restart too.
func TestBanListTempbans(t *testing.T) {
	f := newFixture(t, banTable+"tempbans = true\n")
	f.join(mallory)
	if _, err := f.run("tempban", map[string]string{"nick": "mallory", "duration": "1h"}); err != nil {
		t.Fatal(err)
	}
	f.waitActions("tempban in both rooms", func(a []string) bool { return count(a, "ban mallory@example.org") == 2 })
	f.p.flush()
	f.restart()
	f.h.Reset()
	f.clk.Advance(61 * time.Minute)
	f.h.Store.Expire(f.clk.Now())
	f.waitActions("both bans lifted", func(a []string) bool { return count(a, "unban mallory@example.org") == 2 })
	time.Sleep(200 * time.Millisecond)
	if got := f.actions(); len(got) != 2 {
		t.Fatalf("after the end: %q", got)
	}
}

// TestBanListAcrossInstances: two moderators, each on its own bot and
// rooms, share the list in one KV bucket on an embedded NATS server: a ban
// one makes, the other applies; an unban, the other lifts.
func TestBanListAcrossInstances(t *testing.T) {
	srv := natstest.Start(t)
	table := banTable + "bucket = \"crier-bans\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"\n"
	shared := func(t *testing.T) func(string) (state.Namespace, error) {
		_, js := natstest.Connect(t, srv.URL())
		st, err := state.OpenKV(js, "crier-bans", state.KVOptions{SweepInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return func(bucket string) (state.Namespace, error) {
			if bucket != "crier-bans" {
				t.Errorf("bucket %q", bucket)
			}
			return st.Namespace(Name, Schema)
		}
	}
	a := newFixtureWith(t, table, botJID, func(h *pluginstest.Host) { h.Shared = shared(t) })
	b := newFixtureWith(t, table, "other@example.net", func(h *pluginstest.Host) { h.Shared = shared(t) })
	a.join(mallory)
	if _, err := a.run("ban", map[string]string{"who": "mallory", "reason": "raid leader"}); err != nil {
		t.Fatal(err)
	}
	b.waitActions("the other instance bans", func(x []string) bool { return count(x, "ban mallory@example.org") == 2 })
	var c Case
	for id := int64(1); id < 5; id++ {
		if x, err := b.p.getCase(id); err == nil && x.By == "banlist" {
			c = x
		}
	}
	if !strings.Contains(c.Reason, "case 1 of "+botJID+" in "+lobby) || !strings.Contains(c.Reason, "raid leader") {
		t.Fatalf("the other instance's case: %+v", c)
	}
	if _, err := a.run("unban", map[string]string{"jid": "mallory@example.org"}); err != nil {
		t.Fatal(err)
	}
	b.waitActions("the other instance lifts", func(x []string) bool { return count(x, "unban mallory@example.org") == 2 })
	a.waitActions("the first instance lifts its other room", func(x []string) bool { return count(x, "unban mallory@example.org") == 2 })
}

// newFixtureWith is newFixture with the bot's JID and the host set up by
// prep before the start.
func newFixtureWith(t *testing.T, table, bot string, prep func(*pluginstest.Host)) *fixture {
	t.Helper()
	f := &fixture{t: t, cfg: loadConfig(t, table), h: pluginstest.New(), clk: &clock{t: time.Now()}}
	f.h.AddRoom(plugins.RoomInfo{JID: lobby, Nick: "crier", State: "joined", Role: "moderator", Affiliation: "owner", Configured: true})
	f.h.AddRoom(plugins.RoomInfo{JID: mods, Nick: "crier", State: "joined", Role: "moderator", Affiliation: "owner", Configured: true})
	prep(f.h)
	p, err := New(f.cfg, plugins.Core{BotJID: bot})
	if err != nil {
		t.Fatal(err)
	}
	p.now = f.clk.Now
	p.roomsEvery = time.Hour
	f.reg = prometheus.NewRegistry()
	if err := p.Start(context.Background(), plugins.Env{Logger: slog.New(slog.DiscardHandler), Registerer: f.reg, Host: f.h}); err != nil {
		t.Fatal(err)
	}
	f.p = p
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return f
}

// TestBanListBucketNeedsNATS: a bucket without NATS is a config error at
// its line, and a start without a shared store fails with the reason.
func TestBanListBucketNeedsNATS(t *testing.T) {
	t.Setenv(config.PasswordEnv, "")
	_, err := config.LoadBytes("test.toml", []byte(minimal+banTable+"bucket = \"crier-bans\"\n"))
	if err == nil || !strings.Contains(err.Error(), "moderator.banlist.bucket: a shared ban list needs NATS") {
		t.Fatalf("config: %v", err)
	}
	cfg := loadConfig(t, banTable+"bucket = \"crier-bans\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"\n")
	p, err := New(cfg, plugins.Core{BotJID: botJID})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Start(context.Background(), plugins.Env{Host: pluginstest.New(), Registerer: prometheus.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), "banlist.bucket crier-bans") || !errors.Is(err, plugins.ErrUnsupported) {
		t.Fatalf("start: %v", err)
	}
}

// TestGoOn: a punished message stops at the moderator, unless every
// finding counted is of a rule in go_on.
func TestGoOn(t *testing.T) {
	const table = `[moderator]
words = ["free coins"]
retract = []
go_on = ["caps"]
[moderator.caps]
min_letters = 8
`
	f := newFixture(t, table)
	f.join(mallory)
	if v := f.say(mallory, "WHAT A GREAT MATCH THAT WAS"); v != plugins.Continue {
		t.Errorf("shouting (go_on): verdict %v, want Continue", v)
	}
	if !strings.Contains(f.h.Sent()[0].Body, "mallory: warning for shouting") {
		t.Errorf("not warned: %+v", f.h.Sent())
	}
	f.clk.Advance(time.Hour)
	if v := f.say(mallory, "free coins here"); v != plugins.Stop {
		t.Errorf("a blocked word: verdict %v, want Stop", v)
	}
	f.clk.Advance(time.Hour)
	if v := f.say(mallory, "FREE COINS FOR EVERYONE HERE"); v != plugins.Stop {
		t.Errorf("shouting and a blocked word: verdict %v, want Stop", v)
	}
	// Without go_on, shouting stops too.
	g := newFixture(t, strings.Replace(table, `go_on = ["caps"]`, "", 1))
	g.join(mallory)
	if v := g.say(mallory, "WHAT A GREAT MATCH THAT WAS"); v != plugins.Stop {
		t.Errorf("shouting without go_on: verdict %v, want Stop", v)
	}
	// A rule of a detector (regex/NAME) may go on alone.
	h := newFixture(t, "[moderator]\nretract = []\ngo_on = [\"regex/mild\"]\n[[moderator.patterns]]\nname = \"mild\"\nexpr = 'darn'\npoints = 1\n[[moderator.patterns]]\nname = \"harsh\"\nexpr = 'scam'\npoints = 1\n")
	h.join(mallory)
	if v := h.say(mallory, "darn it"); v != plugins.Continue {
		t.Errorf("regex/mild: verdict %v, want Continue", v)
	}
	h.clk.Advance(time.Hour)
	if v := h.say(mallory, "a scam"); v != plugins.Stop {
		t.Errorf("regex/harsh: verdict %v, want Stop", v)
	}
}

// TestSlowMode: one message per occupant per interval; a message sooner
// is retracted and warned and does not restart the interval; the
// slowmode command changes the room's interval, kept across a restart.
func TestSlowMode(t *testing.T) {
	f := newFixture(t, "[moderator]\n[moderator.slowmode]\ninterval = \"10s\"\n[moderator.flood]\nenabled = false\n[moderator.repeat]\nenabled = false\n")
	f.join(mallory)
	f.join(bob)
	if v := f.say(mallory, "first"); v != plugins.Continue {
		t.Fatalf("first message: %v", v)
	}
	f.clk.Advance(3 * time.Second)
	if v := f.say(bob, "hello"); v != plugins.Continue {
		t.Fatalf("another occupant: %v", v)
	}
	if v := f.say(mallory, "second"); v != plugins.Stop {
		t.Fatalf("3s later: %v, want Stop", v)
	}
	if got := f.actions(); len(got) != 1 || !strings.HasPrefix(got[0], "retract ") {
		t.Fatalf("actions %q, want a retraction", got)
	}
	if s := f.h.Sent(); len(s) != 1 || !strings.Contains(s[0].Body, "mallory: warning for writing faster than the room's slow mode allows") {
		t.Fatalf("sent %+v", s)
	}
	f.clk.Advance(8 * time.Second) // 11s after the first: passes
	if v := f.say(mallory, "third"); v != plugins.Continue {
		t.Fatalf("11s after the first: %v", v)
	}
	r, err := f.run("slowmode", map[string]string{"interval": "off"})
	if err != nil || !strings.Contains(r.Text, "slow mode off") {
		t.Fatalf("slowmode off: %q %v", r.Text, err)
	}
	f.clk.Advance(time.Second)
	if v := f.say(mallory, "fourth"); v != plugins.Continue {
		t.Fatalf("slow mode off: %v", v)
	}
	if _, err := f.run("slowmode", map[string]string{"interval": "1m"}); err != nil {
		t.Fatal(err)
	}
	f.p.flush()
	f.restart()
	if r, _ := f.run("slowmode", nil); !strings.Contains(r.Text, "one message per 1m") {
		t.Fatalf("after a restart: %q", r.Text)
	}
	f.say(mallory, "fifth")
	f.clk.Advance(30 * time.Second)
	if v := f.say(mallory, "sixth"); v != plugins.Stop {
		t.Fatalf("30s into a 1m slow mode: %v", v)
	}
	if _, err := f.run("slowmode", map[string]string{"interval": "soon"}); err == nil {
		t.Errorf("slowmode soon: no error")
	}
	if r, _ := f.run("slowmode", map[string]string{"interval": "default"}); !strings.Contains(r.Text, "one message per 10s") {
		t.Errorf("slowmode default: %q", r.Text)
	}
}

// TestCaseRetention: a case is kept for case_retention, its updates keep
// the end, and a restart gives cases kept before the end they now have.
func TestCaseRetention(t *testing.T) {
	f := newFixture(t, "[moderator]\ncase_retention = \"1h\"\n")
	f.join(mallory)
	if _, err := f.run("tempban", map[string]string{"nick": "mallory", "duration": "5m"}); err != nil {
		t.Fatal(err)
	}
	f.waitCase(1, "done") // updated after the answer: the end stays
	expiry := func(id int64) (time.Time, bool) {
		var at time.Time
		var ok bool
		_ = f.h.Store.View(func(tx state.Tx) error { at, ok = tx.Expiry(caseKey(id)); return nil })
		return at, ok
	}
	if at, ok := expiry(1); !ok || !at.Equal(f.clk.Now().Add(time.Hour)) {
		t.Fatalf("case 1 ends %v %v, want %v", at, ok, f.clk.Now().Add(time.Hour))
	}
	f.clk.Advance(30 * time.Minute)
	f.h.Store.Expire(f.clk.Now())
	if _, err := f.p.getCase(1); err != nil {
		t.Fatalf("case 1 gone before its end: %v", err)
	}
	f.clk.Advance(31 * time.Minute)
	f.h.Store.Expire(f.clk.Now())
	if _, err := f.p.getCase(1); err == nil {
		t.Fatal("case 1 kept past case_retention")
	}
	f.waitCounter("crier_moderator_cases_pruned_total", nil, 1)

	// Kept for good (0), then a retention set: the restart gives the old
	// case its end.
	g := newFixture(t, "[moderator]\ncase_retention = 0\n")
	g.join(mallory)
	if _, err := g.run("pardon", map[string]string{"who": "mallory"}); err != nil {
		t.Fatal(err)
	}
	g.p.flush()
	var has bool
	_ = g.h.Store.View(func(tx state.Tx) error { _, has = tx.Expiry(caseKey(1)); return nil })
	if has {
		t.Fatal("case_retention = 0: the case has an end")
	}
	g.cfg.CaseRetention = 24 * 60 * 60 * 1e9
	g.restart()
	var at time.Time
	_ = g.h.Store.View(func(tx state.Tx) error { at, has = tx.Expiry(caseKey(1)); return nil })
	if !has || !at.Equal(g.clk.Now().Add(24*time.Hour)) {
		t.Fatalf("after the restart the case ends %v %v", at, has)
	}
}

// TestListConfigErrors: the new keys are checked at their lines.
func TestListConfigErrors(t *testing.T) {
	table := `[moderator]
case_retention = "-1h"
go_on = ["sparkle", "caps/x"]
[moderator.slowmode]
interval = "-5s"
points = 0
[moderator.banlist]
bucket = "no spaces allowed"
poll = 0
[[moderator.room]]
jid = "lobby@conference.example.org"
go_on = [""]
banlist = true
`
	t.Setenv(config.PasswordEnv, "")
	_, err := config.LoadBytes("test.toml", []byte(minimal+table))
	if err == nil {
		t.Fatal("loaded")
	}
	msg := err.Error()
	for _, want := range []string{
		"test.toml:6: moderator.case_retention: must not be negative",
		"test.toml:7: moderator.go_on: \"sparkle\" is not a detector",
		"test.toml:9: moderator.slowmode.interval: must not be negative",
		"test.toml:10: moderator.slowmode.points: must be at least 1",
		"test.toml:12: moderator.banlist.bucket: \"no spaces allowed\" is not a KV bucket name",
		"test.toml:13: moderator.banlist.poll: must be positive",
		"moderator.banlist.enabled: bucket and tempbans need enabled = true",
		"test.toml:16: moderator.room.go_on: an empty rule name",
		"test.toml:17:", "banlist",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("no %q in\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "caps/x") {
		t.Errorf("caps/x is a detector/rule name:\n%s", msg)
	}
}

// TestBanAgain: a JID the moderator banned who is seen joining (a server
// that let an outcast back in, as ejabberd 23.01 does after a role
// change) is banned again at once, also after a restart; not once the
// ban ended or was lifted.
func TestBanAgain(t *testing.T) {
	f := newFixture(t, "[moderator]\n")
	f.join(mallory)
	if _, err := f.run("tempban", map[string]string{"nick": "mallory", "duration": "1h"}); err != nil {
		t.Fatal(err)
	}
	f.join(bob)
	f.h.Reset()
	f.join(mallory)
	if got := f.actions(); !slices.Equal(got, []string{"kick mallory", "ban mallory@example.org"}) {
		t.Fatalf("a tempbanned JID joins: %q", got)
	}
	f.waitCounter("crier_moderator_actions_total", map[string]string{"action": "ban_again", "result": "done"}, 2)
	f.p.flush()
	f.restart()
	f.h.Reset()
	f.join(mallory)
	if got := f.actions(); !slices.Equal(got, []string{"kick mallory", "ban mallory@example.org"}) {
		t.Fatalf("after a restart: %q", got)
	}
	f.clk.Advance(61 * time.Minute)
	f.h.Store.Expire(f.clk.Now())
	f.h.Reset()
	f.join(mallory)
	if got := f.actions(); len(got) != 0 {
		t.Fatalf("after the tempban ended: %q", got)
	}
	// A ban for good, kept across a restart, until an unban.
	if _, err := f.run("ban", map[string]string{"who": "mallory"}); err != nil {
		t.Fatal(err)
	}
	f.p.flush()
	f.restart()
	f.h.Reset()
	f.join(mallory)
	if got := f.actions(); !slices.Equal(got, []string{"kick mallory", "ban mallory@example.org"}) {
		t.Fatalf("a banned JID joins after a restart: %q", got)
	}
	if _, err := f.run("unban", map[string]string{"jid": "mallory@example.org"}); err != nil {
		t.Fatal(err)
	}
	f.h.Reset()
	f.join(mallory)
	if got := f.actions(); len(got) != 0 {
		t.Fatalf("after the unban: %q", got)
	}

	// Someone banned who is in a room when the bot joins it is removed.
	if _, err := f.run("ban", map[string]string{"who": "mallory"}); err != nil {
		t.Fatal(err)
	}
	f.h.Reset()
	known := map[string]bool{lobby: true, mods: true}
	f.p.enteredRooms(known)
	if got := f.actions(); len(got) != 0 {
		t.Fatalf("no room joined: %q", got)
	}
	delete(known, lobby) // the bot left the lobby and joins it again
	f.p.enteredRooms(known)
	if got := f.actions(); !slices.Equal(got, []string{"kick mallory", "ban mallory@example.org"}) {
		t.Fatalf("the bot joins a room where a banned JID is: %q", got)
	}
	if !known[lobby] {
		t.Errorf("the lobby is not known as joined")
	}
	if _, err := f.run("unban", map[string]string{"jid": "mallory@example.org"}); err != nil {
		t.Fatal(err)
	}
	f.h.Reset()
	f.join(bob)
	if got := f.actions(); len(got) != 0 {
		t.Fatalf("bob joins: %q", got)
	}
}

// TestJoinWaveSlowMode: a join wave with action slowmode puts the room in
// slow mode (raid_interval) for its duration, across a restart, with no
// room configuration change; then the room is back to none.
func TestJoinWaveSlowMode(t *testing.T) {
	f := newFixture(t, "[moderator]\n[moderator.joinwave]\njoins = 3\naction = \"slowmode\"\nduration = \"10m\"\n[moderator.slowmode]\nraid_interval = \"20s\"\n[moderator.flood]\nenabled = false\n")
	talk := func(at string) plugins.Verdict {
		f.clk.Advance(5 * time.Second)
		return f.say(mallory, "hello from "+at)
	}
	f.join(mallory)
	if v1, v2 := talk("a"), talk("b"); v1 != plugins.Continue || v2 != plugins.Continue {
		t.Fatalf("before the wave: %v %v", v1, v2)
	}
	for i := range 4 {
		f.join(occupant{nick: fmt.Sprintf("raider%d", i), oid: fmt.Sprintf("r%d", i)})
	}
	f.p.flush()
	f.restart()
	if v1, v2 := talk("c"), talk("d"); v1 != plugins.Continue || v2 != plugins.Stop {
		t.Fatalf("during the wave's slow mode: %v %v", v1, v2)
	}
	for _, a := range f.actions() {
		if strings.HasPrefix(a, "configure") {
			t.Errorf("the room's configuration was changed: %q", a)
		}
	}
	f.clk.Advance(11 * time.Minute)
	f.h.Store.Expire(f.clk.Now())
	if v1, v2 := talk("e"), talk("f"); v1 != plugins.Continue || v2 != plugins.Continue {
		t.Fatalf("after the wave: %v %v", v1, v2)
	}
	if r, _ := f.run("slowmode", nil); !strings.Contains(r.Text, "off") {
		t.Errorf("slowmode: %q", r.Text)
	}
}

// TestExplainSlowMode: the offline explain names the room's slow mode.
func TestExplainSlowMode(t *testing.T) {
	cfg := loadConfig(t, "[moderator]\n[moderator.slowmode]\ninterval = \"30s\"\npoints = 2\n")
	out, err := Explain(cfg, lobby, "bob", "hello")
	if err != nil || !strings.Contains(out, "slowmode:  one message per 30s (+2 for one sooner") {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	cfg = loadConfig(t, "[moderator]\n")
	if out, _ := Explain(cfg, lobby, "bob", "hello"); strings.Contains(out, "slowmode:") {
		t.Errorf("slow mode off, yet explained:\n%s", out)
	}
	// go_on is explained too.
	cfg = loadConfig(t, "[moderator]\ngo_on = [\"caps\"]\n[moderator.caps]\nmin_letters = 8\n")
	if out, _ := Explain(cfg, lobby, "bob", "WHAT A GREAT MATCH"); !strings.Contains(out, "goes on to commands and rules (go_on)") {
		t.Errorf("go_on not explained:\n%s", out)
	}
	if out, _ := Explain(cfg, lobby, "bob", "what a great match"); strings.Contains(out, "go_on") {
		t.Errorf("go_on explained for a clean line:\n%s", out)
	}
}

// TestBanListRestartLifts: an instance that was down while another took
// a JID off the shared list lifts its own bans of it when it starts.
func TestBanListRestartLifts(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	st, err := state.OpenKV(js, "crier-bans", state.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	shared := func(string) (state.Namespace, error) { return st.Namespace(Name, Schema) }
	table := banTable + "bucket = \"crier-bans\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"\n"
	a := newFixtureWith(t, table, botJID, func(h *pluginstest.Host) { h.Shared = shared })
	b := newFixtureWith(t, table, "other@example.net", func(h *pluginstest.Host) { h.Shared = shared })
	a.join(mallory)
	if _, err := a.run("ban", map[string]string{"who": "mallory"}); err != nil {
		t.Fatal(err)
	}
	b.waitActions("b applies the list", func(x []string) bool { return count(x, "ban mallory@example.org") == 2 })
	b.p.flush()
	if err := b.p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.run("unban", map[string]string{"jid": "mallory@example.org"}); err != nil {
		t.Fatal(err)
	}
	b.h.Reset()
	b.start()
	b.waitActions("b lifts its bans after its restart", func(x []string) bool { return count(x, "unban mallory@example.org") == 2 })
}

// TestBanListStandby: an instance that does not speak ([ha] standby)
// applies nothing of the list; once it leads, it does.
func TestBanListStandby(t *testing.T) {
	f := newFixture(t, banTable)
	f.join(mallory)
	f.h.Standby.Store(true)
	if _, err := f.run("ban", map[string]string{"who": "mallory"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // polls
	if got := f.actions(); count(got, "ban mallory@example.org") != 1 {
		t.Fatalf("a standby applied the list: %q", got)
	}
	f.h.Standby.Store(false)
	f.waitActions("the leader applies the list", func(a []string) bool { return count(a, "ban mallory@example.org") == 2 })
}

// TestReloadState: an instance sharing the namespace (an [ha] standby)
// knows the bans, strikes and case numbers another made once it reads
// them again, as it does when it comes to lead.
func TestReloadState(t *testing.T) {
	f := newFixture(t, "[moderator]\n")
	standby := f.p
	f.start() // the leader, on the same namespace
	f.join(mallory)
	if _, err := f.run("ban", map[string]string{"who": "mallory"}); err != nil {
		t.Fatal(err)
	}
	f.p.flush()
	ev := &plugins.Event{Kind: plugins.EventJoin, Type: "groupchat", Room: lobby, Nick: "mallory", RealJID: "mallory@example.org", BotNick: "crier"}
	f.h.Reset()
	standby.Handle(context.Background(), ev)
	if got := f.actions(); len(got) != 0 {
		t.Fatalf("before reading again: %q", got)
	}
	standby.reloadState()
	standby.Handle(context.Background(), ev)
	if got := f.actions(); !slices.Equal(got, []string{"kick mallory", "ban mallory@example.org"}) {
		t.Fatalf("after reading again: %q", got)
	}
	// The next case number follows the leader's, so that no case is
	// written over.
	f.p.mu.Lock()
	last := f.p.seq
	f.p.mu.Unlock()
	if id := standby.nextID(); id != last+1 || last == 0 {
		t.Errorf("the standby's next case is %d, the leader's last %d", id, last)
	}
}

// TestCaseRetentionMany: giving an end to more cases than one commit of a
// KV store may hold works (they are committed in parts).
func TestCaseRetentionMany(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	st, err := state.OpenKV(js, "crier-cases", state.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ns, err := st.Namespace(Name, Schema)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for part := range 3 {
		if err := ns.Update(func(tx state.Tx) error {
			for i := range 500 {
				id := int64(part*500 + i + 1)
				b := fmt.Appendf(nil, `{"id":%d,"time":%q,"room":%q,"target":"jid:x@example.org","action":"warn","by":"auto","result":"done"}`, id, now.Format(time.RFC3339Nano), lobby)
				if err := tx.Put(caseKey(id), b); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := loadConfig(t, "[moderator]\ncase_retention = \"1h\"\n")
	p, err := New(cfg, plugins.Core{BotJID: botJID})
	if err != nil {
		t.Fatal(err)
	}
	p.ns, p.now = ns, time.Now
	if err := p.retainCases(); err != nil {
		t.Fatalf("retain 1500 cases: %v", err)
	}
	n := 0
	_ = ns.View(func(tx state.Tx) error {
		return tx.ForEach("case|", func(k string, _ []byte) error {
			if at, ok := tx.Expiry(k); ok && at.Sub(now) > 59*time.Minute {
				n++
			}
			return nil
		})
	})
	if n != 1500 {
		t.Fatalf("%d of 1500 cases have their end", n)
	}
}
