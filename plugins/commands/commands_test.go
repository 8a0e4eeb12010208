package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"crier/plugins"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/forms")

// typedCmd has one argument of every kind.
var typedCmd = plugins.Command{
	Name: "typed", Summary: "test every argument kind",
	Args: []plugins.Arg{
		{Name: "n", Kind: plugins.ArgInt, Required: true},
		{Name: "d", Kind: plugins.ArgDuration},
		{Name: "b", Kind: plugins.ArgBool},
		{Name: "l", Kind: plugins.ArgList, Options: []string{"red", "green"}},
		{Name: "j", Kind: plugins.ArgJID},
		{Name: "rest", Rest: true},
	},
	Run: func(_ context.Context, c *plugins.Call) (plugins.Reply, error) {
		return plugins.Reply{Text: fmt.Sprintf("n=%s b=%v", c.Arg("n"), c.Bool("b"))}, nil
	},
}

// TestRegistered checks the Spec: table, schema, defaults, enabled.
func TestRegistered(t *testing.T) {
	s, ok := plugins.Lookup("commands")
	if !ok || s.Table != "commands" || s.Schema != 1 {
		t.Fatalf("Lookup(commands) = %+v, %v", s, ok)
	}
	cfg := s.Config().(*Config)
	if cfg.Prefix != "!" || !cfg.UnknownReply || !cfg.Enabled || cfg.Rate.String() != "10/1m0s" ||
		!cfg.AdminsExemptFromRate || time.Duration(cfg.ConfirmTimeout) != 30*time.Second ||
		time.Duration(cfg.SessionTimeout) != 5*time.Minute || cfg.MaxArgBytes != 1024 {
		t.Fatalf("defaults: %+v", cfg)
	}
	p, on, err := s.New(cfg, plugins.Core{})
	if err != nil || !on || p.Name() != "commands" {
		t.Fatalf("New(defaults) = %v, %v, %v", p, on, err)
	}
	cfg.Enabled = false
	if _, on, _ := s.New(cfg, plugins.Core{}); on {
		t.Fatal("enabled = false still enables the plugin")
	}
	if SampleConfig() == "" || !strings.Contains(SampleConfig(), "[commands]") {
		t.Fatal("sample.conf is not embedded")
	}
}

// checker collects Errorf calls.
type checker struct{ errs []string }

func (c *checker) Errorf(key, format string, args ...any) {
	c.errs = append(c.errs, key+": "+fmt.Sprintf(format, args...))
}
func (c *checker) Written(string) bool               { return true }
func (c *checker) Resolve(n string) string           { return n }
func (c *checker) ReadSecret(string) (string, error) { return "", nil }
func (c *checker) CheckCAFile(string, string)        {}
func (c *checker) Getenv(string) string              { return "" }
func (c *checker) Core() plugins.Core                { return plugins.Core{} }

// TestConfigCheck checks each invalid key is reported under its name.
func TestConfigCheck(t *testing.T) {
	cases := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.Prefix = "" }, "prefix: prefix is empty"},
		{func(c *Config) { c.Prefix = "! " }, `prefix: prefix "! " contains blanks`},
		{func(c *Config) { c.Prefix = "very-long-prefix" }, "longer than 8 bytes"},
		{func(c *Config) { c.Admins = []string{"a@example.org", "b@@x"} }, `admins: admins[1] "b@@x" is not a JID`},
		{func(c *Config) { c.Admins = []string{"a@example.org/phone"} }, "must be a bare JID (a@example.org)"},
		{func(c *Config) { c.Admins = []string{"a@example.org", "a@example.org"} }, "listed twice"},
		{func(c *Config) { c.ConfirmTimeout = 0 }, "confirm_timeout: confirm_timeout must be positive"},
		{func(c *Config) { c.SessionTimeout = -1 }, "session_timeout: "},
		{func(c *Config) { c.MaxArgBytes = 0 }, "max_arg_bytes: max_arg_bytes must be between 1 and 65536"},
	}
	for _, tc := range cases {
		c := defaultConfig()
		tc.mod(c)
		ck := &checker{}
		c.Check(ck)
		got := strings.Join(ck.errs, "\n")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Check: got %q, want %q", got, tc.want)
		}
	}
}

// TestRateAndDurationText checks the config's text types.
func TestRateAndDurationText(t *testing.T) {
	for in, want := range map[string]string{"10/1m": "10/1m0s", " 3 / 10s ": "3/10s", "0": "0"} {
		var r Rate
		if err := r.UnmarshalText([]byte(in)); err != nil || r.String() != want {
			t.Errorf("Rate(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for in, want := range map[string]string{"10": "want N/window", "x/1m": "not a count", "0/1m": "not a count",
		"5/soon": "not a positive duration", "5/-1m": "not a positive duration"} {
		var r Rate
		if err := r.UnmarshalText([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Rate(%q) error %v, want %q", in, err, want)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("45s")); err != nil || time.Duration(d) != 45*time.Second {
		t.Errorf("Duration(45s) = %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("later")); err == nil || !strings.Contains(err.Error(), "not a duration") {
		t.Errorf("Duration(later) error %v", err)
	}
}

// TestParseGolden runs the chat parser over testdata/parse/*.txt.
func TestParseGolden(t *testing.T) {
	p := New(*defaultConfig(), plugins.Core{})
	cmds := append(slices.Clone(p.builtins), typedCmd)
	files, _ := filepath.Glob("testdata/parse/*.txt")
	if len(files) == 0 {
		t.Fatal("no testdata/parse/*.txt")
	}
	n := 0
	for _, file := range files {
		fh, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		var cmd *plugins.Command
		var input *string
		line := 0
		for sc.Scan() {
			line++
			l := sc.Text()
			switch {
			case l == "" || strings.HasPrefix(l, "#"):
			case strings.HasPrefix(l, "cmd "):
				cmd = nil
				for i := range cmds {
					if cmds[i].Name == strings.TrimPrefix(l, "cmd ") {
						cmd = &cmds[i]
					}
				}
				if cmd == nil {
					t.Fatalf("%s:%d: unknown command", file, line)
				}
			case strings.HasPrefix(l, ">"):
				in := strings.TrimPrefix(strings.TrimPrefix(l, ">"), " ")
				input = &in
			default:
				if cmd == nil || input == nil {
					t.Fatalf("%s:%d: expectation without cmd or input", file, line)
				}
				n++
				vals, err := parseLine(cmd, *input, 1024)
				got := ""
				if err != nil {
					got = "error: " + err.Error()
				} else {
					var kv []string
					for _, k := range slices.Sorted(maps.Keys(vals)) {
						kv = append(kv, k+"="+vals[k])
					}
					got = strings.Join(kv, " | ")
					if got == "" {
						got = "(none)"
					}
				}
				if strings.HasPrefix(l, "error: ") {
					if !strings.HasPrefix(got, "error: ") || !strings.Contains(got, strings.TrimPrefix(l, "error: ")) {
						t.Errorf("%s:%d: %s %q:\n got %s\nwant %s", file, line, cmd.Name, *input, got, l)
					}
				} else if got != l {
					t.Errorf("%s:%d: %s %q:\n got %s\nwant %s", file, line, cmd.Name, *input, got, l)
				}
				input = nil
			}
		}
		fh.Close()
	}
	if n < 30 {
		t.Fatalf("only %d parse cases ran", n)
	}
}

// TestUsage checks the synopsis shown in help and errors.
func TestUsage(t *testing.T) {
	p := New(*defaultConfig(), plugins.Core{})
	want := map[string]string{
		"join":    "!join ROOM [NICK]",
		"leave":   "!leave ROOM",
		"say":     "!say [type=auto|chat|headline|normal|groupchat] TO BODY...",
		"acl":     "!acl [list|grant|revoke] [JID] [member|moderator|admin|owner]",
		"version": "!version",
	}
	for name, w := range want {
		if got := usage("!", p.builtin(name)); got != w {
			t.Errorf("usage(%s) = %q, want %q", name, got, w)
		}
	}
	if got := usage("!", &typedCmd); got != "!typed N [D] [B] [red|green] [J] [REST...]" {
		t.Errorf("usage(typed) = %q", got)
	}
}

// TestFormsGolden compares the generated data forms with
// testdata/forms/*.xml (go test -update rewrites them).
func TestFormsGolden(t *testing.T) {
	p := New(*defaultConfig(), plugins.Core{})
	type golden struct {
		name string
		v    any
	}
	var cases []golden
	for _, c := range append(slices.Clone(p.builtins), typedCmd) {
		if len(c.Args) == 0 && !c.Destructive {
			continue // runs at once: no form
		}
		st := stages(&c)
		for i := range st {
			confirm := c.Destructive && i == len(st)-1
			cases = append(cases, golden{fmt.Sprintf("%s-%d", c.Name, i+1), xCommand{
				Node: c.Name, SessionID: "s1", Status: "executing",
				Actions: stageActions(i, len(st)), Form: stageForm(&c, st[i], map[string]string{}, confirm),
			}})
		}
	}
	cases = append(cases, golden{"rooms-result", xCommand{Node: "rooms", SessionID: "s1", Status: "completed",
		Notes: []xNote{{Type: "info", Text: "2 rooms"}},
		Form: tableForm("rooms", &plugins.Table{Columns: []string{"Room", "In chain", "In chain"},
			Rows: [][]string{{lobby, "yes", "x"}, {ops, "no"}}})}})
	for _, g := range cases {
		out, err := xml.MarshalIndent(g.v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, '\n')
		file := filepath.Join("testdata", "forms", g.name+".xml")
		if *update {
			if err := os.WriteFile(file, out, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%v (go test -update writes it)", err)
			continue
		}
		if string(want) != string(out) {
			t.Errorf("%s differs:\n got:\n%s\nwant:\n%s", file, out, want)
		}
		// The golden forms are valid XEP-0050 payloads that decode back.
		var back xCommand
		if err := xml.Unmarshal(out, &back); err != nil || back.Node != g.v.(xCommand).Node {
			t.Errorf("%s does not decode: %v", file, err)
		}
	}
}

// TestExamples runs every built-in command's Example through the chat
// parser as an admin and checks the reply contains Want.
func TestExamples(t *testing.T) {
	f := newFixture(t, nil)
	f.h.PublishErr = nil
	for _, c := range f.p.builtins {
		if c.Line == "" || c.Want == "" {
			t.Errorf("%s has no example", c.Name)
			continue
		}
		replies := f.chat(dm(admin, "!"+c.Line))
		if len(replies) == 0 || !strings.Contains(strings.Join(replies, "\n"), c.Want) {
			t.Errorf("!%s: replies %q do not contain %q", c.Line, replies, c.Want)
		}
	}
}

// TestHandleVerdicts: a known command stops the chain, anything else
// continues.
func TestHandleVerdicts(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		ev   plugins.Event
		want plugins.Verdict
	}{
		{dm(stranger, "!version"), plugins.Stop},
		{dm(stranger, "!join x@y"), plugins.Stop}, // refused, but a command
		{dm(stranger, "!confirm"), plugins.Stop},
		{dm(stranger, "hello"), plugins.Continue},
		{dm(stranger, "!nosuch"), plugins.Continue}, // rules may still match it
		{dm(stranger, "!"), plugins.Continue},
		{dm(stranger, "! version"), plugins.Continue},
		{inRoom(occupant{nick: "crier"}, "!version"), plugins.Continue}, // the bot's own echo
		{plugins.Event{Kind: plugins.EventMessage, Type: "headline", From: "news.example.org", Body: "!version"}, plugins.Continue},
		{plugins.Event{Kind: plugins.EventJoin, Room: lobby, Nick: "x", Body: "!version"}, plugins.Continue},
	}
	for _, tc := range cases {
		ev := tc.ev
		if got := f.p.Handle(context.Background(), &ev); got != tc.want {
			t.Errorf("%s %q: verdict %v, want %v", ev.Type, ev.Body, got, tc.want)
		}
	}
	f.p.wg.Wait()
}

// TestReplies checks where replies go and what the built-ins say.
func TestReplies(t *testing.T) {
	f := newFixture(t, nil)
	f.chat(inRoom(occupant{nick: "bob"}, "!version"))
	m := f.h.Sent()
	if len(m) != 1 || m[0].To != lobby || m[0].Type != "groupchat" || m[0].Body != "bob: crier 1.2.3" || !m[0].Interactive {
		t.Fatalf("room reply %+v", m)
	}
	f.chat(dm(stranger, "!version"))
	m = f.h.Sent()
	if len(m) != 1 || m[0].To != stranger+"/phone" || m[0].Type != "chat" {
		t.Fatalf("direct reply %+v", m)
	}
	st := f.chat1(dm(stranger, "!status"))
	for _, w := range []string{"connection: connected to example.org over tcp for 1h0m0s", "stream management: on, resumable",
		"outbox: 2 queued", "rooms: 1", lobby + " joined (moderator/owner)", "nats: connected, relay lag 0",
		"ha: leading as crier@example.org/a@h:1; standing by: none"} {
		if !strings.Contains(st, w) {
			t.Errorf("status lacks %q:\n%s", w, st)
		}
	}
	if up := f.chat1(dm(stranger, "!uptime")); up != "up 2h0m0s (since 2026-05-01T10:00:00Z), connected for 1h0m0s" {
		t.Errorf("uptime: %q", up)
	}
	rooms := f.chat1(dm(stranger, "!rooms"))
	if !strings.Contains(rooms, "Room") || !strings.Contains(rooms, lobby+"  crier  joined  3          config") {
		t.Errorf("rooms table:\n%s", rooms)
	}
	if f.total("version", "chat", resultOK) != 2 {
		t.Errorf("crier_commands_total{version,chat,ok} = %v", f.total("version", "chat", resultOK))
	}
}

// TestRights is the table who × where × command -> allowed.
func TestRights(t *testing.T) {
	modCmd := plugins.Command{Name: "mute", Summary: "room-scoped moderator command", Level: plugins.Moderator,
		Run: func(context.Context, *plugins.Call) (plugins.Reply, error) { return plugins.Reply{Text: "muted"}, nil }}
	memberCmd := plugins.Command{Name: "vote", Summary: "members only", Level: plugins.Member,
		Run: func(context.Context, *plugins.Call) (plugins.Reply, error) { return plugins.Reply{Text: "voted"}, nil }}
	roomAdminCmd := plugins.Command{Name: "topic", Summary: "room admins", Level: plugins.Admin,
		Run: func(context.Context, *plugins.Call) (plugins.Reply, error) {
			return plugins.Reply{Text: "topic set"}, nil
		}}
	f := newFixture(t, nil, modCmd, memberCmd, roomAdminCmd)
	if err := f.p.acl.set(f.p.ns, "granted-mod@example.org", plugins.Moderator); err != nil {
		t.Fatal(err)
	}
	if err := f.p.acl.set(f.p.ns, "granted-admin@example.org", plugins.Admin); err != nil {
		t.Fatal(err)
	}
	type where struct {
		name string
		ev   func(cmd string) plugins.Event
	}
	direct := func(j string) where {
		return where{"dm " + j, func(c string) plugins.Event { return dm(j, "!"+c) }}
	}
	room := func(o occupant) where {
		return where{fmt.Sprintf("%s %s/%s/%s real=%q", o.room, o.nick, o.role, o.aff, o.real), func(c string) plugins.Event { return inRoom(o, "!"+c) }}
	}
	cases := []struct {
		w     where
		allow []string
		deny  []string
	}{
		{direct(admin), []string{"help", "join", "reload", "mute", "topic", "vote"}, nil},
		{direct(stranger), []string{"help", "rooms", "version"}, []string{"join", "say", "reload", "plugins", "acl", "mute", "vote"}},
		{direct("granted-mod@example.org"), []string{"mute", "vote"}, []string{"topic", "join"}},
		{direct("granted-admin@example.org"), []string{"join", "acl", "topic"}, nil},
		// A room moderator whose real JID is hidden: moderator there only.
		{room(occupant{nick: "mod", role: "moderator", aff: "none"}), []string{"mute", "vote", "help"}, []string{"topic", "join"}},
		{room(occupant{room: ops, nick: "mod", role: "participant", aff: "none"}), []string{"help"}, []string{"mute", "vote"}},
		{room(occupant{nick: "m", role: "participant", aff: "member"}), []string{"vote"}, []string{"mute"}},
		// A room owner has room-scoped admin, never the bot-wide commands.
		{room(occupant{nick: "own", role: "moderator", aff: "owner"}), []string{"topic", "mute"}, []string{"join", "leave", "reload", "acl"}},
		// The bot admin is recognised in a room only when the room shows the real JID.
		{room(occupant{nick: "boss", role: "participant", aff: "none", real: admin}), []string{"join", "reload"}, nil},
		{room(occupant{nick: "boss", role: "participant", aff: "none"}), nil, []string{"join", "mute"}},
	}
	for _, tc := range cases {
		for _, c := range tc.allow {
			f.clk.Advance(time.Minute) // keep the rate limit out of it
			r := strings.Join(f.chat(tc.w.ev(c)), "\n")
			if strings.Contains(r, "forbidden") {
				t.Errorf("%s: !%s refused: %s", tc.w.name, c, r)
			}
		}
		for _, c := range tc.deny {
			f.clk.Advance(time.Minute)
			r := strings.Join(f.chat(tc.w.ev(c)), "\n")
			if !strings.Contains(r, "forbidden: !"+c+" needs the ") {
				t.Errorf("%s: !%s not refused: %q", tc.w.name, c, r)
			}
		}
	}
	if got := f.chat1(dm(stranger, "!join "+ops)); got != "forbidden: !join needs the admin right (bot-wide); you have anyone" {
		t.Errorf("refusal line %q", got)
	}
	if f.rejected(reasonForbidden) < 20 {
		t.Errorf("forbidden counted %v times", f.rejected(reasonForbidden))
	}
	// help lists only what the caller may run.
	h := f.chat1(dm(stranger, "!help"))
	if strings.Contains(h, "!join") || strings.Contains(h, "!mute") || !strings.Contains(h, "!rooms — list the rooms") {
		t.Errorf("stranger's help:\n%s", h)
	}
	f.clk.Advance(time.Minute)
	h = f.chat1(dm(admin, "!help"))
	for _, c := range []string{"!join ROOM [NICK]", "!mute", "!acl", "!reload"} {
		if !strings.Contains(h, c) {
			t.Errorf("admin's help lacks %s:\n%s", c, h)
		}
	}
	if e := f.chat1(dm(stranger, "!help join")); !strings.Contains(e, `no command "join" that you may run`) {
		t.Errorf("help join for a stranger: %q", e)
	}
	e := f.chat1(dm(admin, "!help say"))
	for _, w := range []string{"!say [type=", "needs: admin (bot-wide)", "TO — a user's JID or a room's; required", "example: !say type=headline"} {
		if !strings.Contains(e, w) {
			t.Errorf("help say lacks %q:\n%s", w, e)
		}
	}
}

// TestConfirmation: destructive chat commands wait for !confirm from the
// same requester in the same place within the time.
func TestConfirmation(t *testing.T) {
	f := newFixture(t, nil)
	prompt := f.chat1(dm(admin, "!leave "+lobby))
	if prompt != "this will leave "+lobby+" — reply `!confirm` within 30s" || len(f.h.Leaves()) != 0 {
		t.Fatalf("prompt %q, leaves %v", prompt, f.h.Leaves())
	}
	// Another user, or the same admin elsewhere, cannot confirm it.
	if r := f.chat1(dm(stranger, "!confirm")); !strings.Contains(r, "nothing to confirm") {
		t.Errorf("stranger's confirm: %q", r)
	}
	if r := f.chat1(inRoom(occupant{nick: "boss", real: admin}, "!confirm")); !strings.Contains(r, "nothing to confirm") {
		t.Errorf("confirm from the room: %q", r)
	}
	if r := f.chat1(dm(admin, "!confirm")); r != "left "+lobby || !slices.Equal(f.h.Leaves(), []string{lobby}) {
		t.Fatalf("confirm: %q, leaves %v", r, f.h.Leaves())
	}
	if r := f.chat1(dm(admin, "!confirm")); !strings.Contains(r, "nothing to confirm") {
		t.Errorf("second confirm: %q", r)
	}
	// Too late.
	f.h.AddRoom(plugins.RoomInfo{JID: ops, State: "joined"})
	f.chat1(dm(admin, "!leave "+ops))
	f.clk.Advance(31 * time.Second)
	if r := f.chat1(dm(admin, "!confirm")); !strings.Contains(r, "nothing to confirm") || len(f.h.Leaves()) != 1 {
		t.Errorf("late confirm: %q, leaves %v", r, f.h.Leaves())
	}
	// The preview refuses what cannot be done.
	if r := f.chat1(dm(admin, "!leave nowhere@conference.example.org")); !strings.Contains(r, "not a room the bot is in") {
		t.Errorf("leave of an unknown room: %q", r)
	}
	// reload shows the difference, then reloads on confirmation.
	r := f.chat1(dm(admin, "!reload"))
	if !strings.Contains(r, "reload would change:\nrules: + greet\n") || f.h.Reloads() != 0 {
		t.Errorf("reload prompt %q", r)
	}
	if r := f.chat1(dm(admin, "!confirm")); r != "reloaded" || f.h.Reloads() != 1 {
		t.Errorf("reload confirm %q, reloads %d", r, f.h.Reloads())
	}
	f.h.Lock()
	f.h.ReloadErr = errors.New("[xmpp] jid cannot change on reload")
	f.h.Unlock()
	if r := f.chat1(dm(admin, "!reload")); !strings.Contains(r, "reload would be refused: [xmpp] jid cannot change") {
		t.Errorf("refused reload: %q", r)
	}
	// plugins list needs no confirmation; disable does.
	if r := f.chat1(dm(admin, "!plugins")); !strings.Contains(r, "natsrelay  yes") {
		t.Errorf("plugins list: %q", r)
	}
	if r := f.chat1(dm(admin, "!plugins disable natsrelay")); !strings.Contains(r, "reply `!confirm`") {
		t.Errorf("plugins disable prompt: %q", r)
	}
	if r := f.chat1(dm(admin, "!confirm")); r != "natsrelay disabled" || !slices.Equal(f.h.Toggles(), []string{"natsrelay=false"}) {
		t.Errorf("plugins disable: %q %v", r, f.h.Toggles())
	}
	if r := f.chat1(dm(admin, "!plugins enable natsrelay")); r != "natsrelay enabled" {
		t.Errorf("plugins enable: %q", r)
	}
	if r := f.chat1(dm(admin, "!plugins disable commands")); !strings.Contains(r, "cannot disable itself") {
		t.Errorf("disable commands: %q", r)
	}
	if f.total("leave", "chat", resultPending) != 2 || f.total("leave", "chat", resultOK) != 1 {
		t.Errorf("leave metrics pending=%v ok=%v", f.total("leave", "chat", resultPending), f.total("leave", "chat", resultOK))
	}
}

// TestACL: grants are persisted, revocation asks first, levels are capped
// by the granter's own.
func TestACL(t *testing.T) {
	f := newFixture(t, nil)
	if r := f.chat1(dm(admin, "!acl grant bob@example.org admin")); r != "bob@example.org is now admin" {
		t.Fatalf("grant: %q", r)
	}
	if v, ok := f.h.Store.Get("acl/bob@example.org"); !ok || string(v) != "admin" {
		t.Fatalf("grant not stored: %q %v", v, ok)
	}
	// bob is now a bot admin: join works for him.
	if r := f.chat1(dm("bob@example.org", "!join "+ops)); !strings.HasPrefix(r, "joining "+ops) {
		t.Errorf("granted admin's join: %q", r)
	}
	// bob cannot grant owner, above his admin.
	if r := f.chat1(dm("bob@example.org", "!acl grant carol@example.org owner")); !strings.Contains(r, "cannot grant owner, above your admin") {
		t.Errorf("grant above own level: %q", r)
	}
	if r := f.chat1(dm(admin, "!acl grant admin@example.org member")); !strings.Contains(r, "admin in the config file") {
		t.Errorf("grant to a config admin: %q", r)
	}
	if r := f.chat1(dm(admin, "!acl")); !strings.Contains(r, "admin@example.org  owner  config") || !strings.Contains(r, "bob@example.org    admin  grant") {
		t.Errorf("acl list:\n%s", r)
	}
	// A new plugin on the same store loads the grant (a restart).
	p2 := New(f.p.cfg, plugins.Core{})
	if err := p2.acl.load(f.h.Store); err != nil || p2.globalLevel("bob@example.org") != plugins.Admin {
		t.Fatalf("grant not loaded: %v", err)
	}
	if r := f.chat1(dm(admin, "!acl revoke bob@example.org")); r != "this will revoke bob@example.org's admin grant — reply `!confirm` within 30s" {
		t.Fatalf("revoke prompt: %q", r)
	}
	if r := f.chat1(dm(admin, "!confirm")); r != "bob@example.org's admin grant is revoked" {
		t.Fatalf("revoke: %q", r)
	}
	if _, ok := f.h.Store.Get("acl/bob@example.org"); ok {
		t.Fatal("revoked grant still stored")
	}
	if r := f.chat1(dm(admin, "!acl revoke bob@example.org")); r != "!acl: bob@example.org has no grant" || len(f.h.Store.Keys("acl/")) != 0 {
		t.Errorf("second revoke: %q", r)
	}
}

// TestRateLimit: a flood gets one "slow down" per window, then silence;
// admins are exempt; it is counted.
func TestRateLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Rate = Rate{N: 3, Per: time.Minute} })
	var replies []string
	for range 8 {
		replies = append(replies, f.chat(dm(stranger, "!version"))...)
	}
	want := []string{"crier 1.2.3", "crier 1.2.3", "crier 1.2.3", "slow down: at most 3 commands per 1m0s"}
	if !slices.Equal(replies, want) {
		t.Fatalf("flood replies %q", replies)
	}
	if f.rejected(reasonRateLimited) != 5 {
		t.Errorf("rate_limited = %v, want 5", f.rejected(reasonRateLimited))
	}
	// Another user is not affected; admins are exempt.
	if r := f.chat1(dm("bob@example.org", "!version")); r != "crier 1.2.3" {
		t.Errorf("bob: %q", r)
	}
	for range 10 {
		if r := f.chat1(dm(admin, "!version")); r != "crier 1.2.3" {
			t.Fatalf("admin limited: %q", r)
		}
	}
	// The bucket refills.
	f.clk.Advance(20 * time.Second)
	if r := f.chat1(dm(stranger, "!version")); r != "crier 1.2.3" {
		t.Errorf("after a third of the window: %q", r)
	}
	// Without the exemption admins are limited too.
	g := newFixture(t, func(c *Config) { c.Rate = Rate{N: 1, Per: time.Minute}; c.AdminsExemptFromRate = false })
	g.chat1(dm(admin, "!version"))
	if r := g.chat1(dm(admin, "!version")); !strings.HasPrefix(r, "slow down") {
		t.Errorf("admin without exemption: %q", r)
	}
}

// TestLimiterBounded: many senders cannot grow the bucket map past its
// bound.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter(Rate{N: 1, Per: time.Hour}, 100)
	now := time.Now()
	for i := range 1000 {
		if ok, _ := l.allow(fmt.Sprintf("u%d@example.org", i), now); !ok {
			t.Fatalf("new sender %d refused", i)
		}
	}
	if len(l.m) > 100 {
		t.Fatalf("%d buckets, bound 100", len(l.m))
	}
	g := newHintGuard(10)
	for i := range 100 {
		g.allow(fmt.Sprint(i), now, time.Minute)
	}
	if len(g.last) > 10 {
		t.Fatalf("%d hint guards, bound 10", len(g.last))
	}
}

// TestUnknownCommand: one short hint with a close match, once per window,
// never to a bot or in a loop, configurable off.
func TestUnknownCommand(t *testing.T) {
	f := newFixture(t, nil)
	if r := f.chat1(dm(stranger, "!hlep")); r != `unknown command "!hlep" — did you mean !help? (!help lists them)` {
		t.Errorf("hint: %q", r)
	}
	if r := f.chat1(dm("bob@example.org", "!frobnicate now")); r != `unknown command "!frobnicate" — try !help` {
		t.Errorf("hint without a match: %q", r)
	}
	// Only what the sender may run is suggested.
	if r := f.chat1(dm("carol@example.org", "!jion x")); strings.Contains(r, "!join") {
		t.Errorf("suggested a command the sender may not run: %q", r)
	}
	// Once per window per sender and place.
	if r := f.chat(dm(stranger, "!other")); len(r) != 0 {
		t.Errorf("second hint within the window: %q", r)
	}
	f.clk.Advance(hintWindow)
	if r := f.chat(dm(stranger, "!other")); len(r) != 1 {
		t.Errorf("hint after the window: %q", r)
	}
	// Never to a bot, never in a loop.
	silent := []plugins.Event{
		inRoom(occupant{nick: "crier"}, "!nosuch"), // the bot's own echo
		{Kind: plugins.EventMessage, Type: "headline", From: "news.example.org", Body: "!nosuch"},
		{Kind: plugins.EventMessage, Type: "error", From: "x@example.org/r", Body: "!nosuch"},
		dm("otherbot@example.org", `!x unknown command "!foo" — try !help`), // a bot quoting our hint
		dm(botJID, "!nosuch"),
		dm("dave@example.org", "!!!"),
		dm("dave@example.org", "!1st"),
		dm("dave@example.org", "! spaced"),
	}
	for _, ev := range silent {
		if r := f.chat(ev); len(r) != 0 {
			t.Errorf("%s from %s %q: answered %q", ev.Type, ev.From, ev.Body, r)
		}
	}
	before := f.rejected(reasonUnknown)
	if before < 4 {
		t.Errorf("unknown counted %v", before)
	}
	off := newFixture(t, func(c *Config) { c.UnknownReply = false })
	if r := off.chat(dm(stranger, "!hlep")); len(r) != 0 {
		t.Errorf("unknown_reply = false answered %q", r)
	}
}

// TestBadInput: each bad input gets a clear line and a counted reason.
func TestBadInput(t *testing.T) {
	boom := plugins.Command{Name: "boom", Summary: "panics",
		Run: func(context.Context, *plugins.Call) (plugins.Reply, error) { panic("kaboom") }}
	hang := plugins.Command{Name: "hang", Summary: "blocks",
		Run: func(ctx context.Context, _ *plugins.Call) (plugins.Reply, error) {
			<-ctx.Done()
			time.Sleep(10 * time.Millisecond)
			return plugins.Reply{Text: "too late"}, nil
		}}
	f := newFixture(t, nil, boom, hang)
	f.p.runTimeout = 50 * time.Millisecond
	cases := []struct {
		body, want, reason string
	}{
		{"!say ops@example.org " + strings.Repeat("x", 2000), "body is 2000 bytes; the limit is 1024", reasonTooBig},
		{"!say ops@example.org " + strings.Repeat("x ", 5000), "the line is 10016 bytes; the limit is 8192", reasonTooBig},
		{"!join not@@ajid", `!join: room: "not@@ajid" is not a JID — usage: !join ROOM [NICK]`, reasonBadArgs},
		{"!acl grant bob@example.org king", `level: "king" is not one of`, reasonBadArgs},
		{`!say "ops@example.org hi`, "unterminated quote", reasonBadArgs},
		{"!boom", "boom: internal error", reasonPanic},
		{"!hang", "hang: timed out after 50ms", reasonTimeout},
	}
	for _, tc := range cases {
		before := f.rejected(tc.reason)
		f.clk.Advance(time.Minute)
		r := f.chat1(dm(admin, tc.body))
		if !strings.Contains(r, tc.want) {
			t.Errorf("%.40q: reply %q, want %q", tc.body, r, tc.want)
		}
		if f.rejected(tc.reason) != before+1 {
			t.Errorf("%.40q: %s counted %v -> %v", tc.body, tc.reason, before, f.rejected(tc.reason))
		}
	}
	if f.total("boom", "chat", resultPanic) != 1 || f.total("hang", "chat", resultTimeout) != 1 {
		t.Error("panic or timeout not in crier_commands_total")
	}
	// The plugin still serves after a panic.
	if r := f.chat1(dm(admin, "!version")); r != "crier 1.2.3" {
		t.Errorf("after a panic: %q", r)
	}
}

// TestAudit: admin commands leave a log line, a record in the store and a
// published event; the store keeps the last 1000.
func TestAudit(t *testing.T) {
	f := newFixture(t, nil)
	f.h.PublishErr = nil
	f.chat1(inRoom(occupant{nick: "boss", real: admin}, "!join "+ops+" bot2"))
	pub := f.h.Published()
	f.chat1(dm(stranger, "!reload"))
	pub = append(pub, f.h.Published()...)
	keys := f.h.Store.Keys(auditPrefix)
	if len(keys) != 2 {
		t.Fatalf("audit keys %q", keys)
	}
	var rec auditRecord
	v, _ := f.h.Store.Get(keys[0])
	if err := json.Unmarshal(v, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Who != admin || rec.From != lobby+"/boss" || rec.Where != lobby || rec.Command != "join" || rec.Result != "ok" ||
		rec.Args["room"] != ops || rec.Args["nick"] != "bot2" || rec.Surface != "chat" || !rec.Time.Equal(f.clk.Now()) {
		t.Errorf("join audit %+v", rec)
	}
	v, _ = f.h.Store.Get(keys[1])
	if err := json.Unmarshal(v, &rec); err != nil || rec.Who != stranger || rec.Result != "forbidden" || rec.Command != "reload" {
		t.Errorf("refused reload audit %+v %v", rec, err)
	}
	if len(pub) != 2 || pub[0].Subject != "crier.audit" || !strings.Contains(string(pub[0].Data), `"command":"join"`) {
		t.Errorf("published %q", pub)
	}
	// Non-admin commands are not audited.
	f.chat1(dm(stranger, "!version"))
	if n := len(f.h.Store.Keys(auditPrefix)); n != 2 {
		t.Errorf("version audited: %d records", n)
	}
	// Bounded.
	for range auditKeep + 5 {
		f.p.audit.record(who{from: admin, real: admin}, "say", nil, "ok", nil)
	}
	keys = f.h.Store.Keys(auditPrefix)
	if len(keys) != auditKeep {
		t.Fatalf("%d audit records kept, want %d", len(keys), auditKeep)
	}
	v, _ = f.h.Store.Get(keys[0])
	if strings.Contains(string(v), `"join"`) {
		t.Error("the oldest records were kept, not the newest")
	}
	// Publish failing with ErrUnsupported is fine; without a store only
	// the log and NATS see it.
	f.h.Lock()
	f.h.PublishErr = plugins.ErrUnsupported
	f.h.Unlock()
	f.chat1(dm(admin, "!join "+ops))
}

// TestNoStore: without a state store grants live in memory and say so.
func TestNoStore(t *testing.T) {
	cfg := *defaultConfig()
	cfg.Admins = []string{admin}
	p := New(cfg, plugins.Core{})
	f := &fixture{t: t, p: p, clk: &clock{t: time.Now()}}
	f.h = newHostNoStore()
	if err := p.Start(context.Background(), plugins.Env{Host: f.h}); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	if r := f.chat1(dm(admin, "!acl grant bob@example.org member")); r != "bob@example.org is now member (no state store: until the next restart)" {
		t.Errorf("grant without store: %q", r)
	}
}

// TestStop: after Stop the plugin steps aside; Stop is safe twice.
func TestStop(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := dm(admin, "!version")
	if f.p.Handle(context.Background(), &ev) != plugins.Continue {
		t.Error("Handle after Stop stopped the chain")
	}
	_, ie := f.adhoc(adminPhone, xCommand{Node: "version"})
	expectIQError(t, ie, "service-unavailable", "")
	if err := f.p.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestSampleConfig decodes sample.conf strictly (every key known) and
// checks it passes Check.
func TestSampleConfig(t *testing.T) {
	var file struct {
		Commands *Config `toml:"commands"`
	}
	file.Commands = defaultConfig()
	md, err := toml.Decode(SampleConfig(), &file)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Fatalf("unknown keys in sample.conf: %v", u)
	}
	ck := &checker{}
	file.Commands.Check(ck)
	if len(ck.errs) != 0 {
		t.Fatalf("sample.conf: %q", ck.errs)
	}
	c := file.Commands
	if c.Rate != (Rate{N: 10, Per: time.Minute}) || time.Duration(c.ConfirmTimeout) != 30*time.Second || !slices.Equal(c.Admins, []string{"admin@example.org"}) {
		t.Errorf("sample decoded to %+v", c)
	}
	var bad struct {
		Commands *Config `toml:"commands"`
	}
	bad.Commands = defaultConfig()
	if _, err := toml.Decode("[commands]\nrate = \"fast\"\n", &bad); err == nil || !strings.Contains(err.Error(), "want N/window") {
		t.Errorf("bad rate decoded: %v", err)
	}
}

// TestRunsOffTheChain: Handle returns while the command still runs.
func TestRunsOffTheChain(t *testing.T) {
	release := make(chan struct{})
	slow := plugins.Command{Name: "slow", Summary: "waits",
		Run: func(ctx context.Context, _ *plugins.Call) (plugins.Reply, error) {
			select {
			case <-release:
				return plugins.Reply{Text: "finally"}, nil
			case <-ctx.Done():
				return plugins.Reply{}, ctx.Err()
			}
		}}
	f := newFixture(t, nil, slow)
	ev := dm(stranger, "!slow")
	returned := make(chan plugins.Verdict, 1)
	go func() { returned <- f.p.Handle(context.Background(), &ev) }()
	select {
	case v := <-returned:
		if v != plugins.Stop {
			t.Fatalf("verdict %v", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Handle waited for the command")
	}
	if n := len(f.h.Sent()); n != 0 {
		t.Fatalf("%d replies before the command finished", n)
	}
	close(release)
	if m := f.h.WaitSent(t, 1, 5*time.Second); m[0].Body != "finally" {
		t.Fatalf("reply %q", m[0].Body)
	}
}

// TestStartWithoutHost is refused with a sentinel.
func TestStartWithoutHost(t *testing.T) {
	if err := New(*defaultConfig(), plugins.Core{}).Start(context.Background(), plugins.Env{}); !errors.Is(err, ErrNoHost) {
		t.Fatalf("Start without host: %v", err)
	}
}

// TestMetricsRegistered: the series are on the Registerer under their
// documented names, and a second instance (a reload) shares them.
func TestMetricsRegistered(t *testing.T) {
	f := newFixture(t, nil)
	f.chat1(dm(stranger, "!version"))
	f.chat1(dm(stranger, "!join "+ops))
	p2 := New(f.p.cfg, plugins.Core{})
	if err := p2.Start(context.Background(), plugins.Env{Registerer: f.reg, Host: f.h}); err != nil {
		t.Fatalf("second instance: %v", err)
	}
	defer p2.Stop(context.Background())
	ev := dm(stranger, "!version")
	p2.Handle(context.Background(), &ev)
	p2.wg.Wait()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var l []string
			for _, lp := range m.GetLabel() {
				l = append(l, lp.GetName()+"="+lp.GetValue())
			}
			got[mf.GetName()+"{"+strings.Join(l, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	for k, v := range map[string]float64{
		"crier_commands_total{command=version,result=ok,surface=chat}":   2,
		"crier_commands_total{command=join,result=refused,surface=chat}": 1,
		"crier_commands_rejected_total{reason=forbidden}":                1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (have %v)", k, got[k], v, got)
		}
	}
}
