package natsrelay

import (
	"errors"
	"fmt"
	"testing"

	"crier/plugins"
)

func TestWindowLifecycle(t *testing.T) {
	w := newWindow(10)
	acks, naks := 0, 0
	d := delivery{ack: func() { acks++ }, nak: func() { naks++ }}
	e, todo, st := w.begin("k", []string{"a", "b"}, d)
	if st != beginSend || len(todo) != 2 {
		t.Fatalf("begin = %v %v", todo, st)
	}
	if _, _, st := w.begin("k", []string{"a", "b"}, d); st != beginWaiting {
		t.Fatalf("second copy while in flight: state %v", st)
	}
	if r := w.settle(e, "a", nil); r.ds != nil {
		t.Fatal("settled before the last send")
	}
	r := w.settle(e, "b", errLost)
	if r.ok || len(r.ds) != 2 || fmt.Sprint(r.sent) != "[a]" {
		t.Fatalf("settle = %d deliveries, ok %v, sent %v; want the copy and the waiter, failed, a sent", len(r.ds), r.ok, r.sent)
	}
	_, todo, st = w.begin("k", []string{"a", "b"}, d)
	if st != beginSend || fmt.Sprint(todo) != "[b]" {
		t.Fatalf("after partial failure: %v %v, want only b", todo, st)
	}
	if r := w.settle(e, "b", nil); !r.ok || len(r.ds) != 1 || len(r.sent) != 2 {
		t.Fatalf("settle = %d, %v, sent %v", len(r.ds), r.ok, r.sent)
	}
	if _, _, st := w.begin("k", []string{"a", "b"}, d); st != beginAcked {
		t.Fatalf("fully sent message: state %v, want acked", st)
	}
	_ = acks + naks
}

// Recipients another instance sent the message to (the shared window) are
// not sent again; a recipient left to the leader makes the outcome a
// handover, not a failure to retry later.
func TestWindowKnownAndHandover(t *testing.T) {
	w := newWindow(10)
	d := delivery{ack: func() {}, nak: func() {}}
	if _, _, st := w.begin("k", []string{"a", "b"}, d, "a", "b"); st != beginAcked {
		t.Fatalf("every recipient known as sent elsewhere: state %v, want acked", st)
	}
	e, todo, st := w.begin("j", []string{"a", "room"}, d, "a")
	if st != beginSend || fmt.Sprint(todo) != "[room]" {
		t.Fatalf("begin with a known: %v %v, want only room", todo, st)
	}
	r := w.settle(e, "room", fmt.Errorf("standby: %w", errHandover))
	if r.ok || !r.handover || fmt.Sprint(r.sent) != "[a]" {
		t.Fatalf("handover settle: %+v", r)
	}
	e, _, _ = w.begin("j", []string{"a", "room"}, d)
	if r := w.settle(e, "room", errLost); r.handover || r.ok {
		t.Fatalf("a plain failure after a handover is still reported as one: %+v", r)
	}
}

func TestWindowBounded(t *testing.T) {
	w := newWindow(5)
	d := delivery{ack: func() {}, nak: func() {}}
	busy, _, _ := w.begin("busy", []string{"a"}, d)
	for i := range 20 {
		e, _, _ := w.begin(fmt.Sprint(i), []string{"a"}, d)
		w.settle(e, "a", nil)
	}
	if n := w.len(); n > 6 {
		t.Fatalf("window holds %d ids, bound is 5 (+1 in flight)", n)
	}
	// The entry in flight is never evicted, so its copies still wait.
	if _, _, st := w.begin("busy", []string{"a"}, d); st != beginWaiting {
		t.Fatalf("in-flight entry evicted: state %v", st)
	}
	w.settle(busy, "a", nil)
	if _, _, st := w.begin("19", []string{"a"}, d); st != beginAcked {
		t.Fatalf("most recent id forgotten: state %v", st)
	}
	if _, _, st := w.begin("0", []string{"a"}, d); st != beginSend {
		t.Fatalf("oldest id still remembered: state %v", st)
	}
}

func TestTrySend(t *testing.T) {
	var got []error
	settle := func(err error) { got = append(got, err) }
	// Refused: done is called by the bot too, and must be ignored.
	err := trySend(func(_ plugins.Message, done func(error)) error {
		done(plugins.ErrBusy)
		return plugins.ErrBusy
	}, plugins.Message{}, settle)
	if !errors.Is(err, plugins.ErrBusy) || len(got) != 0 {
		t.Fatalf("refused: err %v, settled %v", err, got)
	}
	// Accepted with done called before Send returns, then twice.
	var keep func(error)
	err = trySend(func(_ plugins.Message, done func(error)) error {
		done(nil)
		keep = done
		return nil
	}, plugins.Message{}, settle)
	keep(errLost)
	if err != nil || len(got) != 1 || got[0] != nil {
		t.Fatalf("accepted: err %v, settled %v; want one nil", err, got)
	}
	// Accepted, done later.
	got = nil
	err = trySend(func(_ plugins.Message, done func(error)) error { keep = done; return nil }, plugins.Message{}, settle)
	if err != nil || len(got) != 0 {
		t.Fatal("settled before done")
	}
	keep(errLost)
	if len(got) != 1 || !errors.Is(got[0], errLost) {
		t.Fatalf("settled %v", got)
	}
}
