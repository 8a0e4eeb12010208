package outbox

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookSender is a fakeSender that calls before ahead of each write with
// the number of stanzas written so far.
type hookSender struct {
	fakeSender
	before func(written int)
}

func (h *hookSender) Send(ctx context.Context, r xml.TokenReader) error {
	if h.before != nil {
		h.before(len(h.sent()))
	}
	return h.fakeSender.Send(ctx, r)
}

// positionOf returns the index of the first stanza containing s, or -1.
func positionOf(got []string, s string) int {
	for i, g := range got {
		if strings.Contains(g, s) {
			return i
		}
	}
	return -1
}

// TestInteractiveOvertakesFanOut: a reply queued while a fan-out of 1,000
// stanzas drains is the next stanza written, not the 1,001st.
func TestInteractiveOvertakesFanOut(t *testing.T) {
	o := New(Config{Queue: 2000}, Hooks{})
	queuedAt := -1
	f := &hookSender{}
	f.before = func(written int) {
		if written >= 100 && queuedAt < 0 {
			queuedAt = written
			if err := o.Enqueue(&Item{Kind: Message, To: "alice@x", Type: "chat", Body: "pong", Priority: Interactive}); err != nil {
				t.Error(err)
			}
		}
	}
	o.Attach(f, nil)
	for i := range 1000 {
		if err := o.Enqueue(&Item{Kind: Message, To: fmt.Sprintf("u%d@x", i), Type: "headline", Body: "storm"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := o.Drain(context.Background()); n != 1001 {
		t.Fatalf("drained %d, want 1001", n)
	}
	got := f.sent()
	pos := positionOf(got, ">pong<")
	// The write under way when the reply came carries up to maxBatch
	// stanzas taken before it; the reply leads the next one.
	if pos < 0 || pos-queuedAt > maxBatch {
		t.Fatalf("reply queued after %d stanzas was written at position %d (%d bulk stanzas in between, at most %d allowed)", queuedAt, pos, pos-queuedAt, maxBatch)
	}
}

// TestInteractiveUsesWindowReserve: a fan-out that fills the ack window
// does not hold a reply until the next acknowledgement.
func TestInteractiveUsesWindowReserve(t *testing.T) {
	o := runOutbox(t, Config{Window: 8, Queue: 100}, Hooks{})
	f := &fakeSender{}
	g := &gateAcker{open: make(chan struct{})}
	t.Cleanup(sync.OnceFunc(func() { close(g.open) }))
	o.Attach(f, g.ack)
	for i := range 50 {
		_ = o.Enqueue(&Item{Kind: Message, To: fmt.Sprintf("u%d@x", i), Body: "storm"})
	}
	waitFor(t, "a full window", func() bool { return len(f.sent()) == 8 })
	if err := o.Enqueue(&Item{Kind: Message, To: "alice@x", Body: "pong", Priority: Interactive}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reply", func() bool { return positionOf(f.sent(), ">pong<") >= 0 })
	time.Sleep(20 * time.Millisecond)
	if got := f.sent(); len(got) != 9 || positionOf(got, ">pong<") != 8 {
		t.Fatalf("wrote %d stanzas (reply at %d), want the 8 of the window and the reply", len(got), positionOf(got, ">pong<"))
	}
	// The reserve is bounded too.
	for i := range 2 * interactiveReserve(8) {
		_ = o.Enqueue(&Item{Kind: Message, To: "alice@x", Body: fmt.Sprint("more", i), Priority: Interactive})
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(f.sent()); n != 8+interactiveReserve(8) {
		t.Fatalf("wrote %d stanzas without acknowledgement, want window 8 + reserve %d", n, interactiveReserve(8))
	}
}

// TestFairAcrossTargets: a room with a long backlog delays another
// target's item by one of its own per turn; each target keeps its order.
func TestFairAcrossTargets(t *testing.T) {
	o := New(Config{Queue: 2000}, Hooks{})
	f := &fakeSender{}
	o.Attach(f, nil)
	o.SetRoomJoined("busy@muc", true)
	o.SetRoomJoined("quiet@muc", true)
	for i := range 500 {
		_ = o.Enqueue(&Item{Kind: Message, To: "busy@muc", Type: "groupchat", Room: "busy@muc", Body: fmt.Sprint("b", i)})
	}
	_ = o.Enqueue(&Item{Kind: Message, To: "quiet@muc", Type: "groupchat", Room: "quiet@muc", Body: "q0"})
	_ = o.Enqueue(&Item{Kind: Message, To: "quiet@muc", Type: "groupchat", Room: "quiet@muc", Body: "q1"})
	_ = o.Enqueue(&Item{Kind: Message, To: "bob@x", Type: "chat", Body: "c0"})
	o.Drain(context.Background())
	got := f.sent()
	if len(got) != 503 {
		t.Fatalf("wrote %d, want 503", len(got))
	}
	// Turns: b0 q0 c0 b1 q1 b2 ...
	for s, want := range map[string]int{">q0<": 1, ">c0<": 2, ">q1<": 4} {
		if p := positionOf(got, s); p != want {
			t.Errorf("%s at position %d, want %d: %q", s, p, want, got[:6])
		}
	}
	last := -1
	for i := range 500 {
		p := positionOf(got, fmt.Sprintf(">b%d<", i))
		if p <= last {
			t.Fatalf("b%d at %d, after b%d at %d: a target's order changed", i, p, i-1, last)
		}
		last = p
	}
}

// TestInteractiveOwnQueue: a bulk queue filled by a storm refuses more
// bulk, not a reply.
func TestInteractiveOwnQueue(t *testing.T) {
	o := New(Config{Queue: 10}, Hooks{})
	for i := range 10 {
		if err := o.Enqueue(&Item{Kind: Message, To: fmt.Sprintf("u%d@x", i), Body: "storm"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Enqueue(&Item{Kind: Message, To: "u@x", Body: "storm"}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("11th bulk item: %v, want ErrQueueFull", err)
	}
	if err := o.Enqueue(&Item{Kind: Message, To: "alice@x", Body: "pong", Priority: Interactive}); err != nil {
		t.Fatalf("reply refused by a full bulk queue: %v", err)
	}
	if d := o.Depth(); d != 11 {
		t.Fatalf("depth %d, want 11", d)
	}
}

// TestInteractiveWaitsForRoom: unlike High items, an interactive room
// reply waits behind its room's gate, then goes ahead of the room's bulk
// items.
func TestInteractiveWaitsForRoom(t *testing.T) {
	o := New(Config{}, Hooks{})
	f := &fakeSender{}
	o.Attach(f, nil)
	const muc = "r@muc"
	_ = o.Enqueue(&Item{Kind: Message, To: muc, Type: "groupchat", Room: muc, Body: "cron"})
	_ = o.Enqueue(&Item{Kind: Message, To: muc, Type: "groupchat", Room: muc, Body: "pong", Priority: Interactive})
	if n := o.Drain(context.Background()); n != 0 {
		t.Fatalf("wrote %d stanzas into a room not joined", n)
	}
	o.SetRoomJoined(muc, true)
	o.Drain(context.Background())
	got := f.sent()
	if len(got) != 2 || positionOf(got, ">pong<") != 0 {
		t.Fatalf("after the join wrote %q, want the reply first", got)
	}
	// Out of the room again: a queued reply goes back behind the gate.
	o.SetRoomJoined(muc, false)
	_ = o.Enqueue(&Item{Kind: Message, To: muc, Type: "groupchat", Room: muc, Body: "pong2", Priority: Interactive})
	if n := o.Drain(context.Background()); n != 0 {
		t.Fatalf("wrote %d stanzas into a room left", n)
	}
}

// TestFailedWriteOfOlderSessionGoesToNewOne: a write that fails after a
// new session was attached is written to the new session, not parked for
// a session after it.
func TestFailedWriteOfOlderSessionGoesToNewOne(t *testing.T) {
	o := runOutbox(t, Config{}, Hooks{})
	first := &fakeSender{block: make(chan struct{}), fail: true}
	release := sync.OnceFunc(func() { close(first.block) })
	t.Cleanup(release)
	o.Attach(first, nil)
	_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Body: "m0"})
	_ = o.Enqueue(&Item{Kind: Presence, Priority: High, To: "r@muc/n"})
	waitFor(t, "the writer busy", func() bool { return o.Depth() == 0 })
	second := &fakeSender{}
	o.Attach(second, nil)
	release() // the write to the first session fails now
	waitFor(t, "m0 on the new session", func() bool { return positionOf(second.sent(), ">m0<") >= 0 })
	time.Sleep(20 * time.Millisecond)
	if got := second.sent(); len(got) != 1 {
		t.Fatalf("new session got %q, want only m0 (the old session's presence is stale)", got)
	}
}

// TestConfigDefaults: zero limits take the documented defaults, and with
// them a prompt write is not reported as stuck.
func TestConfigDefaults(t *testing.T) {
	stuck := 0
	o := New(Config{}, Hooks{Stuck: func() { stuck++ }})
	want := Config{Queue: 1000, RoomQueue: 100, Burst: 10, Write: 30 * time.Second, Window: DefaultAckWindow,
		AckDelay: DefaultAckDelay, AckUrgent: DefaultAckUrgent}
	if o.cfg != want {
		t.Fatalf("defaults %+v, want %+v", o.cfg, want)
	}
	f := &fakeSender{}
	o.Attach(f, nil)
	_ = o.Enqueue(&Item{Kind: Message, To: "a@b", Body: "x"})
	o.Drain(context.Background())
	time.Sleep(20 * time.Millisecond)
	if stuck != 0 || len(f.sent()) != 1 {
		t.Fatalf("stuck reported %d times, %d written", stuck, len(f.sent()))
	}
}
