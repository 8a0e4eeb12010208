package bot

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSelfPingNoticesLostMembership(t *testing.T) {
	srv := startServer(t)
	h := startBot(t, srv, botConfig(t, srv, ""), Options{SelfPing: 100 * time.Millisecond})
	h.waitReady(5 * time.Second)
	if err := srv.Forget(room, "crier"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !contains(srv.Occupants(room), "crier") {
		if time.Now().After(deadline) {
			t.Fatalf("silently lost membership not repaired; log:\n%s", h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := counter(t, h.bot, "crier_room_rejoins_total"); got < 1 {
		t.Fatalf("no self-ping rejoin counted")
	}
	if !strings.Contains(h.logs.String(), "self-ping") {
		t.Fatalf("self-ping rejoin not logged")
	}
}

// TestHostileServerInput feeds the bot what a broken or hostile server could
// send. Stanzas the bot can read but not use are dropped and counted; a
// stream that is not XML any more ends the session, and the bot reconnects.
func TestHostileServerInput(t *testing.T) {
	h := readyBot(t, "")
	srv := h.srv
	bot := "crier@localhost/crier"
	alice := h.user("alice")

	stanzas := []string{
		// Not ours, odd, or hostile but well-formed: each is ignored.
		"<message from='nobody' type='chat'><body>!ping</body></message>",
		"<message from='" + room + "/ghost' type='groupchat'><body>" + strings.Repeat("A", maxInBody+1) + "</body></message>",
		"<presence from='" + room + "/x' type='error'/>",
		"<message from='alice@localhost/x' type='error' id='nope'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
		"<iq from='alice@localhost/x' type='get' id='q1'><unknown xmlns='urn:example:x'/></iq>",
		"<foo xmlns='jabber:client'/>",
	}
	for _, s := range stanzas {
		if err := srv.SendRaw(bot, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	// The session is still the first one and still answers.
	_ = alice.SendMessage(bot, "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(bot, "pong alice"))
	if got := counter(t, h.bot, "crier_connects_total"); got != 1 {
		t.Fatalf("well-formed junk cost a reconnect: connects=%v\n%s", got, h.logs.String())
	}
	if got := counter(t, h.bot, "crier_rejected_total"); got < 2 { // the oversized body and the unknown element
		t.Fatalf("rejected_total = %v, want the junk counted", got)
	}

	// Broken XML and invalid UTF-8 end the stream; the bot comes back.
	for i, raw := range [][]byte{[]byte("<message><body>unclosed</wrong></message>"), []byte("<message><body>\xff\xfe</body></message>")} {
		if err := srv.SendRaw(bot, raw); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for counter(t, h.bot, "crier_connects_total") < float64(i+2) {
			if time.Now().After(deadline) {
				t.Fatalf("no reconnect after malformed input %d\n%s", i, h.logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		h.waitReady(5 * time.Second)
	}
	_ = alice.SendMessage(bot, "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(bot, "pong alice"))
}

// TestStreamLimitCounted: an element nested past what the tap follows ends
// the session, is counted by direction and limit, and the bot comes back.
func TestStreamLimitCounted(t *testing.T) {
	h := readyBot(t, "")
	bot := "crier@localhost/crier"
	limited := func() float64 {
		mfs, err := h.bot.met.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "crier_stream_limits_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["direction"] == "in" && labels["limit"] == "depth" {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatal("crier_stream_limits_total{direction=in,limit=depth} is not exported")
		return 0
	}
	if got := limited(); got != 0 {
		t.Fatalf("before: %v, want 0", got)
	}
	deep := "<message from='localhost' to='" + bot + "'>" + strings.Repeat("<a>", 1<<17+1)
	if err := h.srv.SendRaw(bot, []byte(deep)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for counter(t, h.bot, "crier_connects_total") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect after an element past the depth limit\n%s", h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := limited(); got != 1 {
		t.Fatalf("crier_stream_limits_total{in,depth} = %v, want 1", got)
	}
	h.waitReady(5 * time.Second)
	alice := h.user("alice")
	_ = alice.SendMessage(bot, "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(bot, "pong alice"))
}

// TestRoomBounceRejoinsAndResends: the server forgets the bot in a room
// without telling it. The next post there comes back not-acceptable; the
// bot joins again (counted as a "bounced" rejoin) and the post that
// bounced arrives after all: a tick a second, none missing.
func TestRoomBounceRejoinsAndResends(t *testing.T) {
	srv := startServer(t)
	cfg := botConfig(t, srv, `
[[cron]]
name     = "tick"
schedule = "* * * * * *"
timezone = "UTC"
to       = "`+room+`"
body     = '{{.Time.Unix}}'
`)
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	alice := joinRoom(t, h, "alice")
	seen := map[int64]bool{}
	collect := func(d time.Duration) {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			for _, s := range alice.Drain() {
				if s.Name == "message" && s.From == room+"/crier" {
					if n, err := strconv.ParseInt(s.Body, 10, 64); err == nil {
						seen[n] = true
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	collect(2500 * time.Millisecond)
	if err := srv.Forget(room, "crier"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for counterWith(t, h.bot.met.rejoins, "bounced") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no rejoin after the room refused a post\n%s", h.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitReady(5 * time.Second)
	collect(3 * time.Second)
	var first, last int64
	for n := range seen {
		if first == 0 || n < first {
			first = n
		}
		if n > last {
			last = n
		}
	}
	var missing []int64
	for n := first; n <= last; n++ {
		if !seen[n] {
			missing = append(missing, n)
		}
	}
	if len(seen) < 5 || len(missing) > 0 {
		t.Fatalf("ticks %d..%d, %d seen, missing %v\n%s", first, last, len(seen), missing, h.logs.String())
	}
	if !strings.Contains(h.logs.String(), "the server says the bot is not in it") {
		t.Errorf("the bounce is not logged\n%s", h.logs.String())
	}
}

// TestMessageErrorsCountedNotFlooded: a thousand-recipient fan-out to
// addresses that do not exist answers an error for each. Each is counted
// by condition; the log gets one line, not one per error.
func TestMessageErrorsCountedNotFlooded(t *testing.T) {
	h := readyBot(t, "")
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "<message from='nobody%d@localhost' to='%s' type='error' id='x%d'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", i, botFull, i)
	}
	if err := h.srv.SendRaw(botFull, []byte(b.String())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for counterWith(t, h.bot.met.msgErrors, "service-unavailable") < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("crier_message_errors_total{condition=service-unavailable} = %v, want 200", counterWith(t, h.bot.met.msgErrors, "service-unavailable"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := strings.Count(h.logs.String(), "message error from server"); n != 1 {
		t.Errorf("%d log lines for 200 errors, want 1", n)
	}
	if got := counter(t, h.bot, "crier_connects_total"); got != 1 {
		t.Errorf("the errors cost a reconnect: connects = %v", got)
	}
}
