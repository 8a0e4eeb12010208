package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestWhenReady(t *testing.T) {
	var ready atomic.Bool
	var calls atomic.Int32
	done := make(chan struct{})
	go func() {
		whenReady(context.Background(), ready.Load, func() { calls.Add(1) }, time.Millisecond, time.Hour)
		close(done)
	}()
	time.Sleep(20 * time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Fatalf("called %d times before the bot was ready", n)
	}
	ready.Store(true)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("did not return after the bot became ready")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("called %d times, want 1", n)
	}

	// Never ready: called once the limit passed.
	calls.Store(0)
	whenReady(context.Background(), func() bool { return false }, func() { calls.Add(1) }, time.Millisecond, 10*time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("after the limit: called %d times, want 1", n)
	}

	// Stopped first: never called.
	calls.Store(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	whenReady(ctx, func() bool { return false }, func() { calls.Add(1) }, time.Millisecond, time.Hour)
	if n := calls.Load(); n != 0 {
		t.Fatalf("after the stop: called %d times, want 0", n)
	}
}
