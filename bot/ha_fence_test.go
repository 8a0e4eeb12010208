package bot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"crier/internal/lease"
	"crier/internal/natstest"
	"crier/internal/state"
)

// syncBuffer is a log sink safe for the lease's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHAFencedStateWrites: instance A wins the lease and fences the shared
// state with its token; a later leader B (simulated: A is paused and still
// believes it leads) raises the fence with a newer token. A's next writes
// write is refused by NATS, counted in crier_ha_fencing_refusals_total,
// logged once per term, and A steps down; nothing of A's lands in the
// bucket.
func TestHAFencedStateWrites(t *testing.T) {
	srv := natstest.Start(t)
	_, jsA := natstest.Connect(t, srv.URL())
	_, jsB := natstest.Connect(t, srv.URL())
	ctx := natstest.Context(t, 30*time.Second)

	storeA, err := state.OpenKV(jsA, "crier-ha-state", state.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = storeA.Close() })
	storeB, err := state.OpenKV(jsB, "crier-ha-state", state.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = storeB.Close() })

	logs := &syncBuffer{}
	a := &Bot{hm: newHostMetrics(prometheus.NewRegistry()), log: slog.New(slog.NewTextHandler(logs, nil)), store: storeA}
	changes := make(chan lease.Change, 8)
	kv, err := lease.Bucket(ctx, jsA, "crier-ha", 0, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lease.New(ctx, jsA, kv, lease.Options{ID: "a", TTL: 3 * time.Second, OnChange: func(c lease.Change) {
		a.fenceState(c) // what onLeadership does first
		changes <- c
	}})
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := leaseEpoch(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	a.ha.Store(&haRun{lease: l, epoch: epoch})
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	var won lease.Change
	select {
	case won = <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("A did not win the lease")
	}
	if !won.Leading {
		t.Fatalf("first change %+v, want leading", won)
	}
	// The leader's stanza ids carry its token.
	if id, want := a.nextID(), fmt.Sprintf("-t%d-", won.Token); !strings.Contains(id, want) {
		t.Errorf("leader's id %q lacks %q", id, want)
	}
	nsA, err := storeA.Namespace("core", 1)
	if err != nil {
		t.Fatal(err)
	}
	write := func(ns state.Namespace, k, v string) error {
		return ns.Update(func(tx state.Tx) error { return tx.Put(k, []byte(v)) })
	}
	if err := write(nsA, "room", "a-leading"); err != nil {
		t.Fatalf("leader's write: %v", err)
	}

	// B leads a later term and fences the state.
	if err := storeB.(state.Fencer).Fence(epoch, won.Token+1000, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Leading(); !ok {
		t.Fatal("A's lease ended by itself; the test needs A still believing it leads")
	}
	err = write(nsA, "room", "a-stale")
	if !errors.Is(err, state.ErrFenced) {
		t.Fatalf("stale write = %v, want state.ErrFenced", err)
	}
	// A second refusal of the term (a write that raced the step-down) is
	// counted, not logged again.
	a.onFenced(won.Token, err)
	var m dto.Metric
	if err := a.hm.haFenced.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 2 {
		t.Errorf("crier_ha_fencing_refusals_total = %v, want 2", n)
	}
	select {
	case c := <-changes:
		if c.Leading || !errors.Is(c.Err, state.ErrFenced) {
			t.Errorf("change after the refusal %+v, want a step-down for state.ErrFenced", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("A did not step down after the refusal")
	}
	if _, ok := l.Leading(); ok {
		t.Error("A still leads after a fencing refusal")
	}
	if n := strings.Count(logs.String(), "write refused, a newer leader holds the fence"); n != 1 {
		t.Errorf("refusal logged %d times, want once:\n%s", n, logs.String())
	}
	nsB, err := storeB.Namespace("core", 1)
	if err != nil {
		t.Fatal(err)
	}
	_ = nsB.View(func(tx state.Tx) error {
		if v, _ := tx.Get("room"); string(v) != "a-leading" {
			t.Errorf("room = %q in the bucket, want a-leading (nothing of the stale term)", v)
		}
		return nil
	})
	if id := a.nextID(); strings.Contains(id, "-t") {
		t.Errorf("a standby's id %q carries a token", id)
	}
	// Stepped down, A's writes are a standby's: not fenced.
	if err := write(nsA, "standby", "a"); err != nil {
		t.Errorf("standby's write: %v", err)
	}
	// A term that begins with a token older than the fence's (an instance
	// paused between winning and fencing) is refused at once: counted, and
	// it does not lead unfenced.
	if a.fenceState(lease.Change{Leading: true, Token: won.Token}) {
		t.Error("fenceState accepted a term older than the fence")
	}
	if err := a.hm.haFenced.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 3 {
		t.Errorf("crier_ha_fencing_refusals_total = %v after a stale term's fence, want 3", n)
	}
	if err := write(nsA, "standby2", "a"); err != nil {
		t.Errorf("write after the refused fence: %v (a refused fence must leave the store unfenced)", err)
	}
}
