package config

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDemoConfig loads the config.toml shipped at the top of the module.
func TestDemoConfig(t *testing.T) {
	t.Setenv(PasswordEnv, "")
	const path = "../../config.toml"
	c, err := Load(path)
	if err != nil {
		t.Fatalf("the demo config does not load:\n%v", err)
	}
	x := c.XMPP
	if x.JID != "crier@localhost" || x.Password.Reveal() != "crier" || x.Resource != "crier" ||
		x.Transport != TransportTCP || x.Address != "127.0.0.1:5222" || x.TLS != TLSStartTLS {
		t.Errorf("xmpp = %+v", x)
	}
	if c.HTTP.Listen != "127.0.0.1:9090" {
		t.Errorf("http.listen = %q", c.HTTP.Listen)
	}
	e := c.Embedded
	if !e.XMPP || !e.NATS || e.HTTP != "127.0.0.1:5280" || len(e.Accounts) != 2 ||
		e.Accounts[0].JID != "alice@localhost" || e.Accounts[0].Password.Reveal() != "alice" ||
		e.Accounts[1].JID != "bob@localhost" || e.Accounts[1].Password.Reveal() != "bob" {
		t.Errorf("embedded = %+v", e)
	}
	if url := pluginField(t, c, "natsrelay", "URL"); url != "nats://127.0.0.1:4222" {
		t.Errorf("nats.url = %v", url)
	}
	if len(c.Rooms) != 1 || c.Rooms[0].JID != "lobby@conference.localhost" || c.Rooms[0].Nick != "crier" {
		t.Errorf("rooms = %+v", c.Rooms)
	}
	var names []string
	for _, r := range c.Rules {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"ping", "echo"}) {
		t.Errorf("rules = %q", names)
	}
	if c.Rules[0].Match != "^!ping$" || c.Rules[0].Reply != "pong {{.Nick}}" {
		t.Errorf("ping rule = %+v", c.Rules[0])
	}
	if !strings.Contains(c.Rules[1].Reply, ".Match") {
		t.Errorf("echo rule does not use .Match: %q", c.Rules[1].Reply)
	}
	// Each rule's Pos points at its lines in the file.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for _, r := range c.Rules {
		if r.Pos.File != path || r.Pos.Line < 1 || strings.TrimSpace(lines[r.Pos.Line-1]) != "[[rules]]" {
			t.Errorf("rule %s: Pos.Line %d is not its header", r.Name, r.Pos.Line)
		}
		if l := r.Pos.Keys["match"]; l < 1 || !strings.HasPrefix(lines[l-1], "match") {
			t.Errorf("rule %s: Pos.Keys[match] = %d", r.Name, l)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("does/not/exist.toml")
	if err == nil || !strings.HasPrefix(err.Error(), "does/not/exist.toml: cannot read config:") {
		t.Fatalf("Load = %v", err)
	}
}

func BenchmarkLoadDemo(b *testing.B) {
	data, err := os.ReadFile("../../config.toml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := load("config.toml", data, noEnv); err != nil {
			b.Fatal(err)
		}
	}
}

// TestManyRules guards against work quadratic in the number of tables.
func TestManyRules(t *testing.T) {
	var b strings.Builder
	b.WriteString("[xmpp]\njid = \"b@example.org\"\npassword = \"pw\"\n")
	const n = 5000
	for i := range n {
		fmt.Fprintf(&b, "[[rules]]\nname = \"r%d\"\nmatch = \"x\"\nreply = \"y\"\n", i)
	}
	start := time.Now()
	c := mustLoad(t, t.TempDir(), b.String())
	if len(c.Rules) != n || c.Rules[n-1].Pos.Keys["reply"] != 4+4*(n-1)+3 {
		t.Fatalf("got %d rules, last Pos %+v", len(c.Rules), c.Rules[n-1].Pos)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("loading %d rules took %v", n, d)
	}
}
