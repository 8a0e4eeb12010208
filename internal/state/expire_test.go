package state

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fired is what an expiry function was called with.
type fired struct{ key, value string }

// recorder is an expiry function that sends each call on a channel.
func recorder() (func(string, []byte), <-chan fired) {
	ch := make(chan fired, 100)
	return func(k string, v []byte) { ch <- fired{k, string(v)} }, ch
}

// next waits for one call.
func next(t *testing.T, ch <-chan fired) fired {
	t.Helper()
	select {
	case f := <-ch:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no expiry fired in 10s")
	}
	return fired{}
}

func TestExpiryFires(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	fn, ch := recorder()
	ns.OnExpire(fn)
	now := time.Now()
	err := ns.Update(func(tx Tx) error {
		// cleared is due first but Put removes its expiry; moved gets a
		// later one; so the first call must be for soon.
		for _, e := range []struct {
			key string
			at  time.Duration
		}{{"cleared", 20 * time.Millisecond}, {"moved", 30 * time.Millisecond}, {"soon", 60 * time.Millisecond}, {"later", 90 * time.Millisecond}} {
			if err := tx.PutExpiring(e.key, []byte("v-"+e.key), now.Add(e.at)); err != nil {
				return err
			}
		}
		if err := tx.Put("cleared", []byte("kept")); err != nil {
			return err
		}
		return tx.PutExpiring("moved", []byte("v-moved"), now.Add(120*time.Millisecond))
	})
	if err != nil {
		t.Fatal(err)
	}
	if at, ok := expiry(t, ns, "soon"); !ok || !at.Equal(now.Add(60*time.Millisecond)) {
		t.Errorf("Expiry(soon) = %v, %v", at, ok)
	}
	if _, ok := expiry(t, ns, "cleared"); ok {
		t.Error("Put kept an expiry")
	}
	var got []fired
	for range 3 {
		got = append(got, next(t, ch))
	}
	want := []fired{{"soon", "v-soon"}, {"later", "v-later"}, {"moved", "v-moved"}}
	if !slices.Equal(got, want) {
		t.Errorf("fired %v, want %v", got, want)
	}
	for _, k := range []string{"soon", "later", "moved"} {
		if _, ok := get(t, ns, k); ok {
			t.Errorf("%s is still there after its expiry fired", k)
		}
	}
	if v, ok := get(t, ns, "cleared"); !ok || v != "kept" {
		t.Errorf("cleared = %q, %v", v, ok)
	}
	if i, e := countIndex(t, st, "t"); i != 0 || e != 0 {
		t.Errorf("index has %d entries and %d expiries left", i, e)
	}
	select {
	case f := <-ch:
		t.Errorf("an extra expiry fired: %v", f)
	default:
	}
}

func TestDeleteRemovesExpiry(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	err := ns.Update(func(tx Tx) error {
		if err := tx.PutExpiring("k", []byte("v"), time.Now().Add(time.Hour)); err != nil {
			return err
		}
		if i, e := countIndex(t, st, "t"); i != 0 || e != 0 {
			t.Errorf("uncommitted expiry visible outside: %d, %d", i, e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i, e := countIndex(t, st, "t"); i != 1 || e != 1 {
		t.Errorf("after PutExpiring: index %d, expiries %d; want 1, 1", i, e)
	}
	if err := ns.Update(func(tx Tx) error { return tx.Delete("k") }); err != nil {
		t.Fatal(err)
	}
	if i, e := countIndex(t, st, "t"); i != 0 || e != 0 {
		t.Errorf("after Delete: index %d, expiries %d; want none", i, e)
	}
}

func TestBadExpiry(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	for _, at := range []time.Time{{}, time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		err := ns.Update(func(tx Tx) error { return tx.PutExpiring("k", []byte("v"), at) })
		if !errors.Is(err, ErrBadExpiry) {
			t.Errorf("PutExpiring(%v) = %v, want ErrBadExpiry", at, err)
		}
	}
}

func TestExpiryCatchUpAfterRestart(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	path := filepath.Join(t.TempDir(), "crier.db")
	st, err := Open(path, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ns := nsT(t, st, "cron", 1)
	other := nsT(t, st, "other", 1)
	err = ns.Update(func(tx Tx) error {
		for _, e := range []struct {
			key string
			at  time.Duration
		}{{"b", time.Hour}, {"c", 2 * time.Hour}, {"live", 5 * time.Hour}, {"a", 30 * time.Minute}} {
			if err := tx.PutExpiring(e.key, []byte("v-"+e.key), t0.Add(e.at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Update(func(tx Tx) error { return tx.PutExpiring("o", []byte("v-o"), t0.Add(time.Minute)) }); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// crier was down for three hours.
	clock.Set(t0.Add(3 * time.Hour))
	st, err = Open(path, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ns = nsT(t, st, "cron", 1)
	// Before OnExpire the due keys are kept but not seen.
	if _, ok := get(t, ns, "a"); ok {
		t.Error("a due key is seen before OnExpire")
	}
	if _, ok := expiry(t, ns, "b"); ok {
		t.Error("a due key has an Expiry")
	}
	var seen []string
	err = ns.View(func(tx Tx) error {
		return tx.ForEach("", func(k string, _ []byte) error { seen = append(seen, k); return nil })
	})
	if err != nil || !slices.Equal(seen, []string{"live"}) {
		t.Errorf("ForEach sees %q (%v), want only live", seen, err)
	}
	if i, _ := countIndex(t, st, "cron"); i != 4 {
		t.Errorf("index has %d entries before OnExpire, want all 4 kept", i)
	}

	fn, ch := recorder()
	ns.OnExpire(fn)
	got := []fired{next(t, ch), next(t, ch), next(t, ch)}
	want := []fired{{"a", "v-a"}, {"b", "v-b"}, {"c", "v-c"}}
	if !slices.Equal(got, want) {
		t.Errorf("catch-up fired %v, want %v (oldest first)", got, want)
	}
	if at, ok := expiry(t, ns, "live"); !ok || !at.Equal(t0.Add(5*time.Hour)) {
		t.Errorf("Expiry(live) = %v, %v", at, ok)
	}
	if i, e := countIndex(t, st, "cron"); i != 1 || e != 1 {
		t.Errorf("after catch-up: index %d, expiries %d; want 1, 1", i, e)
	}
	// The namespace that has not called OnExpire keeps its due key.
	if i, _ := countIndex(t, st, "other"); i != 1 {
		t.Errorf("other's due key was collected without its OnExpire (index %d)", i)
	}
	other = nsT(t, st, "other", 1)
	other.OnExpire(nil) // delete with no call
	waitFor(t, func() bool { i, e := countIndex(t, st, "other"); return i == 0 && e == 0 })
	if _, ok := get(t, other, "o"); ok {
		t.Error("OnExpire(nil) left the due key")
	}
}

func TestExpiryFunctions(t *testing.T) {
	var logs logBuffer
	st, _ := openT(t, Options{Logger: logs.logger()})
	ns := nsT(t, st, "t", 1)
	fn, ch := recorder()
	ns.OnExpire(func(k string, v []byte) {
		if k == "panics" {
			panic("callback bug")
		}
		// An expiry function runs outside bbolt's lock: it can write.
		if err := ns.Update(func(tx Tx) error { return tx.Put("seen/"+k, v) }); err != nil {
			t.Errorf("Update in an expiry function: %v", err)
		}
		fn(k, v)
	})
	now := time.Now()
	err := ns.Update(func(tx Tx) error {
		if err := tx.PutExpiring("panics", []byte("p"), now); err != nil {
			return err
		}
		return tx.PutExpiring("after", []byte("a"), now.Add(time.Millisecond))
	})
	if err != nil {
		t.Fatal(err)
	}
	if f := next(t, ch); f.key != "after" {
		t.Errorf("fired %v", f)
	}
	if v, ok := get(t, ns, "seen/after"); !ok || v != "a" {
		t.Errorf("the expiry function's write: %q, %v", v, ok)
	}
	if out := logs.String(); !strings.Contains(out, "expiry function panicked") || !strings.Contains(out, "callback bug") {
		t.Errorf("the panic is not logged:\n%s", out)
	}
}

func TestExpiryFunctionsOneAtATime(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	var mu sync.Mutex
	running, overlap := 0, false
	var order []string
	done := make(chan struct{})
	ns.OnExpire(func(k string, _ []byte) {
		mu.Lock()
		running++
		overlap = overlap || running > 1
		order = append(order, k)
		n := len(order)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		if n == 20 {
			close(done)
		}
	})
	base := time.Now().Add(-time.Hour)
	err := ns.Update(func(tx Tx) error {
		for i := range 20 {
			if err := tx.PutExpiring(string(rune('a'+19-i)), nil, base.Add(time.Duration(i)*time.Second)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not all expiries fired")
	}
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Error("two calls of one namespace ran at once")
	}
	want := []string{}
	for i := range 20 {
		want = append(want, string(rune('a'+19-i)))
	}
	if !slices.Equal(order, want) {
		t.Errorf("order %q, want by expiry time %q", order, want)
	}
}

func TestCloseWaitsForExpiryFunctions(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	inside, release := make(chan struct{}), make(chan struct{})
	var calls []string
	ns.OnExpire(func(k string, _ []byte) {
		calls = append(calls, k)
		if k == "first" {
			close(inside)
			<-release
			// Inside Close: the store refuses new work.
			if err := ns.Update(func(Tx) error { return nil }); !errors.Is(err, ErrClosed) {
				t.Errorf("Update in an expiry function during Close = %v", err)
			}
		}
	})
	err := ns.Update(func(tx Tx) error {
		if err := tx.PutExpiring("first", nil, time.Now().Add(-2*time.Second)); err != nil {
			return err
		}
		return tx.PutExpiring("second", nil, time.Now().Add(-time.Second))
	})
	if err != nil {
		t.Fatal(err)
	}
	<-inside
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while an expiry function ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	// Both keys were deleted in one sweep: the second is still called.
	if !slices.Equal(calls, []string{"first", "second"}) {
		t.Errorf("calls %q, want first and second before Close returns", calls)
	}
}

// expiry reads one key's expiry in its own View.
func expiry(t *testing.T, ns Namespace, key string) (time.Time, bool) {
	t.Helper()
	var at time.Time
	var ok bool
	if err := ns.View(func(tx Tx) error { at, ok = tx.Expiry(key); return nil }); err != nil {
		t.Fatal(err)
	}
	return at, ok
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met in 10s")
}

func TestStaleIndexEntryIsDropped(t *testing.T) {
	var logs logBuffer
	st, _ := openT(t, Options{Logger: logs.logger()})
	ns := nsT(t, st, "t", 1)
	put(t, ns, "k", "v")
	// An index entry whose key has no such expiry: the sweeper drops it
	// with a warning and leaves the key alone.
	err := st.(*boltStore).db.Update(func(btx *bolt.Tx) error {
		return btx.Bucket([]byte("t")).Bucket(bucketIndex).Put(indexKey(encodeTime(time.Now().Add(-time.Minute)), []byte("k")), []byte{})
	})
	if err != nil {
		t.Fatal(err)
	}
	fn, ch := recorder()
	ns.OnExpire(fn)
	waitFor(t, func() bool { i, _ := countIndex(t, st, "t"); return i == 0 })
	if v, ok := get(t, ns, "k"); !ok || v != "v" {
		t.Errorf("k = %q, %v after its stale index entry was dropped", v, ok)
	}
	if out := logs.String(); !strings.Contains(out, "stale expiry index entry") {
		t.Errorf("no warning:\n%s", out)
	}
	select {
	case f := <-ch:
		t.Errorf("a stale entry fired %v", f)
	default:
	}
}
