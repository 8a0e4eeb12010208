package bot

import (
	"strings"
	"testing"
	"time"

	"crier/internal/xmpptest"
)

// TestSessionResumed cuts the bot's connection (a network failure, not a
// server restart): the bot resumes its stream-managed session, stays in
// its room without joining again, and answers, once each, what was sent
// to it while it had no connection.
func TestSessionResumed(t *testing.T) {
	h := readyBot(t, "")
	srv := h.srv
	alice := joinRoom(t, h, "alice")
	const bare = "crier@localhost"
	_ = alice.SendMessage(bare, "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(botFull, "pong alice"))
	connects := counter(t, h.bot, "crier_connects_total")
	since := alice.Seq()

	if err := srv.Cut(botFull); err != nil {
		t.Fatal(err)
	}
	_ = alice.SendMessage(bare, "chat", "!ping")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 10*time.Second, isBody(botFull, "pong alice"))
	alice.Expect(t, 10*time.Second, isBody(room+"/crier", "pong alice"))
	h.waitReady(5 * time.Second)

	if n := srv.Stats().Resumed; n != 1 {
		t.Fatalf("server resumed %d sessions, want 1\nlog:\n%s", n, h.logs.String())
	}
	if got := counter(t, h.bot, "crier_connects_total"); got != connects+1 {
		t.Fatalf("connects %v -> %v, want one more", connects, got)
	}
	if got := counter(t, h.bot, "crier_sessions_resumed_total"); got != 1 {
		t.Fatalf("crier_sessions_resumed_total = %v, want 1", got)
	}
	// Nothing twice, and the bot never left the room nor joined it again.
	time.Sleep(300 * time.Millisecond)
	pongs := 0
	for _, s := range alice.Drain() {
		if s.Seq <= since {
			continue
		}
		if s.Name == "presence" && s.From == room+"/crier" {
			t.Errorf("the bot's presence in the room changed although the session was resumed: type %q", s.Type)
		}
		if s.Name == "message" && s.Body == "pong alice" {
			pongs++
		}
	}
	// Exactly once: what the server confirmed in <resumed h/> is settled,
	// not written again (TestResumeNoDuplicateReplies cuts many times).
	if pongs != 0 {
		t.Errorf("%d more pongs after the two expected\nlog:\n%s", pongs, h.logs.String())
	}
	if !strings.Contains(h.logs.String(), "still in room (session resumed)") {
		t.Errorf("the bot did not keep its room across the resumption\nlog:\n%s", h.logs.String())
	}
	// The resumed session goes on as before.
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
}

// TestResumeRefusedFallsBack: after a server crash (sessions gone), the
// attempt to resume fails and the bot binds anew and joins its room again.
func TestResumeRefusedFallsBack(t *testing.T) {
	h := readyBot(t, "")
	srv := h.srv
	srv.DropAll()
	alice := joinRoom(t, h, "alice")
	alice.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/crier" && s.Type == ""
	})
	h.waitReady(5 * time.Second)
	if n := srv.Stats().Resumed; n != 0 {
		t.Fatalf("server resumed %d sessions after dropping them all", n)
	}
	if !strings.Contains(h.logs.String(), "could not resume") {
		t.Errorf("no resumption was tried\nlog:\n%s", h.logs.String())
	}
	if got := counter(t, h.bot, "crier_sessions_resumed_total"); got != 0 {
		t.Errorf("crier_sessions_resumed_total = %v after a refused resumption, want 0", got)
	}
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
}

// TestResumeAfterInjectedStanzas: stanzas the server writes outside its
// routing (SendRaw, as a fault or hostile input) count on both sides, so a
// cut connection still resumes instead of failing with unexpected-request.
func TestResumeAfterInjectedStanzas(t *testing.T) {
	h := readyBot(t, "")
	srv := h.srv
	alice := h.user("alice")
	raw := "<presence from='" + room + "/ghost' to='" + botFull + "'><status>x</status></presence>" +
		"<message from='nobody' type='chat'><body>ignored</body></message>" +
		"<iq from='localhost' to='" + botFull + "' type='result' id='none'/>"
	if err := srv.SendRaw(botFull, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	// The bot has read them once it answers what follows.
	_ = alice.SendMessage("crier@localhost", "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(botFull, "pong alice"))
	if err := srv.Cut(botFull); err != nil {
		t.Fatal(err)
	}
	// The answer comes from the next session, resumed or not.
	_ = alice.SendMessage("crier@localhost", "chat", "!ping")
	alice.Expect(t, 10*time.Second, isBody(botFull, "pong alice"))
	h.waitReady(5 * time.Second)
	if got := counter(t, h.bot, "crier_connects_total"); got != 2 {
		t.Fatalf("crier_connects_total = %v, want 2", got)
	}
	if got := counter(t, h.bot, "crier_sessions_resumed_total"); got != 1 || srv.Stats().Resumed != 1 {
		t.Fatalf("crier_sessions_resumed_total = %v, server resumed %d: want 1 and 1\nlog:\n%s", got, srv.Stats().Resumed, h.logs.String())
	}
}
