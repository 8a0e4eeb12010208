package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crier/internal/embeddednats"
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
	sub, err := nc.SubscribeSync("alerts.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := run(srv.ClientURL(), "alerts.demo", "e-1", "bob@example.org", event{Title: "T", Body: "B", Severity: "warn"}); err != nil {
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
