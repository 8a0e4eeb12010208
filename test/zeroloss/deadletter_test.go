package zeroloss

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crier/internal/crierproc"
)

// TestDeadLetters publishes malformed events (invalid UTF-8 and an
// oversized payload to a text relay, invalid JSON to a JSON relay) between
// valid ones, through JetStream. Each malformed event must reach the
// dead-letter subject with headers saying why and counted in
// crier_nats_relay_dead_letters_total, and the valid events before and
// after them must all reach the receiver in their order: a bad event never
// blocks its stream.
func TestDeadLetters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := startMini(t)
	ns, nc, js := StartNATS(ctx, t)
	for name, subj := range map[string]string{"DLTEXT": "dl.text.>", "DLJSON": "dl.json.>"} {
		if _, err := js.AddStream(&nats.StreamConfig{Name: name, Subjects: []string{subj}}); err != nil {
			t.Fatalf("create stream %s: %v", name, err)
		}
	}
	const deadSubject = "dl.dead"
	var (
		deadMu sync.Mutex
		dead   []*nats.Msg
	)
	sub, err := nc.Subscribe(deadSubject, func(m *nats.Msg) {
		deadMu.Lock()
		dead = append(dead, m)
		deadMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	var (
		bodyMu sync.Mutex
		bodies []string
	)
	rcv := NewReceiver(miniReceiver(srv, "dl"), func(body string, _ time.Time) {
		bodyMu.Lock()
		bodies = append(bodies, body)
		bodyMu.Unlock()
	})
	if err := rcv.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)

	const maxBytes = 1024
	cfgPath, httpAddr := WriteConfig(t, Config{
		XMPP:       miniXMPP(t, srv, "tcp"),
		NATSURL:    ns.ClientURL(),
		DeadLetter: deadSubject,
		Relays: []Relay{
			{Subject: "dl.text.>", To: []string{rcvJID}, Type: "chat", Format: "text", Stream: "DLTEXT",
				Durable: "crier-dltext", MaxBytes: maxBytes},
			{Subject: "dl.json.>", To: []string{rcvJID}, Type: "chat", Format: "json", Stream: "DLJSON",
				Durable: "crier-dljson", MaxBytes: maxBytes},
		},
	})
	d := crierproc.Start(t, cfgPath, httpAddr)
	d.WaitReady(t, 30*time.Second)

	// The events, in publishing order. A valid text event's body is its
	// payload; a valid JSON event's body is its "body" field.
	type event struct {
		subject, id string
		data        []byte
		reason      string // the dead-letter reason, "" for a valid event
	}
	var events []event
	var wantText, wantJSON []string
	text := func(i int) {
		b := fmt.Sprintf("text %d", i)
		events = append(events, event{subject: "dl.text.ok", id: fmt.Sprintf("t%d", i), data: []byte(b)})
		wantText = append(wantText, b)
	}
	jsn := func(i int) {
		b := fmt.Sprintf("json %d", i)
		data, _ := json.Marshal(map[string]string{"body": b})
		events = append(events, event{subject: "dl.json.ok", id: fmt.Sprintf("j%d", i), data: data})
		wantJSON = append(wantJSON, b)
	}
	text(1)
	jsn(1)
	events = append(events,
		event{subject: "dl.text.bad", id: "bad-utf8", data: []byte("caf\xe9 \xff\xfe"), reason: "invalid-utf8"},
		event{subject: "dl.json.bad", id: "bad-json", data: []byte(`{"body": "unterminated`), reason: "invalid-json"})
	text(2)
	jsn(2)
	events = append(events,
		event{subject: "dl.text.big", id: "too-big", data: bytes.Repeat([]byte("x"), maxBytes+500), reason: "oversized"})
	for i := 3; i <= 102; i++ {
		text(i)
		jsn(i)
	}
	for _, e := range events {
		if _, err := js.Publish(e.subject, e.data, nats.MsgId(e.id)); err != nil {
			t.Fatalf("publish %s: %v", e.id, err)
		}
	}

	// Every valid event arrives, each relay's in publishing order.
	want := len(wantText) + len(wantJSON)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		bodyMu.Lock()
		n := len(bodies)
		bodyMu.Unlock()
		if n >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let stray copies show
	bodyMu.Lock()
	var gotText, gotJSON []string
	for _, b := range bodies {
		switch {
		case strings.HasPrefix(b, "text "):
			gotText = append(gotText, b)
		case strings.HasPrefix(b, "json "):
			gotJSON = append(gotJSON, b)
		default:
			t.Errorf("the receiver got a body that no valid event has: %q", b)
		}
	}
	bodyMu.Unlock()
	if strings.Join(gotText, "|") != strings.Join(wantText, "|") {
		t.Errorf("text relay delivered %d bodies %q..., want %d in order %q...", len(gotText), head(gotText, 5),
			len(wantText), head(wantText, 5))
	}
	if strings.Join(gotJSON, "|") != strings.Join(wantJSON, "|") {
		t.Errorf("JSON relay delivered %d bodies %q..., want %d in order %q...", len(gotJSON), head(gotJSON, 5),
			len(wantJSON), head(wantJSON, 5))
	}

	// Each malformed event is a dead letter, with its reason, id, subject
	// and relay in the headers; the oversized one is cut to max_bytes.
	byID := map[string]*nats.Msg{}
	for i := 0; i < 250; i++ {
		deadMu.Lock()
		for _, m := range dead {
			byID[m.Header.Get("Crier-Msg-Id")] = m
		}
		n := len(dead)
		deadMu.Unlock()
		if n >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadMu.Lock()
	if len(dead) != 3 {
		t.Errorf("%d dead letters, want 3", len(dead))
	}
	deadMu.Unlock()
	for _, e := range events {
		if e.reason == "" {
			continue
		}
		m := byID[e.id]
		if m == nil {
			t.Errorf("no dead letter for %s (%s)", e.id, e.reason)
			continue
		}
		relay := e.subject[:strings.LastIndexByte(e.subject, '.')] + ".>"
		for k, v := range map[string]string{"Crier-Reason": e.reason, "Crier-Subject": e.subject, "Crier-Relay": relay} {
			if got := m.Header.Get(k); got != v {
				t.Errorf("dead letter of %s: header %s = %q, want %q", e.id, k, got, v)
			}
		}
		if m.Header.Get("Crier-Error") == "" {
			t.Errorf("dead letter of %s has no Crier-Error detail", e.id)
		}
		if m.Header.Get(nats.MsgIdHdr) != "" {
			t.Errorf("dead letter of %s kept the Nats-Msg-Id header", e.id)
		}
		wantData := e.data
		if len(wantData) > maxBytes {
			wantData = wantData[:maxBytes]
			if m.Header.Get("Crier-Truncated") != "true" {
				t.Errorf("dead letter of %s: Crier-Truncated = %q, want true", e.id, m.Header.Get("Crier-Truncated"))
			}
		}
		if !bytes.Equal(m.Data, wantData) {
			t.Errorf("dead letter of %s carries %d bytes, want the %d of the payload", e.id, len(m.Data), len(wantData))
		}
	}

	// The metric counts each reason on its relay.
	for _, c := range []struct{ relay, reason string }{
		{"dl.text.>", "invalid-utf8"}, {"dl.text.>", "oversized"}, {"dl.json.>", "invalid-json"},
	} {
		v, err := d.Metric("crier_nats_relay_dead_letters_total", "relay", c.relay, "reason", c.reason)
		if err != nil {
			t.Fatalf("read /metrics: %v", err)
		}
		if v != 1 {
			t.Errorf("crier_nats_relay_dead_letters_total{relay=%q,reason=%q} = %v, want 1", c.relay, c.reason, v)
		}
	}
	if v, err := d.Metric("crier_nats_relay_dead_letters_total"); err != nil || v != 3 {
		t.Errorf("crier_nats_relay_dead_letters_total over all labels = %v (%v), want 3", v, err)
	}

	// Nothing is left unacknowledged: the dead letters were acked too.
	for stream, durable := range map[string]string{"DLTEXT": "crier-dltext", "DLJSON": "crier-dljson"} {
		var ci *nats.ConsumerInfo
		for i := 0; i < 100; i++ {
			if ci, err = js.ConsumerInfo(stream, durable); err != nil || (ci.NumPending == 0 && ci.NumAckPending == 0) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("consumer %s: %v", durable, err)
		} else if ci.NumPending != 0 || ci.NumAckPending != 0 {
			t.Errorf("consumer %s: %d pending, %d unacknowledged; want none", durable, ci.NumPending, ci.NumAckPending)
		}
	}
}

// head returns the first n elements of s.
func head(s []string, n int) []string {
	return s[:min(n, len(s))]
}
