package outbox

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"
)

// fakeSender records what the outbox writes; it can be told to block or fail.
type fakeSender struct {
	mu     sync.Mutex
	got    []string
	block  chan struct{} // when non-nil, Send waits on it
	fail   bool
	writes int // Send calls that succeeded
}

func (f *fakeSender) Send(ctx context.Context, r xml.TokenReader) error {
	f.mu.Lock()
	block, fail := f.block, f.fail
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return errors.New("broken pipe")
	}
	// One write may carry several stanzas (the outbox batches): record
	// each top-level element on its own.
	var got []string
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	depth := 0
	for {
		tok, err := r.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := e.EncodeToken(tok); err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				if err := e.Flush(); err != nil {
					return err
				}
				got = append(got, buf.String())
				buf.Reset()
			}
		}
	}
	f.mu.Lock()
	f.got = append(f.got, got...)
	f.writes++
	f.mu.Unlock()
	return nil
}

func (f *fakeSender) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func runOutbox(t *testing.T, cfg Config, hooks Hooks) *Outbox {
	o := New(cfg, hooks)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return o
}

func TestOutboxPriorityAndEscaping(t *testing.T) {
	o := runOutbox(t, Config{}, Hooks{})
	f := &fakeSender{block: make(chan struct{})}
	o.Attach(f, nil)
	release := sync.OnceFunc(func() { close(f.block) })
	t.Cleanup(release)
	_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Type: "chat", Body: "bulk <&>"})
	// The writer holds the first message; the presence queued after two
	// more messages must overtake them.
	waitFor(t, "writer busy", func() bool { return o.Depth() == 0 })
	for i := 0; i < 2; i++ {
		_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Type: "chat", Body: "bulk <&>"})
	}
	_ = o.Enqueue(&Item{Kind: Presence, Priority: High})
	release()
	waitFor(t, "4 stanzas", func() bool { return len(f.sent()) == 4 })
	got := f.sent()
	if !strings.HasPrefix(got[1], "<presence") {
		t.Fatalf("presence did not overtake the queued messages: %q", got)
	}
	if !strings.Contains(got[0], "bulk &lt;&amp;&gt;") {
		t.Fatalf("body not escaped: %s", got[0])
	}
}

func TestOutboxRoomGate(t *testing.T) {
	o := runOutbox(t, Config{RoomQueue: 2}, Hooks{})
	f := &fakeSender{}
	o.Attach(f, nil)
	var drops []error
	var mu sync.Mutex
	for i := 0; i < 3; i++ {
		_ = o.Enqueue(&Item{Kind: Message, To: "r@muc", Type: "groupchat", Body: "x", Room: "r@muc", Done: func(err error) {
			mu.Lock()
			drops = append(drops, err)
			mu.Unlock()
		}})
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(f.sent()); n != 0 {
		t.Fatalf("%d messages went to a room that is not joined", n)
	}
	mu.Lock()
	if len(drops) != 1 || !errors.Is(drops[0], ErrRoomQueue) {
		t.Fatalf("third message: want ErrRoomQueue, got %v", drops)
	}
	mu.Unlock()
	o.SetRoomJoined("r@muc", true)
	waitFor(t, "2 room messages", func() bool { return len(f.sent()) == 2 })
}

func TestOutboxQueueFullCounted(t *testing.T) {
	dropped := 0
	var mu sync.Mutex
	o := New(Config{Queue: 5}, Hooks{Dropped: func(string) { mu.Lock(); dropped++; mu.Unlock() }})
	errs := 0
	for i := 0; i < 8; i++ {
		if err := o.Enqueue(&Item{Kind: Message, To: "a@b", Body: "x"}); err != nil {
			errs++
		}
	}
	if errs != 3 || dropped != 3 || o.Depth() != 5 {
		t.Fatalf("errs=%d dropped=%d depth=%d, want 3 3 5", errs, dropped, o.Depth())
	}
}

func TestOutboxSlowServerLosesNothing(t *testing.T) {
	o := runOutbox(t, Config{Queue: 100}, Hooks{})
	f := &fakeSender{block: make(chan struct{})}
	o.Attach(f, nil)
	for i := 0; i < 50; i++ {
		if err := o.Enqueue(&Item{Kind: Message, To: "a@b", Body: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	// The server takes one write at a time, slowly; the stanzas that
	// waited meanwhile leave together, at most maxBatch a write.
	for writes := 0; len(f.sent()) < 50; writes++ {
		if writes == 50 {
			t.Fatalf("50 writes carried only %d stanzas", len(f.sent()))
		}
		f.block <- struct{}{}
		time.Sleep(time.Millisecond)
	}
	f.mu.Lock()
	writes := f.writes
	f.mu.Unlock()
	if min := (50 + maxBatch - 1) / maxBatch; writes < min || writes > 50-maxBatch {
		t.Fatalf("50 stanzas in %d writes: want batches of at most %d (>= %d writes), and some batching", writes, maxBatch, min)
	}
	for i, x := range f.sent() {
		if !strings.HasPrefix(x, "<message") || !strings.HasSuffix(x, "</message>") {
			t.Fatalf("stanza %d is not one whole message: %q", i, x)
		}
	}
}

// With a rate limit, each stanza waits for its own token: no batching.
func TestOutboxRateLimitWritesOneByOne(t *testing.T) {
	o := runOutbox(t, Config{Rate: 1000, Burst: 100}, Hooks{})
	f := &fakeSender{}
	for i := 0; i < 20; i++ {
		_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Body: "x"})
	}
	o.Attach(f, nil)
	waitFor(t, "all 20", func() bool { return len(f.sent()) == 20 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writes != 20 {
		t.Fatalf("20 rate-limited stanzas in %d writes, want 20", f.writes)
	}
}

func TestOutboxWriteFailureKeepsItem(t *testing.T) {
	o := runOutbox(t, Config{}, Hooks{})
	bad := &fakeSender{fail: true}
	o.Attach(bad, nil)
	_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Body: "keep me"})
	time.Sleep(100 * time.Millisecond)
	o.Attach(nil, nil)
	good := &fakeSender{}
	o.Attach(good, nil)
	waitFor(t, "the kept message", func() bool { return len(good.sent()) == 1 })
	if !strings.Contains(good.sent()[0], "keep me") {
		t.Fatalf("wrong message: %v", good.sent())
	}
}

func TestOutboxResourceConstraintRetries(t *testing.T) {
	o := runOutbox(t, Config{}, Hooks{})
	f := &fakeSender{}
	o.Attach(f, nil)
	_ = o.Enqueue(&Item{Kind: Message, To: "r@muc", Type: "groupchat", Body: "again", ID: "m1"})
	waitFor(t, "first copy", func() bool { return len(f.sent()) == 1 })
	start := time.Now()
	if !o.HandleError("m1", stanza.ResourceConstraint) {
		t.Fatalf("resource-constraint not taken")
	}
	waitFor(t, "resend", func() bool { return len(f.sent()) == 2 })
	if d := time.Since(start); d < firstSlow/2 {
		t.Fatalf("resent after %v: no slow-down", d)
	}
	if o.HandleError("unknown", stanza.ResourceConstraint) {
		t.Fatalf("unknown id taken")
	}
	if o.HandleError("m1", stanza.ItemNotFound) {
		t.Fatalf("other conditions must not resend")
	}
}

func TestOutboxRateLimit(t *testing.T) {
	o := runOutbox(t, Config{Rate: 50, Burst: 1}, Hooks{})
	f := &fakeSender{}
	o.Attach(f, nil)
	start := time.Now()
	for i := 0; i < 11; i++ {
		_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Body: "x"})
	}
	waitFor(t, "11 sent", func() bool { return len(f.sent()) == 11 })
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("11 stanzas at 50/s took only %v", d)
	}
}

// gateAcker is a barrier the test opens by hand.
type gateAcker struct {
	mu    sync.Mutex
	calls int
	open  chan struct{}
	fail  bool
}

func (g *gateAcker) ack() error {
	g.mu.Lock()
	g.calls++
	g.mu.Unlock()
	<-g.open
	if g.fail {
		return errors.New("session gone")
	}
	return nil
}

func TestOutboxAckWindowAndDone(t *testing.T) {
	o := runOutbox(t, Config{Window: 4}, Hooks{})
	f := &fakeSender{}
	g := &gateAcker{open: make(chan struct{})}
	o.Attach(f, g.ack)
	var mu sync.Mutex
	done := 0
	for i := 0; i < 10; i++ {
		_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Body: "x", Done: func(err error) {
			if err == nil {
				mu.Lock()
				done++
				mu.Unlock()
			}
		}})
	}
	// Four go out, then the window is full until the server acknowledges.
	waitFor(t, "a full window", func() bool { return len(f.sent()) == 4 })
	time.Sleep(50 * time.Millisecond)
	if n := len(f.sent()); n != 4 {
		t.Fatalf("wrote %d stanzas with a window of 4 and no acknowledgement", n)
	}
	mu.Lock()
	if done != 0 {
		t.Fatalf("%d Done callbacks before any acknowledgement", done)
	}
	mu.Unlock()
	close(g.open) // the server answers every barrier from now on
	waitFor(t, "all written and acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(f.sent()) == 10 && done == 10
	})
}

func TestOutboxResendsUnacknowledgedAfterReconnect(t *testing.T) {
	o := runOutbox(t, Config{Window: 8}, Hooks{})
	first := &fakeSender{}
	dead := &gateAcker{open: make(chan struct{}), fail: true}
	o.Attach(first, dead.ack)
	for i := 0; i < 3; i++ {
		_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Body: fmt.Sprint("m", i)})
	}
	waitFor(t, "3 written to the first session", func() bool { return len(first.sent()) == 3 })
	// The connection dies before the server confirmed anything.
	o.Attach(nil, nil)
	close(dead.open)
	second := &fakeSender{}
	o.Attach(second, nil)
	waitFor(t, "3 written again", func() bool { return len(second.sent()) == 3 })
	for i, s := range second.sent() {
		if !strings.Contains(s, fmt.Sprint("m", i)) {
			t.Fatalf("resent out of order: %q", second.sent())
		}
	}
	if err := o.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOutboxRoomRateLimit(t *testing.T) {
	o := runOutbox(t, Config{RoomRate: 50, Burst: 1}, Hooks{})
	f := &fakeSender{}
	o.Attach(f, nil)
	o.SetRoomJoined("r@muc", true)
	start := time.Now()
	for i := 0; i < 11; i++ {
		_ = o.Enqueue(&Item{Kind: Message, To: "r@muc", Type: "groupchat", Room: "r@muc", Body: "x"})
	}
	waitFor(t, "11 room messages", func() bool { return len(f.sent()) == 11 })
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("11 room messages at 50/s took only %v", d)
	}
}

// smFake is a fakeSender that tells a stream management count, as
// transport.Conn does: base plus the stanzas it wrote.
type smFake struct {
	fakeSender
	base uint32
}

func (f *smFake) SMSent() (uint32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.base + uint32(len(f.got)), true
}

// doneCounts counts the Done callbacks per body.
type doneCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *doneCounts) item(body, room string) *Item {
	it := &Item{Kind: Message, To: "alice@localhost", Type: "chat", Body: body, Done: func(err error) {
		if err == nil {
			d.mu.Lock()
			d.n[body]++
			d.mu.Unlock()
		}
	}}
	if room != "" {
		it.To, it.Type, it.Room = room, "groupchat", room
	}
	return it
}

func (d *doneCounts) get(body string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[body]
}

// TestOutboxResumeSettlesConfirmedResendsRestOnce: a session dies with
// four stanzas (two of them room replies) unacknowledged; the next one
// resumes it, and the server says how many it had. Those are settled and
// never written again; the others are written exactly once, in order,
// the room ones once the room is open again (as bot.session does:
// detach, attach the resumed session, reopen the rooms).
func TestOutboxResumeSettlesConfirmedResendsRestOnce(t *testing.T) {
	const muc = "r@muc"
	bodies := []string{"m0", "g0", "m1", "g1"}
	for _, acked := range []uint32{0, 1, 2, 4} {
		t.Run(fmt.Sprint("acked=", acked), func(t *testing.T) {
			o := runOutbox(t, Config{Window: 8}, Hooks{})
			first := &smFake{}
			dead := &gateAcker{open: make(chan struct{}), fail: true}
			t.Cleanup(func() { close(dead.open) })
			o.Attach(first, dead.ack)
			o.SetRoomJoined(muc, true)
			d := &doneCounts{n: map[string]int{}}
			for _, b := range bodies {
				room := ""
				if b[0] == 'g' {
					room = muc
				}
				_ = o.Enqueue(d.item(b, room))
			}
			waitFor(t, "4 written to the first session", func() bool { return len(first.sent()) == 4 })

			o.Attach(nil, nil) // the connection is lost
			second := &smFake{base: acked}
			o.AttachResumed(second, func() error { return nil }, ResumeInfo{Resumed: true, Acked: acked, Known: true})
			o.SetRoomJoined(muc, true) // rooms.Resume
			want := bodies[acked:]
			waitFor(t, "the unconfirmed ones written again", func() bool { return len(second.sent()) >= len(want) })
			if err := o.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			got := second.sent()
			if len(got) != len(want) {
				t.Fatalf("after resuming with h=%d wrote %d stanzas, want %d (%q): %q", acked, len(got), len(want), want, got)
			}
			// Each written once, in order for each target (a room's
			// replies wait for the room, then go first).
			pos := map[string]int{}
			for i, s := range got {
				for _, b := range want {
					if strings.Contains(s, ">"+b+"<") {
						pos[b] = i + 1
					}
				}
			}
			for i, b := range want {
				if pos[b] == 0 {
					t.Fatalf("after resuming with h=%d wrote %q, want each of %q", acked, got, want)
				}
				for _, c := range want[i+1:] {
					if c[0] == b[0] && pos[c] < pos[b] {
						t.Fatalf("after resuming with h=%d wrote %q out of order", acked, got)
					}
				}
			}
			for _, b := range bodies {
				if n := d.get(b); n != 1 {
					t.Errorf("Done(nil) called %d times for %q, want once", n, b)
				}
			}
		})
	}
}

// TestOutboxReconnectResendsRoomItemsOnce: without resumption, the room
// replies a lost connection never confirmed are written once each after
// the room is joined again.
func TestOutboxReconnectResendsRoomItemsOnce(t *testing.T) {
	const muc = "r@muc"
	o := runOutbox(t, Config{Window: 8}, Hooks{})
	first := &fakeSender{}
	dead := &gateAcker{open: make(chan struct{}), fail: true}
	t.Cleanup(func() { close(dead.open) })
	o.Attach(first, dead.ack)
	o.SetRoomJoined(muc, true)
	for i := range 3 {
		_ = o.Enqueue(&Item{Kind: Message, To: muc, Type: "groupchat", Room: muc, Body: fmt.Sprint("g", i)})
	}
	waitFor(t, "3 written to the first session", func() bool { return len(first.sent()) == 3 })
	o.Attach(nil, nil)
	second := &fakeSender{}
	o.Attach(second, func() error { return nil })
	time.Sleep(20 * time.Millisecond)
	if n := len(second.sent()); n != 0 {
		t.Fatalf("wrote %d room messages before the room was joined again", n)
	}
	o.SetRoomJoined(muc, true)
	waitFor(t, "3 written again", func() bool { return len(second.sent()) >= 3 })
	if err := o.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if got := second.sent(); len(got) != 3 {
		t.Fatalf("wrote %d room messages again, want 3: %q", len(got), got)
	}
}

// TestOutboxWriteAcrossDetach: a write that ends after its session was
// detached is not taken for delivered: the next session decides, like
// for the session's other unacknowledged stanzas.
func TestOutboxWriteAcrossDetach(t *testing.T) {
	for _, confirmed := range []bool{false, true} {
		t.Run(fmt.Sprint("confirmed=", confirmed), func(t *testing.T) {
			o := runOutbox(t, Config{Window: 8}, Hooks{})
			first := &smFake{fakeSender: fakeSender{block: make(chan struct{})}}
			o.Attach(first, func() error { return nil })
			d := &doneCounts{n: map[string]int{}}
			_ = o.Enqueue(d.item("m0", ""))
			waitFor(t, "the writer busy", func() bool { return o.Depth() == 0 })
			o.Attach(nil, nil) // lost while the write goes on
			close(first.block) // the write "succeeds" into a dead socket
			waitFor(t, "the write", func() bool { return len(first.sent()) == 1 })
			time.Sleep(20 * time.Millisecond)
			if n := d.get("m0"); n != 0 {
				t.Fatalf("a write that ended after the session was detached was taken for delivered")
			}
			var h uint32
			if confirmed {
				h = 1
			}
			second := &smFake{base: h}
			o.AttachResumed(second, func() error { return nil }, ResumeInfo{Resumed: true, Acked: h, Known: true})
			if err := o.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			want := 1
			if confirmed {
				want = 0
			}
			if n := len(second.sent()); n != want {
				t.Fatalf("wrote %d stanzas on the resumed session, want %d", n, want)
			}
			if n := d.get("m0"); n != 1 {
				t.Fatalf("Done(nil) called %d times, want once", n)
			}
		})
	}
}

// TestOutboxQueuedRoomItemsWaitAfterLoss: room messages still queued (not
// written) when the connection is lost, and one whose write failed, wait
// for the room to be joined again instead of going to a room the bot is
// not in; then each is written once, in order.
func TestOutboxQueuedRoomItemsWaitAfterLoss(t *testing.T) {
	const muc = "r@muc"
	for _, failed := range []bool{false, true} {
		t.Run(fmt.Sprint("failed-write=", failed), func(t *testing.T) {
			o := runOutbox(t, Config{Window: 8}, Hooks{})
			first := &fakeSender{block: make(chan struct{}), fail: failed}
			var unblock sync.Once
			release := func() { unblock.Do(func() { close(first.block) }) }
			t.Cleanup(release)
			o.Attach(first, func() error { return nil })
			o.SetRoomJoined(muc, true)
			g := func(i int) *Item {
				return &Item{Kind: Message, To: muc, Type: "groupchat", Room: muc, Body: fmt.Sprint("g", i)}
			}
			// g0 is being written (blocked), g1 and g2 wait in the queue.
			_ = o.Enqueue(g(0))
			waitFor(t, "the writer busy", func() bool { return o.Depth() == 0 })
			_ = o.Enqueue(g(1))
			_ = o.Enqueue(g(2))
			o.Attach(nil, nil)
			release()
			time.Sleep(70 * time.Millisecond) // the write ends (or fails) detached
			second := &fakeSender{}
			o.Attach(second, func() error { return nil })
			time.Sleep(30 * time.Millisecond)
			if got := second.sent(); len(got) != 0 {
				t.Fatalf("wrote %q before the room was joined again", got)
			}
			o.SetRoomJoined(muc, true)
			waitFor(t, "3 written", func() bool { return len(second.sent()) >= 3 })
			if err := o.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			got := second.sent()
			if len(got) != 3 {
				t.Fatalf("wrote %d, want 3: %q", len(got), got)
			}
			for i, g := range got {
				if !strings.Contains(g, fmt.Sprintf(">g%d<", i)) {
					t.Fatalf("order: %q", got)
				}
			}
		})
	}
}

// TestOutboxLateWriteOfOlderSession: a write to session A ends only after
// A was lost, B came and was lost too. A resumption of B says nothing
// about A's stream, so the item is written again rather than settled by
// B's count.
func TestOutboxLateWriteOfOlderSession(t *testing.T) {
	o := runOutbox(t, Config{Window: 8}, Hooks{})
	first := &smFake{fakeSender: fakeSender{block: make(chan struct{})}}
	var unblock sync.Once
	release := func() { unblock.Do(func() { close(first.block) }) }
	t.Cleanup(release)
	o.Attach(first, func() error { return nil })
	d := &doneCounts{n: map[string]int{}}
	_ = o.Enqueue(d.item("m0", ""))
	waitFor(t, "the writer busy", func() bool { return o.Depth() == 0 })
	o.Attach(nil, nil)
	second := &smFake{}
	o.Attach(second, func() error { return nil })
	o.Attach(nil, nil)
	release() // A's write "succeeds" now
	waitFor(t, "the write to A", func() bool { return len(first.sent()) == 1 })
	time.Sleep(20 * time.Millisecond)
	third := &smFake{base: 5}
	o.AttachResumed(third, func() error { return nil }, ResumeInfo{Resumed: true, Acked: 5, Known: true})
	if err := o.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if got := third.sent(); len(got) != 1 || !strings.Contains(got[0], ">m0<") {
		t.Fatalf("resumed session B wrote %q, want m0 again", got)
	}
	if n := d.get("m0"); n != 1 {
		t.Fatalf("Done(nil) called %d times, want once", n)
	}
}

// TestOutboxRoomClosedHoldsQueued: when the bot is out of a room (kicked,
// the room shut down), the room's messages already queued wait for the
// rejoin with the others instead of going to a room that would refuse
// them.
func TestOutboxRoomClosedHoldsQueued(t *testing.T) {
	const muc = "r@muc"
	o := runOutbox(t, Config{}, Hooks{})
	f := &fakeSender{block: make(chan struct{})}
	var unblock sync.Once
	release := func() { unblock.Do(func() { close(f.block) }) }
	t.Cleanup(release)
	o.Attach(f, nil)
	o.SetRoomJoined(muc, true)
	_ = o.Enqueue(&Item{Kind: Message, To: "alice@localhost", Type: "chat", Body: "c0"})
	waitFor(t, "the writer busy", func() bool { return o.Depth() == 0 })
	for i := range 2 {
		_ = o.Enqueue(&Item{Kind: Message, To: muc, Type: "groupchat", Room: muc, Body: fmt.Sprint("g", i)})
	}
	o.SetRoomJoined(muc, false) // kicked
	release()
	waitFor(t, "c0 written", func() bool { return len(f.sent()) >= 1 })
	time.Sleep(30 * time.Millisecond)
	if got := f.sent(); len(got) != 1 {
		t.Fatalf("wrote %q while out of the room", got[1:])
	}
	o.SetRoomJoined(muc, true)
	waitFor(t, "the room's messages after the rejoin", func() bool { return len(f.sent()) == 3 })
	got := f.sent()
	if !strings.Contains(got[1], ">g0<") || !strings.Contains(got[2], ">g1<") {
		t.Fatalf("order: %q", got)
	}
}

// TestAllowFences: an item Hooks.Allow refuses at the last step is dropped
// with ErrFenced and counted as "fenced"; presence and allowed messages go
// out in order.
func TestAllowFences(t *testing.T) {
	var speak atomic.Bool
	var reasons sync.Map
	o := runOutbox(t, Config{}, Hooks{
		Allow:   func(it *Item) bool { return it.Kind != Message || speak.Load() },
		Dropped: func(r string) { reasons.Store(r, true) },
	})
	f := &fakeSender{}
	o.Attach(f, nil)
	fenced := make(chan error, 1)
	_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Type: "chat", Body: "standby", Done: func(err error) { fenced <- err }})
	_ = o.Enqueue(&Item{Kind: Presence, To: "r@c/n", Type: "unavailable"})
	select {
	case err := <-fenced:
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("done(%v), want ErrFenced", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a refused item was never settled")
	}
	speak.Store(true)
	_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Type: "chat", Body: "leader"})
	waitFor(t, "the presence and the allowed message", func() bool { return len(f.sent()) == 2 })
	got := strings.Join(f.sent(), "\n")
	if strings.Contains(got, "standby") || !strings.Contains(got, "leader") || !strings.Contains(got, "unavailable") {
		t.Fatalf("sent:\n%s", got)
	}
	if _, ok := reasons.Load("fenced"); !ok {
		t.Error("the refusal was not counted as fenced")
	}
	if err := o.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRoomGateStaysClosed: closing a room's gate again (a second kick, a
// rejoin that failed) keeps what waits for the room behind it; only the
// join lets it out, in order.
func TestRoomGateStaysClosed(t *testing.T) {
	o := runOutbox(t, Config{}, Hooks{})
	f := &fakeSender{}
	o.Attach(f, nil)
	const room = "r@conference.example.org"
	for _, b := range []string{"one", "two"} {
		if err := o.Enqueue(&Item{Kind: Message, To: room, Type: "groupchat", Body: b, Room: room}); err != nil {
			t.Fatal(err)
		}
	}
	o.SetRoomJoined(room, false)
	time.Sleep(100 * time.Millisecond)
	if got := f.sent(); len(got) != 0 {
		t.Fatalf("sent while the room's gate was closed: %q", got)
	}
	o.SetRoomJoined(room, true)
	waitFor(t, "both room messages", func() bool { return len(f.sent()) == 2 })
	if got := f.sent(); !strings.Contains(got[0], "one") || !strings.Contains(got[1], "two") {
		t.Fatalf("out of order: %q", got)
	}
}
