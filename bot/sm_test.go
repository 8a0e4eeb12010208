package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crier/bot/outbox"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

const botFull = "crier@localhost/crier"

// startServerSM is startServer with stream management on or off, reading
// at most shape bytes per second from each client when shape is positive.
func startServerSM(t *testing.T, noSM bool, shape int) *miniserver.Server {
	t.Helper()
	return startMini(t, miniserver.Config{NoSM: noSM, Shape: shape})
}

// doneLog records the outbox's Done callbacks.
type doneLog struct {
	mu    sync.Mutex
	ok    map[string]int
	fails int
	n     atomic.Int64
}

func (d *doneLog) item(body string, after func(n int64)) *outbox.Item {
	return &outbox.Item{Kind: outbox.Message, To: "alice@localhost", Type: "chat", Body: body, Done: func(err error) {
		d.mu.Lock()
		if err != nil {
			d.fails++
		} else {
			d.ok[body]++
		}
		d.mu.Unlock()
		n := d.n.Add(1)
		if after != nil {
			after(n)
		}
	}}
}

func (d *doneLog) wait(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for d.n.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Done callbacks after %v", d.n.Load(), n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fails != 0 || len(d.ok) != n {
		t.Fatalf("Done: %d distinct successes, %d failures, want %d successes", len(d.ok), d.fails, n)
	}
	for body, k := range d.ok {
		if k != 1 {
			t.Fatalf("Done called %d times for %q", k, body)
		}
	}
}

// offlineBodies logs alice in and collects the stored chat messages whose
// body starts with prefix until n distinct ones arrived; it returns the
// number of duplicates.
func offlineBodies(t *testing.T, srv *miniserver.Server, prefix string, n int) int {
	t.Helper()
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: srv.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: srv.CertPool(), Timeout: 5 * time.Second})
	seen := make(map[string]int)
	for range 4 * n {
		if len(seen) == n {
			break
		}
		st, err := alice.Wait(context.Background(), 0, 5*time.Second, func(s xmpptest.Stanza) bool {
			return s.Name == "message" && strings.HasPrefix(s.Body, prefix)
		})
		if err != nil {
			t.Fatalf("alice has %d of %d messages: %v", len(seen), n, err)
		}
		seen[st.Body]++
	}
	if len(seen) != n {
		t.Fatalf("alice has %d of %d messages", len(seen), n)
	}
	// Duplicates may still trail the last new body.
	for {
		st, err := alice.Wait(context.Background(), 0, 300*time.Millisecond, func(s xmpptest.Stanza) bool {
			return s.Name == "message" && strings.HasPrefix(s.Body, prefix)
		})
		if err != nil {
			break
		}
		seen[st.Body]++
		if len(seen) > n {
			t.Fatalf("unexpected body %q", st.Body)
		}
	}
	dups := 0
	for _, k := range seen {
		dups += k - 1
	}
	return dups
}

// unknownRejected returns crier_rejected_total{reason="unknown_element"}.
func unknownRejected(t *testing.T, b *Bot) float64 {
	t.Helper()
	mfs, err := b.met.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "crier_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "unknown_element" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

var smModes = []struct {
	name string
	noSM bool
}{
	{"stream-management", false},
	{"ping-barrier", true},
}

// TestAckBarrierModes checks, with stream management and with the ping
// fallback, that Done callbacks wait for the server: a deaf server gets
// stanzas written but never acknowledges them, and the items are
// delivered (and Done) only after the connection is replaced.
func TestAckBarrierModes(t *testing.T) {
	for _, mode := range smModes {
		t.Run(mode.name, func(t *testing.T) {
			srv := startServerSM(t, mode.noSM, 0)
			h := startBot(t, srv, botConfig(t, srv, ""), Options{})
			h.waitReady(10 * time.Second)
			waitFor(t, "stream management state", func() bool {
				st, ok := srv.SM(botFull)
				return ok && st.Enabled == !mode.noSM
			})
			if !mode.noSM {
				// The server's own ack request reaches the bot's handler
				// after the transport answered it: ignored, not rejected.
				if err := srv.RequestAck(botFull); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the bot's answer to <r/>", func() bool {
					st, _ := srv.SM(botFull)
					return st.Acks == 1
				})
			}

			d := &doneLog{ok: make(map[string]int)}
			const n = 10
			srv.SetDeaf(true)
			written := srv.Stats().Dropped
			for i := range n {
				if err := h.bot.out.Enqueue(d.item(fmt.Sprintf("deaf-%d", i), nil)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "the stanzas reaching the deaf server", func() bool { return srv.Stats().Dropped-written >= n })
			time.Sleep(300 * time.Millisecond)
			if got := d.n.Load(); got != 0 {
				t.Fatalf("%d Done callbacks fired while the server ignored everything", got)
			}
			srv.SetDeaf(false)
			srv.DropAll()
			d.wait(t, n, 20*time.Second)
			dups := offlineBodies(t, srv, "deaf-", n)
			t.Logf("%d duplicates", dups)
			if v := unknownRejected(t, h.bot); v != 0 {
				t.Errorf("%v elements rejected as unknown", v)
			}
		})
	}
}

// TestDropMidBurstLosesNothing kills every connection in the middle of a
// burst: each message must reach the receiver at least once, and Done must
// fire exactly once per message.
func TestDropMidBurstLosesNothing(t *testing.T) {
	for _, mode := range smModes {
		t.Run(mode.name, func(t *testing.T) {
			// A shaper (about 50 messages a second) keeps the burst long
			// enough for the drop to land in its middle.
			srv := startServerSM(t, mode.noSM, 8000)
			h := startBot(t, srv, botConfig(t, srv, ""), Options{})
			h.waitReady(10 * time.Second)
			waitFor(t, "stream management state", func() bool {
				st, ok := srv.SM(botFull)
				return ok && st.Enabled == !mode.noSM
			})
			connects := counter(t, h.bot, "crier_connects_total")
			d := &doneLog{ok: make(map[string]int)}
			// The receiver stays offline: the server stores chat messages
			// (up to 100 per account) and acknowledges them once stored, so
			// a drop cannot lose what the server already confirmed.
			const n = 60
			for i := range n {
				if err := h.bot.out.Enqueue(d.item(fmt.Sprintf("burst-%d", i), nil)); err != nil {
					t.Fatal(err)
				}
			}
			// Drop every connection once, at a moment when at least 20
			// stanzas were written and some of them are not confirmed yet
			// (the shaped server reads slowly, so that moment lasts).
			waitFor(t, "written and unconfirmed stanzas", func() bool {
				st := h.bot.out.Stats()
				return st.Written >= 20 && st.Unacked > 0
			})
			srv.DropAll()
			d.wait(t, n, 30*time.Second)
			if got := counter(t, h.bot, "crier_connects_total"); got <= connects {
				t.Fatalf("connects %v -> %v: the drop did not happen mid-burst", connects, got)
			}
			resent := h.bot.out.Stats().Resent
			if resent == 0 {
				t.Fatal("nothing was unacknowledged at the drop: it did not happen mid-burst")
			}
			dups := offlineBodies(t, srv, "burst-", n)
			t.Logf("%d resent, %d duplicates after the drop", resent, dups)
		})
	}
}
