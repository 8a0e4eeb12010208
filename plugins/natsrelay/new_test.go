package natsrelay

import (
	"strings"
	"testing"

	"crier/internal/config"
	"crier/plugins"
)

func TestNewEnabled(t *testing.T) {
	t.Setenv(config.PasswordEnv, "")
	base := "[xmpp]\njid = \"crier@example.org\"\npassword = \"x\"\n"
	for name, tc := range map[string]struct {
		toml    string
		enabled bool
	}{
		"no nats":       {"", false},
		"url only":      {"[nats]\nurl = \"nats://127.0.0.1:4222\"\n", false},
		"relay":         {"[nats]\nurl = \"nats://127.0.0.1:4222\"\n[[nats.relay]]\nsubject = \"a\"\nto = [\"a@b\"]\n", true},
		"publish only":  {"[nats]\nurl = \"nats://127.0.0.1:4222\"\npublish = \"x.{{.Room}}\"\n", true},
		"request only":  {"[nats]\nurl = \"nats://127.0.0.1:4222\"\nrequest = \"crier.send\"\n", true},
		"sample config": {SampleConfig, true},
	} {
		cfg, err := config.LoadBytes("t.toml", []byte(base+tc.toml))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p, enabled, err := plugins.BuildOne(Name, cfg.Plugins[Name], pluginsCore(cfg))
		if err != nil || enabled != tc.enabled || (enabled && p.Name() != Name) {
			t.Errorf("%s: enabled %v err %v", name, enabled, err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	t.Setenv(config.PasswordEnv, "")
	base := "[xmpp]\njid = \"crier@example.org\"\npassword = \"x\"\n[nats]\nurl = \"nats://127.0.0.1:4222\"\n"
	relay := "[[nats.relay]]\nsubject = \"a\"\nto = [\"a@b\"]\n"
	for _, tc := range []struct{ toml, want string }{
		{relay + "format = \"xml\"\n", `t.toml:9: nats.relay.format: must be "text" or "json"`},
		{relay + "template = \"{{.Nope}}\"\n", "t.toml:9: nats.relay.template:"},
		{relay + "template = \"{{if}}\"\n", "t.toml:9: nats.relay.template:"},
		{relay + "dead_letter = \"dead.>\"\n", "nats.relay.dead_letter:"},
		{relay + "max_bytes = -1\n", "nats.relay.max_bytes: must not be negative"},
		{relay + "stream = \"A.B\"\n", "nats.relay.stream:"},
		{relay + "rooms = [\"conference.example.org\"]\n", "nats.relay.rooms:"},
		{"publish = \"xmpp.{{.Room}}.*\"\n", "nats.publish: renders"},
		{"publish = \"xmpp.{{.Rom}}\"\n", "nats.publish:"},
		{"request = \"a b\"\n", "nats.request:"},
		{"dead_letter = \"\"\n" + relay + "format = \"x\"\n", "nats.relay.format"},
	} {
		cfg, err := config.LoadBytes("t.toml", []byte(base+tc.toml))
		if err != nil {
			t.Fatalf("%q: config: %v", tc.toml, err)
		}
		_, _, err = plugins.BuildOne(Name, cfg.Plugins[Name], pluginsCore(cfg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.toml, err, tc.want)
		}
	}
}

func TestOptions(t *testing.T) {
	if _, err := Options(Config{NKeyFile: "/nonexistent/seed"}); err == nil {
		t.Error("missing nkey file accepted")
	}
	opts, err := Options(Config{User: "u", Password: "p", CAFile: "ca.pem"})
	if err != nil || len(opts) != 4 {
		t.Errorf("options = %d, %v; want name, timeout, user and CA", len(opts), err)
	}
}
