package bot

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"crier/bot/outbox"
	"crier/rules"
)

// wireSender records the bytes the outbox writes, as the wire would
// carry them.
type wireSender struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *wireSender) Send(_ context.Context, r xml.TokenReader) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := xml.NewEncoder(&w.buf)
	if _, err := xmlstream.Copy(e, r); err != nil {
		return err
	}
	return e.Flush()
}

func (w *wireSender) sent() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// joinsSent counts the join presences (available presence to the room)
// written so far.
func joinsSent(w *wireSender, room string) int {
	n := 0
	for _, s := range strings.Split(w.sent(), "<presence")[1:] {
		if strings.Contains(s, room+"/") && !strings.Contains(s, "unavailable") {
			n++
		}
	}
	return n
}

// TestBanSchedulesNoRejoin: after the bot's own unavailable presence with
// status 301 (banned) no join presence is sent again, neither by a backoff
// timer nor on the next connection. The same presence with 307 (kicked)
// does rejoin, so the test can see a rejoin when there is one.
func TestBanSchedulesNoRejoin(t *testing.T) {
	const room = "lobby@conference.localhost"
	for _, tc := range []struct {
		status int
		rejoin bool
	}{{307, true}, {301, false}} {
		t.Run(fmt.Sprintf("status-%d", tc.status), func(t *testing.T) {
			o := outbox.New(outbox.Config{}, outbox.Hooks{})
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan struct{})
			go func() { o.Run(ctx); close(ran) }()
			t.Cleanup(func() { cancel(); <-ran })
			f := &wireSender{}
			o.Attach(f, nil)
			met := newMetrics(func() float64 { return 0 }, func() rules.Stats { return rules.Stats{} })
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			r := newRooms(o, log, met, func(int) time.Duration { return time.Millisecond })
			r.Set([]RoomConfig{{JID: room, Nick: "crier"}})
			r.Online()
			waitFor(t, "the first join", func() bool { return joinsSent(f, room) == 1 })

			self := jid.MustParse(room + "/crier")
			r.handlePresence(mucPresence{From: self, Statuses: []int{110}, Item: mucItem{Role: "participant", Affiliation: "member"}})
			if _, _, joined := r.selfRole(room); !joined {
				t.Fatal("not joined after the self-presence")
			}
			r.handlePresence(mucPresence{From: self, Type: "unavailable", Statuses: []int{110, tc.status}})

			if tc.rejoin {
				waitFor(t, "the rejoin after a kick", func() bool { return joinsSent(f, room) == 2 })
				return
			}
			// The backoff is a millisecond: a scheduled rejoin would have
			// gone out many times over.
			time.Sleep(200 * time.Millisecond)
			r.Offline()
			r.Online() // a reconnect
			time.Sleep(100 * time.Millisecond)
			if n := joinsSent(f, room); n != 1 {
				t.Fatalf("%d join presences after a ban, want only the first: %s", n, f.sent())
			}
			if _, _, joined := r.selfRole(room); joined {
				t.Fatal("still joined after the ban")
			}
		})
	}
}
