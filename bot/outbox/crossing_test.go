package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
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
