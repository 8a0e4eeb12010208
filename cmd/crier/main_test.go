package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
