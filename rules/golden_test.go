package rules

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite the want.txt files of the golden tests")

// goldenFile is the part of a config file the golden cases use.
type goldenFile struct {
	Limits struct {
		SenderReplies Rate `toml:"sender_replies"`
	} `toml:"limits"`
	Rooms []struct {
		JID string `toml:"jid"`
	} `toml:"rooms"`
	Rules []Spec `toml:"rules"`
}

// goldenInput is one message of in.json; At sets the clock (else it moves
// one second per message).
type goldenInput struct {
	Message
	At string `json:"at"`
}

// TestGolden runs every testdata/<case>/: rules.toml (config excerpt),
// in.json (messages) and want.txt (DryRun output for each message).
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/rules.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 8 {
		t.Fatalf("found %d golden cases, want at least 8", len(dirs))
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var cfg goldenFile
			md, err := toml.DecodeFile(f, &cfg)
			if err != nil {
				t.Fatal(err)
			}
			if u := md.Undecoded(); len(u) > 0 {
				t.Fatalf("unknown keys: %v", u)
			}
			now := time.Date(2024, 5, 6, 10, 0, 0, 0, time.UTC) // a Monday
			opts := Options{SenderLimit: cfg.Limits.SenderReplies, Now: func() time.Time { return now }}
			for _, r := range cfg.Rooms {
				opts.Rooms = append(opts.Rooms, r.JID)
			}
			e, errs := Compile(cfg.Rules, opts)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "in.json"))
			if err != nil {
				t.Fatal(err)
			}
			var in []goldenInput
			if err := json.Unmarshal(raw, &in); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			for i, m := range in {
				if m.At != "" {
					if now, err = time.Parse(time.RFC3339, m.At); err != nil {
						t.Fatal(err)
					}
				} else if i > 0 {
					now = now.Add(time.Second)
				}
				msg := m.Message
				if msg.BotNick == "" && msg.Room != "" {
					msg.BotNick = "crier"
				}
				if msg.BotJID == "" {
					msg.BotJID = "crier@example.org"
				}
				fmt.Fprintf(&out, "== %d %s %s %s: %s\n", i+1, or(string(msg.Kind), "message"), msg.Type, or(msg.Nick, msg.From),
					strings.ReplaceAll(or(msg.Body, msg.Subject), "\n", `\n`))
				DryRun(&out, e, msg)
			}
			wantFile := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(wantFile, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("output differs from %s\n--- got\n%s\n--- want\n%s", wantFile, got, want)
			}
		})
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
