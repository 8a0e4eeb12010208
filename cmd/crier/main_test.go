package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"crier/bot"
	"crier/internal/config"
	"crier/internal/crierproc"
	"crier/internal/state"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckShippedConfig(t *testing.T) {
	code, out, errs := runCLI("check", "-c", "../../config.toml")
	if !haveEmbedded {
		// The demo needs the embedded servers (noembed_test.go).
		if code != 2 {
			t.Fatalf("shipped config in a noembed build: exit %d, want 2\n%s%s", code, out, errs)
		}
		return
	}
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("shipped config: exit %d\n%s%s", code, out, errs)
	}
}

func TestCheckReportsEveryProblemWithLines(t *testing.T) {
	p := write(t, `[xmpp]
jid = "crier@localhost"
password = "x"
address = "127.0.0.1:5222"
colour = "blue"

[[rooms]]
jid = "not a jid@@"

[[rules]]
name = "bad"
match = "(("
reply = "{{.Nope"
`)
	code, _, errs := runCLI("check", "-c", p)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, errs)
	}
	for _, want := range []string{p + ":5:", p + ":8:", p + ":12:", p + ":13:"} {
		if !strings.Contains(errs, want) {
			t.Errorf("no problem reported at %s in:\n%s", want, errs)
		}
	}
}

func TestCheckMissingFile(t *testing.T) {
	code, _, errs := runCLI("check", "-c", filepath.Join(t.TempDir(), "nope.toml"))
	if code != 2 || errs == "" {
		t.Fatalf("exit %d (%q), want 2 with a message", code, errs)
	}
}

func TestRulesTestDryRun(t *testing.T) {
	code, out, errs := runCLI("rules", "test", "-c", "../../config.toml", "--room", "lobby@conference.localhost", "--nick", "alice", "--body", "!ping")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "ping") || !strings.Contains(out, "pong alice") {
		t.Fatalf("dry run output lacks the rule or its reply:\n%s", out)
	}
	code, out, _ = runCLI("rules", "test", "-c", "../../config.toml", "--body", "nothing to see")
	if code != 0 || strings.Contains(out, "pong") {
		t.Fatalf("non-matching body: exit %d\n%s", code, out)
	}
	if code, _, _ := runCLI("rules", "test", "-c", "../../config.toml"); code != 2 {
		t.Fatalf("missing --body: exit %d, want 2", code)
	}
}

func TestUsageAndVersion(t *testing.T) {
	if code, _, _ := runCLI(); code != 2 {
		t.Fatalf("no arguments: exit %d", code)
	}
	if code, _, _ := runCLI("frobnicate"); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	code, out, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(out, "crier ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, _ := runCLI("run", "-log-format", "xml", "-c", "../../config.toml"); code != 2 {
		t.Fatalf("bad log format: exit %d", code)
	}
}

// TestHelpOnEveryCommand checks that help is an answer, not an error:
// `crier help`, -h and --help list every command with its one-line
// summary, and each command's --help, -h and `crier help NAME` print its
// usage on stdout with exit 0.
func TestHelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		code, out, errs := runCLI(args...)
		if code != 0 || errs != "" {
			t.Fatalf("crier %s: exit %d, stderr %q", args[0], code, errs)
		}
		for _, c := range commands {
			if !regexpLine(out, "  "+c.name, c.summary) {
				t.Errorf("crier %s: no line for %s with %q:\n%s", args[0], c.name, c.summary, out)
			}
		}
	}
	for _, c := range commands {
		var variants [][]string
		switch c.name {
		case "help":
			continue
		case "rules":
			variants = [][]string{{"rules", "--help"}, {"rules", "-h"}, {"help", "rules"}, {"rules", "test", "--help"}, {"rules", "test", "-h"}}
		default:
			variants = [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}}
		}
		for _, args := range variants {
			code, out, errs := runCLI(args...)
			if code != 0 || !strings.Contains(out, "usage: crier "+c.name) || errs != "" {
				t.Errorf("crier %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errs)
			}
		}
	}
	if code, _, errs := runCLI("help", "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("help for an unknown command: exit %d %q", code, errs)
	}
	if code, _, errs := runCLI("check", "--frobnicate"); code != 2 || !strings.Contains(errs, "usage: crier check") {
		t.Errorf("a bad flag: exit %d, want 2 with the usage: %q", code, errs)
	}
}

// regexpLine reports whether text has a line starting with prefix and
// ending with suffix.
func regexpLine(text, prefix, suffix string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix+" ") && strings.HasSuffix(l, suffix) {
			return true
		}
	}
	return false
}

func TestVersionPrintsRevisionAndGo(t *testing.T) {
	code, out, _ := runCLI("version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "crier ") || !strings.HasPrefix(lines[1], "revision: ") ||
		!strings.HasPrefix(lines[2], "go: "+runtime.Version()+" ") {
		t.Fatalf("crier version: exit %d\n%s", code, out)
	}
	if code, out2, _ := runCLI("--version"); code != 0 || out2 != out {
		t.Fatalf("crier --version differs: %q", out2)
	}
}

// TestCheckRefusesWhatRunRefuses checks that check and run refuse the
// same configs with exit 2: clear text to a remote server, and [embedded]
// in a build without the embedded servers.
func TestCheckRefusesWhatRunRefuses(t *testing.T) {
	p := write(t, `[xmpp]
jid = "crier@example.org"
password = "x"
address = "192.0.2.1:5222"
tls = "none"
`)
	for _, cmd := range []string{"check", "run"} {
		code, _, errs := runCLI(cmd, "-c", p)
		if code != 2 || !strings.Contains(errs, p+":5: xmpp.tls") {
			t.Errorf("crier %s with tls none to a remote server: exit %d, want 2 at line 5:\n%s", cmd, code, errs)
		}
	}

	cfg, err := config.Load("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if l := refusedByBuild(cfg, true); len(l) != 0 {
		t.Errorf("a default build refuses the demo: %v", l)
	}
	l := refusedByBuild(cfg, false)
	if len(l) != 1 || l[0].Line != tableLine(cfg.Path, "embedded") || l[0].Line == 0 || !strings.Contains(l[0].Msg, "noembed") {
		t.Errorf("a noembed build does not refuse [embedded] at its line: %v", l)
	}
}

// TestRunUnavailableExitsOne: a start that fails for want of something
// the bot needs now (NATS for [ha], a state file another crier holds) is a
// runtime failure, exit 1, not a bad config (2); the message says what.
func TestRunUnavailableExitsOne(t *testing.T) {
	base := `[xmpp]
jid = "crier@localhost"
password = "x"
address = "127.0.0.1:1"
tls = "none"
`
	p := write(t, base+`[nats]
url = "nats://`+crierproc.FreePort(t)+`"
[ha]
bucket = "crier-ha"
`)
	if code, _, errs := runCLI("run", "-c", p); code != 1 || !strings.Contains(errs, "needs NATS") {
		t.Errorf("crier run with NATS unreachable: exit %d, want 1 naming NATS:\n%s", code, errs)
	}

	p = write(t, base+`[bot]
state_dir = "data"
`)
	dir := filepath.Join(filepath.Dir(p), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	held, err := state.Open(filepath.Join(dir, bot.StoreFile), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if code, _, errs := runCLI("run", "-c", p); code != 1 || !strings.Contains(errs, "held by another crier") {
		t.Errorf("crier run with its state file held: exit %d, want 1 saying so:\n%s", code, errs)
	}
}
