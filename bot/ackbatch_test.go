package bot

import (
	"fmt"
	"testing"
	"time"

	"crier/bot/outbox"
)

// stanzaCount reads crier_stanzas_total{direction,kind}.
func stanzaCount(t *testing.T, b *Bot, dir, kind string) float64 {
	t.Helper()
	mfs, err := b.met.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "crier_stanzas_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["direction"] == dir && got["kind"] == kind {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no crier_stanzas_total{direction=%q,kind=%q}", dir, kind)
	return 0
}

// TestAckRequestsBatchedAtOneInFlight: a quiet chat (one message in
// flight, each answered before the next is sent) costs far less than one
// XEP-0198 ack request per reply, and what was written is still confirmed
// within a bounded time.
func TestAckRequestsBatchedAtOneInFlight(t *testing.T) {
	h := readyBot(t, "")
	waitFor(t, "stream management", func() bool {
		st, ok := h.srv.SM(botFull)
		return ok && st.Enabled
	})
	alice := h.user("alice")
	// Let the joins and presence of the start be confirmed first.
	waitFor(t, "the start confirmed", func() bool { return h.bot.out.Stats().Unacked == 0 })
	r0 := stanzaCount(t, h.bot, "out", "sm_r")
	const n = 40
	for i := range n {
		body := fmt.Sprint("!echo w", i)
		if err := alice.SendMessage(botFull, "chat", body); err != nil {
			t.Fatal(err)
		}
		alice.Expect(t, 5*time.Second, isBody(botFull, fmt.Sprint("w", i)))
	}
	began := time.Now()
	waitFor(t, "every reply confirmed", func() bool { return h.bot.out.Stats().Unacked == 0 })
	confirmed := time.Since(began)
	requests := stanzaCount(t, h.bot, "out", "sm_r") - r0
	t.Logf("%d replies at one in flight: %v ack requests (%.2f per reply), all confirmed %v after the last", n, requests, requests/n, confirmed)
	// One request per half window (16) at most, plus the timed ones.
	if perReply := requests / n; perReply > 0.25 {
		t.Fatalf("%v ack requests for %d replies (%.2f per reply): not batched", requests, n, perReply)
	}
	if requests < 1 {
		t.Fatalf("no ack request at all: the replies were never confirmed by the server")
	}
	if confirmed > outbox.DefaultAckDelay+2*time.Second {
		t.Fatalf("replies confirmed %v after the last, want within about %v", confirmed, outbox.DefaultAckDelay)
	}
}
