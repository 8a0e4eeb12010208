package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"
)

// A write to session A that ends only once session B is attached (with no
// detach seen in between: the supervisor reconnected while the write hung).
// Presence and joins written to A hold in B only if B resumed A; otherwise
// they are dropped as stale and B never gets them, whether the write to A
// succeeded or failed. Messages always go on to B.
func TestOutboxWriteEndsAfterNextSession(t *testing.T) {
	for _, c := range []struct {
		fail, resumed, high bool
		wantOnB             bool
		wantErr             error
	}{
		{fail: false, resumed: false, high: true, wantOnB: false, wantErr: ErrClosed},
		{fail: true, resumed: false, high: true, wantOnB: false, wantErr: ErrClosed},
		{fail: false, resumed: true, high: true, wantOnB: true},
		{fail: true, resumed: true, high: true, wantOnB: true},
		{fail: true, resumed: false, high: false, wantOnB: true},
	} {
		t.Run(fmt.Sprintf("fail=%v,resumed=%v,high=%v", c.fail, c.resumed, c.high), func(t *testing.T) {
			o := runOutbox(t, Config{Window: 8}, Hooks{})
			a := &fakeSender{block: make(chan struct{}), fail: c.fail}
			var unblock sync.Once
			release := func() { unblock.Do(func() { close(a.block) }) }
			t.Cleanup(release)
			o.Attach(a, func() error { return nil })
			var mu sync.Mutex
			var dones []error
			it := &Item{Kind: Presence, To: "r@muc/crier", Body: "p0", Done: func(err error) {
				mu.Lock()
				dones = append(dones, err)
				mu.Unlock()
			}}
			if c.high {
				it.Priority = High
			} else {
				it.Kind, it.To, it.Type = Message, "alice@localhost", "chat"
			}
			if err := o.Enqueue(it); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the writer busy", func() bool { return o.Depth() == 0 })
			b := &fakeSender{}
			o.AttachResumed(b, func() error { return nil }, ResumeInfo{Resumed: c.resumed})
			release()
			if c.wantOnB {
				waitFor(t, "the item written to B", func() bool { return len(b.sent()) == 1 })
				if err := o.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else {
				waitFor(t, "the item settled", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(dones) > 0
				})
				time.Sleep(70 * time.Millisecond) // a wrong resend would be written by now
			}
			mu.Lock()
			got := append([]error(nil), dones...)
			mu.Unlock()
			if len(got) != 1 || !errors.Is(got[0], c.wantErr) {
				t.Fatalf("Done called with %v, want once with %v", got, c.wantErr)
			}
			if sent := b.sent(); c.wantOnB != (len(sent) == 1) || len(sent) > 1 {
				t.Fatalf("B got %q, want the item: %v", sent, c.wantOnB)
			}
			if sent := b.sent(); c.wantOnB && strings.HasPrefix(sent[0], "<presence") != c.high {
				t.Fatalf("B got %q, want the %s", sent, map[bool]string{true: "presence", false: "message"}[c.high])
			}
		})
	}
}

// A write that fails while no session is attached leaves its items to the
// next session, as the unacknowledged ones: a presence or join written to
// the lost session is written again into a session that resumed it.
func TestOutboxFailedWriteWhileDetached(t *testing.T) {
	o := runOutbox(t, Config{Window: 8}, Hooks{})
	a := &fakeSender{block: make(chan struct{}), fail: true}
	var unblock sync.Once
	release := func() { unblock.Do(func() { close(a.block) }) }
	t.Cleanup(release)
	o.Attach(a, func() error { return nil })
	if err := o.Enqueue(&Item{Kind: Presence, To: "r@muc/crier", Priority: High}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the writer busy", func() bool { return o.Depth() == 0 })
	o.Attach(nil, nil)
	release()
	time.Sleep(70 * time.Millisecond) // the failed write is back in the outbox
	b := &fakeSender{}
	o.AttachResumed(b, func() error { return nil }, ResumeInfo{Resumed: true})
	waitFor(t, "the presence written to the resumed session", func() bool { return len(b.sent()) == 1 })
}

// TestOutboxRoomBounceWaitsForRejoin: a room answers a message with
// not-acceptable (the server does not have the bot in the room any more).
// The message is not settled by the acknowledgement that covers it, the
// room's gate closes and RoomBounced asks for the rejoin; once the room
// is joined again the message is written again and settled once. An
// answer that comes after the acknowledgement still gets the message
// resent, and Done is still called once.
func TestOutboxRoomBounceWaitsForRejoin(t *testing.T) {
	const muc = "r@muc"
	var mu sync.Mutex
	var bounced []string
	o := runOutbox(t, Config{Window: 8}, Hooks{RoomBounced: func(room string) {
		mu.Lock()
		bounced = append(bounced, room)
		mu.Unlock()
	}})
	f := &fakeSender{}
	g := &gateAcker{open: make(chan struct{})}
	o.Attach(f, g.ack)
	o.SetRoomJoined(muc, true)
	d := &doneCounts{n: map[string]int{}}
	b0 := d.item("b0", muc)
	b0.ID = "b0"
	if err := o.Enqueue(b0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b0 written", func() bool { return len(f.sent()) == 1 })
	if !o.HandleError("b0", stanza.NotAcceptable) {
		t.Fatal("not-acceptable from the room not taken")
	}
	close(g.open) // the acknowledgement covering b0's first copy
	time.Sleep(70 * time.Millisecond)
	if n := d.get("b0"); n != 0 {
		t.Fatalf("a bounced message was settled as delivered (Done(nil) %d times)", n)
	}
	if got := f.sent(); len(got) != 1 {
		t.Fatalf("written again before the rejoin: %q", got)
	}
	mu.Lock()
	if len(bounced) != 1 || bounced[0] != muc {
		t.Fatalf("RoomBounced calls %q, want [%s]", bounced, muc)
	}
	mu.Unlock()
	o.SetRoomJoined(muc, true)
	waitFor(t, "b0 written again", func() bool { return len(f.sent()) == 2 })
	if err := o.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.get("b0"); n != 1 {
		t.Fatalf("Done(nil) called %d times after the resend, want once", n)
	}

	// Settled first, bounced after: written again, Done not called twice.
	b1 := d.item("b1", muc)
	b1.ID = "b1"
	if err := o.Enqueue(b1); err != nil {
		t.Fatal(err)
	}
	if err := o.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.get("b1"); n != 1 {
		t.Fatalf("b1 settled %d times, want once", n)
	}
	if !o.HandleError("b1", stanza.ItemNotFound) {
		t.Fatal("item-not-found from the room not taken")
	}
	o.SetRoomJoined(muc, true)
	waitFor(t, "b1 written again", func() bool { return len(f.sent()) == 4 })
	if err := o.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.get("b1"); n != 1 {
		t.Fatalf("b1 Done(nil) %d times, want once", n)
	}
	// Not a room item: left to the caller, as before.
	if o.HandleError("b1", stanza.Forbidden) {
		t.Fatal("forbidden taken as a bounce")
	}
}
