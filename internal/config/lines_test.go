package config

import (
	"maps"
	"strings"
	"testing"
)

func TestLineErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"unknown key", `
[xmpp]
jid = "bot@example.org"
password = "pw"
passwrd = "pw" # ERR: unknown key xmpp.passwrd (did you mean "password"?)
`},
		{"unknown key, wrong case", `
[xmpp]
jid = "bot@example.org"
password = "pw"
JID = "x@y" # ERR: unknown key xmpp.JID (did you mean "jid"?)
`},
		{"unknown table", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[xmmp] # ERR: unknown key xmmp (did you mean "xmpp"?)
jid = "x"
`},
		{"unknown key in a rule", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[[rules]]
name = "a"
[[rules]]
name = "b"
matchh = "x" # ERR: unknown key rules.matchh (did you mean "match"?)
`},
		{"unknown key in a room, inline", `
[xmpp]
jid = "bot@example.org"
password = "pw"
rooms_x = 1 # ERR: unknown key xmpp.rooms_x
`},
		{"unknown key in an inline table of an array", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[embedded]
accounts = [
  { jid = "a@localhost", password = "a" },
  { jid = "b@localhost", pasword = "b" }, # ERR: unknown key embedded.accounts.pasword # ERR: embedded.accounts.password: must not be empty
]
`},
		{"type errors, all of them", `
[xmpp]
jid = 42 # ERR: xmpp.jid: expected a string, found an integer
password = "pw"
keepalive = true # ERR: xmpp.keepalive: duration must look like "30s"
keepalive_timeout = [1] # ERR: xmpp.keepalive_timeout: expected a duration such as "30s", found an array
insecure_skip_verify = "yes" # ERR: expected a boolean, found a string
[limits]
outbox_queue = "lots" # ERR: limits.outbox_queue: expected an integer, found a string
[[rules]]
name = "a"
in = "chat" # ERR: rules.in: expected an array of strings, found a string
not = 1 # ERR: rules.not: expected a table, found an integer
[[rooms]]
jid = "a@b"
[[rooms]]
jid = "c@d"
password = { x = 1 } # ERR: rooms.password: expected a string, found a table
`},
		{"table expected", `
xmpp = "bot@example.org" # ERR: xmpp: expected a table, found a string
`},
		{"array of tables expected", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[rooms] # ERR: rooms: expected an array of tables, found a table
jid = "a@b"
`},
		{"array of non-tables", `
[xmpp]
jid = "bot@example.org"
password = "pw"
rooms_ok = 1 # ERR: unknown key xmpp.rooms_ok
[embedded]
accounts = [1, 2] # ERR: embedded.accounts: expected an array of tables, found an array
`},
		{"inline array of tables", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[nats]
url = "nats://127.0.0.1:4222"
relay = [
  { subject = "a", to = ["x@y"] },
  { subject = "b b", to = ["x@y"] }, # ERR: nats.relay.subject: "b b" is not a valid NATS subject
]
`},
		{"errors after a multi-line string keep their lines", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[[rules]]
name = "help"
reply = """
[[rules]]
bogus = 1
"""
bogus = 2 # ERR: unknown key rules.bogus
`},
		{"several errors at once, sorted", `
[limits]
max_body_bytes = 1 # ERR: at least 64
[xmpp] # ERR: a password is required
jid = "bot" # ERR: needs a localpart
tls = "tls" # ERR: xmpp.tls: must be
[[rooms]]
jid = "room@example.org/x" # ERR: must be a bare JID
unknown = 1 # ERR: unknown key rooms.unknown
`},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.TrimPrefix(tt.src, "\n")
			checkMarked(t, loadErrs(t, dir, src, noEnv), src)
		})
	}
}

func TestSyntaxErrorLine(t *testing.T) {
	src := "[xmpp]\njid = \"bot@example.org\"\npassword = \"pw\"\n\nresource = crier\n"
	errs := loadErrs(t, t.TempDir(), src, noEnv)
	if len(errs) != 1 || errs[0].Line != 5 {
		t.Fatalf("got %v, want one error at line 5", errs)
	}
	if !strings.HasSuffix(errs[0].File, "config.toml") {
		t.Errorf("file = %q, want the config file", errs[0].File)
	}
	if strings.Contains(errs[0].Msg, "toml: line") {
		t.Errorf("message repeats the line: %q", errs[0].Msg)
	}
	src = "[xmpp]\njid = \"a@b\"\njid = \"c@d\"\n"
	errs = loadErrs(t, t.TempDir(), src, noEnv)
	if len(errs) != 1 || errs[0].Line != 3 {
		t.Fatalf("duplicate key: got %v, want one error at line 3", errs)
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := load("conf/crier.toml", []byte("[xmpp]\npassword = \"pw\"\njid = 1\n"), noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	if want := "conf/crier.toml:3: xmpp.jid: expected a string, found an integer"; first != want {
		t.Errorf("first line = %q, want %q", first, want)
	}
}

func TestRulePos(t *testing.T) {
	src := strings.TrimPrefix(`
[xmpp]
jid = "bot@example.org"
password = "pw"

[[rules]]          # line 5
name  = "ping"     # line 6
match = "^!ping$"  # line 7
reply = """
pong
"""
in = ["chat"]      # line 11

# a comment
[[rules]]          # line 14
"name" = "two"     # line 15
not.match = "x"    # line 16

[[rules.actions]]  # line 18
do = "log"         # line 19

[[cron]]           # line 21
name = "c"
schedule = "@every 1m"  # line 23

[[rooms]]          # line 25
jid = "r@conference.example.org"
`, "\n")
	c := mustLoad(t, t.TempDir(), src)
	if len(c.Rules) != 2 || len(c.Cron) != 1 {
		t.Fatalf("got %d rules and %d cron tables", len(c.Rules), len(c.Cron))
	}
	check := func(what string, file string, line int, keys, want map[string]int, wantLine int) {
		t.Helper()
		if !strings.HasSuffix(file, "config.toml") {
			t.Errorf("%s: Pos.File = %q", what, file)
		}
		if line != wantLine {
			t.Errorf("%s: Pos.Line = %d, want %d", what, line, wantLine)
		}
		if !maps.Equal(keys, want) {
			t.Errorf("%s: Pos.Keys = %v, want %v", what, keys, want)
		}
	}
	p := c.Rules[0].Pos
	check("rules[0]", p.File, p.Line, p.Keys, map[string]int{"name": 6, "match": 7, "reply": 8, "in": 11, "in[0]": 11}, 5)
	p = c.Rules[1].Pos
	check("rules[1]", p.File, p.Line, p.Keys, map[string]int{"name": 15, "not": 16, "not.match": 16, "actions": 18, "actions[0]": 18, "actions[0].do": 19}, 14)
	p = c.Cron[0].Pos
	check("cron[0]", p.File, p.Line, p.Keys, map[string]int{"name": 22, "schedule": 23}, 21)
	p = c.Rooms[0].Pos
	check("rooms[0]", p.File, p.Line, p.Keys, map[string]int{"jid": 26}, 25)
	if c.Rules[1].Not == nil || c.Rules[1].Not.Match != "x" || len(c.Rules[1].Actions) != 1 || c.Rules[1].Actions[0].Do != "log" {
		t.Errorf("rules[1] decoded as %+v", c.Rules[1])
	}
	if at := c.Rules[0].Pos.At("match", "bad"); at.Line != 7 {
		t.Errorf("Pos.At(match) line = %d, want 7", at.Line)
	}
}

func TestLineIndex(t *testing.T) {
	src := strings.TrimPrefix(`
# comment with key = "value" and [[fake]]
top = 1                               # 2
"quoted key".inner = 'x'              # 3
a.b.c = "s # not a comment"           # 4

[t1]                                  # 6
k1 = """
k2 = "inside a string"
[[also.inside]]
"""
k3 = '''
'''
k4 = "esc \" quote"                   # 13
arr = [                               # 14
  1,      # a comment, ]
  "two",                              # 16
  [3, 4], { x = 5 },                  # 17
]
inl = { a = 1, b.c = { d = 2 } }      # 19

[[aot]]                               # 21
x = 1                                 # 22
[[aot.sub]]                           # 23
y = 2                                 # 24
[[aot]]                               # 25
[[aot.sub]]                           # 26
y = 3                                 # 27
[aot.tab]                             # 28
z = 4                                 # 29
[ "t 2" . sub ]                       # 30
w = 1                                 # 31
k5 = """x"""""                        # 32
k6 = 1                                # 33
`, "\n")
	idx := indexLines([]byte(src))
	want := map[string]int{
		"top":                   2,
		"quoted key":            3,
		"quoted key.inner":      3,
		"a":                     4,
		"a.b.c":                 4,
		"t1":                    6,
		"t1.k1":                 7,
		"t1.k3":                 11,
		"t1.k4":                 13,
		"t1.arr":                14,
		"t1.arr[0]":             15,
		"t1.arr[1]":             16,
		"t1.arr[2]":             17,
		"t1.arr[2][1]":          17,
		"t1.arr[3].x":           17,
		"t1.inl":                19,
		"t1.inl.a":              19,
		"t1.inl.b.c.d":          19,
		"aot":                   21,
		"aot[0]":                21,
		"aot[0].x":              22,
		"aot[0].sub":            23,
		"aot[0].sub[0]":         23,
		"aot[0].sub[0].y":       24,
		"aot[1]":                25,
		"aot[1].sub[0]":         26,
		"aot[1].sub[0].y":       27,
		"aot[1].tab":            28,
		"aot[1].tab.z":          29,
		"t 2.sub":               30,
		"t 2.sub.w":             31,
		"t 2.sub.k5":            32,
		"t 2.sub.k6":            33,
		"t1.k2":                 0,
		"also.inside":           0,
		"fake":                  0,
		"t1.arr[1] # not there": 0,
	}
	for path, line := range want {
		if got := idx.line(path); got != line {
			t.Errorf("line(%q) = %d, want %d", path, got, line)
		}
	}
}

func TestLineIndexNeverLoops(t *testing.T) {
	for _, src := range []string{
		"", "[", "[[", "[[a", "a", "a =", "a = [", "a = {", `a = "`, `a = """`, "a = '''x",
		"a = [1, {b = [", "= 1", "[a.]", "a.\"b", "a = \\", "[]\n[[]]", "a = [}]",
	} {
		indexLines([]byte(src)) // must return
	}
}
