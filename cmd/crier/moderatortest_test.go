package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModeratorTest: the offline explain prints every detector's verdict
// and the normalised text, exit 0; a bad file or no --body is exit 2.
func TestModeratorTest(t *testing.T) {
	t.Setenv("CRIER_XMPP_PASSWORD", "")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	base := "[xmpp]\njid = \"crier@example.org\"\npassword = \"x\"\n\n"
	if err := os.WriteFile(good, []byte(base+"[moderator]\nwords = [\"free coins\"]\n[[moderator.room]]\njid = \"quiet@conference.example.org\"\ndry_run = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("moderator", "test", "-c", good, "--room", "lobby@conference.example.org", "--nick", "bob", "--body", "ｆｒｅｅ c o i n s")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{`normalised (`, `"fre coins"`, `words/words +3 "ｆｒｅｅ c o i n s" as "fre coins"`, "caps:", "-", "would do (first offence): retract and warn"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	code, out, _ = runCLI("moderator", "test", "-c", good, "--room", "quiet@conference.example.org", "--body", "gg")
	if code != 0 || !strings.Contains(out, "override") || !strings.Contains(out, "mode: observe") || !strings.Contains(out, "would do: nothing") {
		t.Errorf("override: exit %d\n%s", code, out)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(base+"[moderator]\n[[moderator.patterns]]\nname = \"x\"\nexpr = \"(\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI("moderator", "test", "-c", bad, "--body", "x"); code != 2 || !strings.Contains(errs, "bad.toml:8: moderator.patterns.expr") {
		t.Errorf("bad file: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := runCLI("moderator", "test", "-c", good); code != 2 {
		t.Errorf("no --body: exit %d", code)
	}
	if code, _, _ := runCLI("moderator", "frob"); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
}
