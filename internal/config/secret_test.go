package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

const topSecret = "hunter2-s3cr3t"

func TestSecretNeverPrints(t *testing.T) {
	s := Secret(topSecret)
	if s.Reveal() != topSecret {
		t.Fatalf("Reveal() = %q", s.Reveal())
	}
	room := Room{JID: "r@example.org", Password: s}
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", s),
		"%s":         fmt.Sprintf("%s", s),
		"%q":         fmt.Sprintf("%q", s),
		"%x":         fmt.Sprintf("%x", s),
		"%d":         fmt.Sprintf("%d", s),
		"%#v":        fmt.Sprintf("%#v", s),
		"struct %v":  fmt.Sprintf("%v", room),
		"struct %+v": fmt.Sprintf("%+v", room),
		"struct %#v": fmt.Sprintf("%#v", room),
		"pointer %v": fmt.Sprintf("%+v", &room),
		"Sprint":     fmt.Sprint(s, room),
	}
	b, err := json.Marshal(room)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(b)
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		var h slog.Handler = slog.NewTextHandler(&buf, nil)
		if format == "json" {
			h = slog.NewJSONHandler(&buf, nil)
		}
		slog.New(h).Info("x", "secret", s, "room", room, "any", any(s))
		outputs["slog "+format] = buf.String()
	}
	for name, out := range outputs {
		if strings.Contains(out, topSecret) || strings.Contains(out, fmt.Sprintf("%x", topSecret)) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("%s does not say %s: %s", name, redacted, out)
		}
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("empty secret prints %q, want nothing", got)
	}
}

func TestConfigStringRedacts(t *testing.T) {
	dir := t.TempDir()
	c := mustLoad(t, dir, `
[xmpp]
jid = "bot@example.org"
password = "`+topSecret+`"
[[rooms]]
jid = "r@conference.example.org"
password = "`+topSecret+`"
[embedded]
[[embedded.accounts]]
jid = "a@example.org"
password = "`+topSecret+`"
[nats]
url = "nats://127.0.0.1:4222"
token = "`+topSecret+`"
`)
	for name, out := range map[string]string{
		"String":   c.String(),
		"Redacted": c.Redacted(),
		"%+v":      fmt.Sprintf("%+v", c),
		"%#v":      fmt.Sprintf("%#v", *c),
	} {
		if strings.Contains(out, topSecret) {
			t.Errorf("%s leaks the secret:\n%s", name, out)
		}
	}
	if !strings.Contains(c.Redacted(), `jid = "bot@example.org"`) {
		t.Errorf("Redacted() lacks the jid:\n%s", c.Redacted())
	}
	if got := strings.Count(c.Redacted(), redacted); got != 4 {
		t.Errorf("Redacted() shows %d redacted values, want 4:\n%s", got, c.Redacted())
	}
	if c.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", c.Dir(), dir)
	}
	if c.Path != filepath.Join(dir, "config.toml") {
		t.Errorf("Path = %q", c.Path)
	}
}

func TestPasswordSources(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "pass.txt", "from-file\n")
	writeFile(t, dir, "empty.txt", "\n")
	abs := writeFile(t, t.TempDir(), "abs.txt", "absolute\r\n")
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == PasswordEnv {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name   string
		src    string
		getenv func(string) string
		want   string // the resolved password when there is no ERR mark
	}{
		{"password", `
[xmpp]
jid = "b@example.org"
password = "inline"
`, noEnv, "inline"},
		{"relative file, newline trimmed", `
[xmpp]
jid = "b@example.org"
password_file = "pass.txt"
`, noEnv, "from-file"},
		{"absolute file, CRLF trimmed", `
[xmpp]
jid = "b@example.org"
password_file = "` + abs + `"
`, noEnv, "absolute"},
		{"env overrides password", `
[xmpp]
jid = "b@example.org"
password = "inline"
`, env("from-env"), "from-env"},
		{"env overrides password_file, which is not read", `
[xmpp]
jid = "b@example.org"
password_file = "missing.txt"
`, env("from-env"), "from-env"},
		{"env alone", `
[xmpp]
jid = "b@example.org"
`, env("from-env"), "from-env"},
		{"both set", `
[xmpp]
jid = "b@example.org"
password = "inline"
password_file = "pass.txt" # ERR: set password or password_file, not both
`, noEnv, ""},
		{"unreadable file", `
[xmpp]
jid = "b@example.org"
password_file = "missing.txt" # ERR: cannot read
`, noEnv, ""},
		{"empty file", `
[xmpp]
jid = "b@example.org"
password_file = "empty.txt" # ERR: is empty
`, noEnv, ""},
		{"a directory", `
[xmpp]
jid = "b@example.org"
password_file = "." # ERR: not a regular file
`, noEnv, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.TrimPrefix(tt.src, "\n")
			c, err := load(filepath.Join(dir, "config.toml"), []byte(src), tt.getenv)
			if marked(src) != nil {
				checkMarked(t, loadErrs(t, dir, src, tt.getenv), src)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.XMPP.Password.Reveal(); got != tt.want {
				t.Errorf("password = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPasswordEnv goes through LoadBytes and the real environment.
func TestPasswordEnv(t *testing.T) {
	t.Setenv(PasswordEnv, "real-env")
	c, err := LoadBytes("config.toml", []byte("[xmpp]\njid = \"b@example.org\"\npassword = \"inline\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.XMPP.Password.Reveal(); got != "real-env" {
		t.Errorf("password = %q, want the environment's", got)
	}
}

func TestNATSPasswordFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "nats.txt", "natspw\n")
	c := mustLoad(t, dir, `
[xmpp]
jid = "b@example.org"
password = "pw"
[nats]
url = "nats://127.0.0.1:4222"
user = "crier"
password_file = "nats.txt"
`)
	if got := pluginField(t, c, "natsrelay", "Password").(Secret).Reveal(); got != "natspw" {
		t.Errorf("nats password = %q", got)
	}
	if got := pluginField(t, c, "natsrelay", "PasswordFile"); got != filepath.Join(dir, "nats.txt") {
		t.Errorf("password_file not resolved: %q", got)
	}
}
