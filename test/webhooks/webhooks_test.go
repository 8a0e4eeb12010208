// Package webhooks_test runs crier (bot.New and Run) with the webhooks
// plugin against the embedded mini server and posts to it over HTTP.
package webhooks_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

const e2eTables = `
[[webhooks]]
path = "/hooks/am"
format = "alertmanager"
to = ["alice@localhost", "ops@conference.localhost"]
token = "tok"
timeout = "3s"
retry_after = "1s"

# chat for the outage: the user may be offline for a moment when it is
# delivered, and the server keeps chat (not headline) messages for her.
[[webhooks]]
path = "/hooks/chat"
format = "alertmanager"
to = ["alice@localhost", "ops@conference.localhost"]
type = "chat"
token = "tok"
timeout = "3s"
`

// TestEndToEnd posts firing and resolved notifications and checks that a
// user gets headlines and the room a groupchat message, that a retried
// copy is not posted twice, and that while the XMPP server is down the
// webhook answers 503 and the notification arrives once it is back.
func TestEndToEnd(t *testing.T) {
	s := startXMPP(t)
	c := startCrier(t, s, e2eTables)
	alice := s.user(t, "alice")
	bob := s.user(t, "bob")
	if err := bob.Join(room, "bob"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	headline := func(want string) func(xmpptest.Stanza) bool {
		return func(st xmpptest.Stanza) bool {
			return st.Name == "message" && st.Type == "headline" && strings.Contains(st.Body, want)
		}
	}
	inRoom := func(want string) func(xmpptest.Stanza) bool {
		return func(st xmpptest.Stanza) bool {
			return st.Name == "message" && st.Type == "groupchat" && st.From == room+"/crier" && strings.Contains(st.Body, want)
		}
	}

	if code, body := c.post(t, "/hooks/am", "", amBody("g1", "firing", "DiskFull", "db1")); code != 401 {
		t.Fatalf("no token: %d %s", code, body)
	}
	firing := amBody("g1", "firing", "DiskFull", "db1")
	if code, body := c.post(t, "/hooks/am", "tok", firing); code != 200 {
		t.Fatalf("firing: %d %s", code, body)
	}
	got := alice.Expect(t, 5*time.Second, headline("[FIRING:1] DiskFull (critical)"))
	if !strings.Contains(got.Raw, "<subject>[FIRING:1] DiskFull (critical)</subject>") || !strings.Contains(got.Body, "- db1: DiskFull on db1") {
		t.Errorf("headline: %s", got.Raw)
	}
	if got := bob.Expect(t, 5*time.Second, inRoom("[FIRING:1] DiskFull")); strings.Contains(got.Raw, "<subject>") {
		t.Errorf("the room message carries a subject: %s", got.Raw)
	}

	// A retry of the same notification is answered 200 and not posted.
	seq := alice.Seq()
	if code, _ := c.post(t, "/hooks/am", "tok", firing); code != 200 {
		t.Fatalf("retry: %d", code)
	}
	if code, body := c.post(t, "/hooks/am", "tok", amBody("g1", "resolved", "DiskFull", "db1")); code != 200 {
		t.Fatalf("resolved: %d %s", code, body)
	}
	st, err := alice.Wait(ctx, seq, 5*time.Second, headline("DiskFull"))
	if err != nil || !strings.Contains(st.Body, "[RESOLVED:1]") {
		t.Fatalf("after the retry alice got %q (%v), want the resolution first: the retry was posted again", st.Body, err)
	}
	bob.Expect(t, 5*time.Second, inRoom("[RESOLVED:1] DiskFull"))

	// The server goes down: 503 with Retry-After, nothing accepted.
	s.stop()
	deadline := time.Now().Add(10 * time.Second)
	for ok, _ := c.bot.Ready(); ok && time.Now().Before(deadline); ok, _ = c.bot.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	outage := amBody("g2", "firing", "Outage", "web1")
	// Past the plugin's view of the connection (it is kept 50 ms), a
	// POST is refused at once and nothing is accepted.
	time.Sleep(100 * time.Millisecond)
	if code, body := c.post(t, "/hooks/chat", "tok", outage); code != 503 || !strings.Contains(body, "not connected") {
		t.Fatalf("while down: %d %s, want 503 not connected", code, body)
	}
	s.start()
	c.waitReady(t, 15*time.Second)
	alice = s.user(t, "alice")
	bob = s.user(t, "bob")
	if err := bob.Join(room, "bob"); err != nil {
		t.Fatal(err)
	}
	// The sender retries until it gets 200.
	code := 0
	for i := 0; i < 50 && code != 200; i++ {
		code, _ = c.post(t, "/hooks/chat", "tok", outage)
		if code != 200 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if code != 200 {
		t.Fatalf("after the server came back: %d", code)
	}
	chat := func(st xmpptest.Stanza) bool {
		return st.Name == "message" && st.Type == "chat" && strings.Contains(st.Body, "[FIRING:1] Outage")
	}
	alice.Expect(t, 5*time.Second, chat)
	bob.Expect(t, 5*time.Second, inRoom("[FIRING:1] Outage"))
	time.Sleep(500 * time.Millisecond)
	for _, st := range alice.Drain() {
		if chat(st) {
			t.Errorf("a second copy of the outage notification: %s", st.Raw)
		}
	}
}

// TestDedupeAcrossRestart checks that the delivered keys live in the
// state store ([bot] state_dir): after a restart, a retried copy of a
// delivered notification is answered 200 and not posted again.
func TestDedupeAcrossRestart(t *testing.T) {
	s := startXMPP(t)
	tables := fmt.Sprintf("[bot]\nstate_dir = %q\n%s", t.TempDir(), e2eTables)
	alice := s.user(t, "alice")
	headline := func(st xmpptest.Stanza) bool { return st.Name == "message" && st.Type == "headline" }
	body := amBody("g9", "firing", "Restarted", "x")
	c1 := startCrier(t, s, tables)
	if code, _ := c1.post(t, "/hooks/am", "tok", body); code != 200 {
		t.Fatal(code)
	}
	alice.Expect(t, 5*time.Second, headline)
	c1.stop()
	c2 := startCrier(t, s, tables)
	if code, _ := c2.post(t, "/hooks/am", "tok", body); code != 200 {
		t.Fatal(code)
	}
	if code, _ := c2.post(t, "/hooks/am", "tok", amBody("g9", "resolved", "Restarted", "x")); code != 200 {
		t.Fatal(code)
	}
	st := alice.Expect(t, 5*time.Second, headline)
	if !strings.Contains(st.Body, "[RESOLVED:1] Restarted") {
		t.Fatalf("after the restart alice got %q, want the resolution: the retried copy was posted again", st.Body)
	}
}

// TestReload checks that a reload with a changed webhook serves the new
// path at once and no longer the old one.
func TestReload(t *testing.T) {
	s := startXMPP(t)
	c := startCrier(t, s, e2eTables)
	changed := strings.Replace(e2eTables, `path = "/hooks/am"`, `path = "/hooks/new"`, 1)
	if err := c.bot.Reload(crierConfig(t, s, changed)); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if code, body := c.post(t, "/hooks/new", "tok", amBody("g", "firing", "A", "x")); code != 200 {
		t.Fatalf("new path: %d %s", code, body)
	}
	if code, _ := c.post(t, "/hooks/am", "tok", amBody("g", "firing", "A", "x")); code != 404 {
		t.Fatalf("old path after the reload: %d, want 404", code)
	}
}
