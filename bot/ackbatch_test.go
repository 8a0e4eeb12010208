package bot

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"crier/bot/outbox"
	"crier/plugins"
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

// TestStormBoundedRepliesAccepted: a storm larger than the outbox (the
// server stops acknowledging, so the ack window and then the queue fill)
// is refused with ErrBusy beyond outbox_queue, which a JetStream relay
// turns into a pause: memory stays bounded. An interactive answer is
// still accepted, and after the connection is replaced every accepted
// message arrives and is confirmed exactly once.
func TestStormBoundedRepliesAccepted(t *testing.T) {
	srv := startServerSM(t, false, 0)
	h := startBot(t, srv, botConfig(t, srv, "[limits]\noutbox_queue = 50\n"), Options{})
	h.waitReady(10 * time.Second)
	waitFor(t, "stream management", func() bool {
		st, ok := srv.SM(botFull)
		return ok && st.Enabled
	})
	srv.SetDeaf(true)
	d := &doneLog{ok: make(map[string]int)}
	accepted, busy := 0, 0
	for i := range 500 {
		body := fmt.Sprint("storm-", i)
		err := h.bot.pluginSend(plugins.Message{To: "alice@localhost", Type: "chat", Body: body}, func(err error) {
			d.item(body, nil).Done(err)
		})
		switch {
		case errors.Is(err, plugins.ErrBusy):
			busy++
		case err != nil:
			t.Fatalf("send %d: %v", i, err)
		default:
			accepted++
		}
		if depth := h.bot.out.Depth(); depth > 50 {
			t.Fatalf("outbox depth %d above outbox_queue 50", depth)
		}
		if busy == 0 {
			time.Sleep(100 * time.Microsecond) // let the writer fill the window first
		}
	}
	if busy == 0 || accepted > 50+outbox.DefaultAckWindow+outbox.DefaultAckWindow/4+16 {
		t.Fatalf("%d accepted, %d refused busy: the storm was not bounded", accepted, busy)
	}
	reply := "storm-reply"
	if err := h.bot.pluginSend(plugins.Message{To: "alice@localhost", Type: "chat", Body: reply, Interactive: true}, func(err error) {
		d.item(reply, nil).Done(err)
	}); err != nil {
		t.Fatalf("an interactive answer refused by the storm: %v", err)
	}
	accepted++
	t.Logf("%d accepted (interactive answer included), %d refused busy", accepted, busy)
	srv.SetDeaf(false)
	srv.DropAll()
	d.wait(t, accepted, 20*time.Second)
	dups := offlineBodies(t, srv, "storm-", accepted)
	t.Logf("%d duplicates", dups)
}
