package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crier/internal/config"
	"crier/internal/embeddednats"
	_ "crier/plugins/all" // config.toml uses the plugins' tables
	"crier/plugins/natsrelay"
)

func TestRunPublishesARelayableEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	srv, err := embeddednats.Start(ctx, "nats://127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("demo.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := run(srv.ClientURL(), defaultSubject, "e-1", "bob@example.org", event{Title: "T", Body: "B", Severity: "warn"}); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(nats.MsgIdHdr) != "e-1" {
		t.Errorf("Nats-Msg-Id = %q", m.Header.Get(nats.MsgIdHdr))
	}
	var raw map[string]any
	if err := json.Unmarshal(m.Data, &raw); err != nil {
		t.Fatal(err)
	}
	p, err := natsrelay.ParsePayload(m.Data, natsrelay.FormatJSON, 0)
	if err != nil || p.Title != "T" || p.Body != "B" || p.Severity != "warn" || p.ID != "e-1" || len(p.To) != 1 || p.To[0] != "bob@example.org" {
		t.Errorf("payload %+v, %v", p, err)
	}
}

// TestDefaultSubjectIsRelayedByTheDemo checks that the defaults reach the
// demo: config.toml has a relay whose subject matches defaultSubject, on
// the NATS server defaultURL names.
func TestDefaultSubjectIsRelayedByTheDemo(t *testing.T) {
	cfg, err := config.Load("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	n := natsrelay.ConfigOf(cfg.Plugins)
	if n.URL != defaultURL {
		t.Errorf("the demo's NATS is %s, natspush's default %s", n.URL, defaultURL)
	}
	var subjects []string
	for _, r := range n.Relay {
		subjects = append(subjects, r.Subject)
		if subjectMatches(r.Subject, defaultSubject) {
			return
		}
	}
	t.Fatalf("no relay of config.toml (subjects %q) forwards natspush's default subject %q", subjects, defaultSubject)
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, subject string
		want            bool
	}{
		{"demo.>", "demo.alert", true},
		{"demo.>", "demo.a.b", true},
		{"demo.>", "demo", false},
		{"demo.*", "demo.alert", true},
		{"demo.*", "demo.a.b", false},
		{"alerts.>", "demo.alert", false},
		{"demo.alert", "demo.alert", true},
	} {
		if got := subjectMatches(tc.filter, tc.subject); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v", tc.filter, tc.subject, got)
		}
	}
}

// subjectMatches reports whether a NATS subscription filter ("*" one
// token, ">" one or more trailing tokens) matches subject.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(f) == len(s)
}
