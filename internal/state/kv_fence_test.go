package state

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"crier/internal/natstest"
)

// TestKVFenceRefusesStaleLeader: instance A leads (fence token 5) and
// writes; B wins a later term (token 9) and raises the fence; A, which
// still believes it leads, has its next write refused by NATS with
// ErrFenced, reported to its callback, and nothing of it lands.
func TestKVFenceRefusesStaleLeader(t *testing.T) {
	srv := natstest.Start(t)
	fenceStale(t, srv.URL(), srv.URL(), 1)
}

// TestKVFenceRefusesStaleLeaderCluster: the same on a 3-node cluster with
// the bucket replicated three times, A and B on different nodes, and the
// fenced leader's concurrent commits (which check the same fence subject)
// all succeeding.
func TestKVFenceRefusesStaleLeaderCluster(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	fenceStale(t, c.Servers[0].URL(), c.Servers[2].URL(), 3)
}

func fenceStale(t *testing.T, urlA, urlB string, replicas int) {
	_, jsA := natstest.Connect(t, urlA)
	_, jsB := natstest.Connect(t, urlB)
	a := openKV(t, jsA, "ha-state", KVOptions{Replicas: replicas})
	b := openKV(t, jsB, "ha-state", KVOptions{Replicas: replicas})
	fa, fb := a.(Fencer), b.(Fencer)

	var refusedA atomic.Int64
	if err := fa.Fence("e1", 5, func(error) { refusedA.Add(1) }); err != nil {
		t.Fatal(err)
	}
	nsA := nsT(t, a, "rooms", 1)
	put(t, nsA, "r1", "a-leading")
	// Concurrent commits of the fenced leader, in several namespaces.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns, err := a.Namespace(fmt.Sprintf("p%d", i%4), 1)
			if err == nil {
				err = ns.Update(func(tx Tx) error { return tx.Put(fmt.Sprintf("k%d", i), []byte("v")) })
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a fenced leader's concurrent commit: %v", err)
		}
	}
	if n := refusedA.Load(); n != 0 {
		t.Fatalf("%d refusals before any other leader", n)
	}
	nsB := nsT(t, b, "rooms", 1)
	if v, ok := get(t, nsB, "r1"); !ok || v != "a-leading" {
		t.Fatalf("B reads r1 = %q, %v; want A's write", v, ok)
	}

	if err := fb.Fence("e1", 9, nil); err != nil {
		t.Fatal(err)
	}
	put(t, nsB, "r2", "b-leading")

	// A's write, in a transaction that also touches a key B wrote.
	err := nsA.Update(func(tx Tx) error {
		if err := tx.Put("r1", []byte("a-stale")); err != nil {
			return err
		}
		return tx.Put("r3", []byte("a-stale"))
	})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("stale leader's Update = %v, want ErrFenced", err)
	}
	if n := refusedA.Load(); n != 1 {
		t.Fatalf("refusals reported = %d, want 1", n)
	}
	if v, ok := get(t, nsB, "r1"); !ok || v != "a-leading" {
		t.Errorf("r1 = %q, %v after the refused write; want a-leading", v, ok)
	}
	if v, ok := get(t, nsB, "r3"); ok {
		t.Errorf("r3 = %q: the refused batch landed in part", v)
	}
	// The expiry collector's and schema writes go through the same commit.
	if err := nsA.SetSchema(2); !errors.Is(err, ErrFenced) {
		t.Errorf("stale SetSchema = %v, want ErrFenced", err)
	}
	if nsB.Schema() != 1 {
		t.Errorf("schema = %d after the refused SetSchema, want 1", nsB.Schema())
	}
	// A cannot raise the fence again with its old term.
	if err := fa.Fence("e1", 5, nil); !errors.Is(err, ErrFenced) {
		t.Errorf("Fence(5) after Fence(9) = %v, want ErrFenced", err)
	}
	// The new leader's writes go on.
	put(t, nsB, "r2", "b-again")

	// A steps down: its own writes as a standby are not fenced.
	fa.Unfence(5)
	put(t, nsA, "standby", "a")
	if v, ok := get(t, nsB, "standby"); !ok || v != "a" {
		t.Errorf("standby's write = %q, %v", v, ok)
	}
	// Unfence of another term leaves B's fence alone.
	fb.Unfence(5)
	if fb.(*kvStore).fence() == nil {
		t.Error("Unfence(5) lifted term 9's fence")
	}
}

// TestKVFenceKeepsConflicts: a fenced store's ordinary conflicts on a key
// are still conflicts (run again), not fencing refusals.
func TestKVFenceKeepsConflicts(t *testing.T) {
	srv := natstest.Start(t)
	_, jsA := natstest.Connect(t, srv.URL())
	_, jsB := natstest.Connect(t, srv.URL())
	a := openKV(t, jsA, "ha-state", KVOptions{})
	b := openKV(t, jsB, "ha-state", KVOptions{})
	var refused atomic.Int64
	if err := a.(Fencer).Fence("e1", 3, func(error) { refused.Add(1) }); err != nil {
		t.Fatal(err)
	}
	nsA, nsB := nsT(t, a, "n", 1), nsT(t, b, "n", 1)
	put(t, nsA, "k", "0")
	runs := 0
	err := nsA.Update(func(tx Tx) error {
		runs++
		v, _ := tx.Get("k")
		if runs == 1 {
			put(t, nsB, "k", "b") // an unfenced standby's write in between
		}
		return tx.Put("k", append(v, '+'))
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 || refused.Load() != 0 {
		t.Fatalf("runs = %d, refusals = %d; want 2 runs (one conflict) and no refusal", runs, refused.Load())
	}
	if v, _ := get(t, nsB, "k"); v != "b+" {
		t.Errorf("k = %q, want b+", v)
	}
}

// TestKVFenceEpoch: a fence of another epoch (a lease bucket made anew,
// its tokens counting from 1 again) is replaced whatever its token; within
// an epoch an older token is refused.
func TestKVFenceEpoch(t *testing.T) {
	st, _ := kvSingle(t)
	f := st.(Fencer)
	if err := f.Fence("old", 500, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Fence("old", 7, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("older token of the same epoch: %v, want ErrFenced", err)
	}
	if err := f.Fence("new", 7, nil); err != nil {
		t.Fatalf("token 7 of a new epoch over 500 of the old: %v", err)
	}
	if err := f.Fence("new", 6, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("older token of the new epoch: %v, want ErrFenced", err)
	}
	if err := f.Fence("a b", 8, nil); err == nil {
		t.Error("an epoch with a space was taken")
	}
}
