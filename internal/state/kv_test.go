package state

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crier/internal/natstest"
)

// openKV opens a KV store on the bucket through js, closed at the test's end.
func openKV(t testing.TB, js jetstream.JetStream, bucket string, opts KVOptions) Store {
	t.Helper()
	st, err := OpenKV(js, bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// kvSingle opens a KV store on a fresh in-process server.
func kvSingle(t *testing.T) (Store, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	return openKV(t, js, "state", KVOptions{}), js
}

func TestKVUpdateCommitsOrRollsBack(t *testing.T) {
	st, _ := kvSingle(t)
	ns := nsT(t, st, "t", 1)
	put(t, ns, "k", "old")
	errMine := errors.New("mine")
	err := ns.Update(func(tx Tx) error {
		if err := tx.Put("k", []byte("new")); err != nil {
			return err
		}
		return errMine
	})
	if !errors.Is(err, errMine) {
		t.Fatalf("Update = %v, want errMine", err)
	}
	err = ns.Update(func(tx Tx) error {
		_ = tx.Put("k", []byte("new"))
		panic("boom")
	})
	if !errors.Is(err, ErrPanic) {
		t.Fatalf("Update = %v, want ErrPanic", err)
	}
	if v, ok := get(t, ns, "k"); !ok || v != "old" {
		t.Fatalf("after rolled back Updates: k = %q, %v", v, ok)
	}
	err = ns.Update(func(tx Tx) error {
		if v, ok := tx.Get("k"); !ok || string(v) != "old" {
			return fmt.Errorf("read %q, %v", v, ok)
		}
		if err := tx.Put("k", []byte("new")); err != nil {
			return err
		}
		// A transaction reads its own writes.
		if v, ok := tx.Get("k"); !ok || string(v) != "new" {
			return fmt.Errorf("read own write %q, %v", v, ok)
		}
		return tx.Put("k2", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := get(t, ns, "k"); !ok || v != "new" {
		t.Errorf("k = %q, %v; want new", v, ok)
	}
	if v, ok := get(t, ns, "k2"); !ok || v != "" {
		t.Errorf("empty value k2 = %q, %v; want present and empty", v, ok)
	}
	var werr error
	if err := ns.View(func(tx Tx) error { werr = tx.Put("k", []byte("x")); return nil }); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(werr, ErrReadOnly) {
		t.Errorf("Put in View = %v, want ErrReadOnly", werr)
	}
	if err := ns.Update(func(tx Tx) error { return tx.Delete("k") }); err != nil {
		t.Fatal(err)
	}
	if v, ok := get(t, ns, "k"); ok {
		t.Errorf("deleted k = %q, still there", v)
	}
	// A key deleted can be written again (its marker's revision is the
	// one expected).
	put(t, ns, "k", "again")
	if v, ok := get(t, ns, "k"); !ok || v != "again" {
		t.Errorf("k written after delete = %q, %v", v, ok)
	}
}

// TestKVKeys writes keys with every kind of byte that KV keys cannot hold,
// in namespaces whose names need escaping too, and lists them back.
func TestKVKeys(t *testing.T) {
	st, _ := kvSingle(t)
	keys := []string{"a", "a.b", "a b", "a*", "a>", "acl/alice@example.org", "=", "==41", "é", "\x00\xff", "a.", ".a", "x/y/z"}
	for _, name := range []string{"plain", "with.dots", "-_."} {
		ns := nsT(t, st, name, 1)
		for i, k := range keys {
			put(t, ns, k, strconv.Itoa(i))
		}
		for i, k := range keys {
			if v, ok := get(t, ns, k); !ok || v != strconv.Itoa(i) {
				t.Errorf("%s: %q = %q, %v; want %d", name, k, v, ok, i)
			}
		}
		var got []string
		err := ns.View(func(tx Tx) error {
			return tx.ForEach("", func(k string, _ []byte) error { got = append(got, k); return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(keys)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: ForEach = %q, want %q", name, got, want)
		}
		got = nil
		err = ns.View(func(tx Tx) error {
			return tx.ForEach("a.", func(k string, _ []byte) error { got = append(got, k); return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"a.", "a.b"}; !slices.Equal(got, want) {
			t.Errorf("%s: ForEach(a.) = %q, want %q", name, got, want)
		}
	}
	// Namespaces are separate, "with.dots" included.
	if _, ok := get(t, nsT(t, st, "with", 1), "a"); ok {
		t.Error("namespace with sees with.dots' keys")
	}
	if err := nsT(t, st, "plain", 1).Update(func(tx Tx) error { return tx.Put("", nil) }); !errors.Is(err, ErrBadKey) {
		t.Errorf("empty key: %v, want ErrBadKey", err)
	}
}

func TestKVEscape(t *testing.T) {
	for _, s := range []string{"", "a", "a.b", "=", "=2", "%", "\x00", "\xff\xfe", "日本", "a/b-c_d"} {
		e := escape(s)
		for _, c := range []byte(e) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '/' || c == '=') {
				t.Errorf("escape(%q) = %q holds %q", s, e, c)
			}
		}
		if u, err := unescape(e); err != nil || u != s {
			t.Errorf("unescape(escape(%q)) = %q, %v", s, u, err)
		}
	}
	for _, bad := range []string{"=", "=4", "=ZZ", "a=1"} {
		if _, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) accepted", bad)
		}
	}
}

func TestKVSchema(t *testing.T) {
	st, js := kvSingle(t)
	ns := nsT(t, st, "s", 2)
	if ns.Schema() != 2 {
		t.Fatalf("new namespace schema %d, want 2", ns.Schema())
	}
	if _, err := st.Namespace("s", 1); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("older binary: %v, want ErrSchemaTooNew", err)
	}
	// Another store on the bucket sees it, and a newer binary migrates.
	other := openKV(t, js, "state", KVOptions{})
	ns3 := nsT(t, other, "s", 3)
	if ns3.Schema() != 2 {
		t.Errorf("stored schema seen by a newer binary: %d, want 2", ns3.Schema())
	}
	if err := ns3.SetSchema(3); err != nil {
		t.Fatal(err)
	}
	if ns.Schema() != 3 {
		t.Errorf("first handle sees schema %d, want 3", ns.Schema())
	}
}

func TestKVClosed(t *testing.T) {
	st, _ := kvSingle(t)
	ns := nsT(t, st, "c", 1)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := ns.Update(func(tx Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v", err)
	}
	if _, err := st.Namespace("c", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Namespace after Close = %v", err)
	}
}

func TestKVBadBucket(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	ctx := natstest.Context(t, 10*time.Second)
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "ttl", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKV(js, "ttl", KVOptions{}); !errors.Is(err, ErrBadBucket) {
		t.Errorf("bucket with a TTL: %v, want ErrBadBucket", err)
	}
	// A bucket made by hand with the defaults is given what it lacks.
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "plain"}); err != nil {
		t.Fatal(err)
	}
	st := openKV(t, js, "plain", KVOptions{})
	put(t, nsT(t, st, "n", 1), "k", "v")
}

// TestKVConflictRetriesAndGivesUp has a transaction whose key another store
// changes each time it runs: it is run again, and after the retries it
// fails with ErrConflict having written none of its keys.
func TestKVConflictRetriesAndGivesUp(t *testing.T) {
	st, js := kvSingle(t)
	other := openKV(t, js, "state", KVOptions{})
	ns, ons := nsT(t, st, "n", 1), nsT(t, other, "n", 1)
	put(t, ns, "k", "0")
	runs := 0
	err := ns.Update(func(tx Tx) error {
		runs++
		v, _ := tx.Get("k")
		if runs <= 2 {
			put(t, ons, "k", "meddled"+strconv.Itoa(runs))
		}
		if err := tx.Put("a", []byte("from tx")); err != nil {
			return err
		}
		return tx.Put("k", append(v, '+'))
	})
	if err != nil || runs != 3 {
		t.Fatalf("Update = %v after %d runs; want success on the third", err, runs)
	}
	if v, _ := get(t, ns, "k"); v != "meddled2+" {
		t.Errorf("k = %q, want meddled2+ (the write on the last value read)", v)
	}

	small := openKV(t, js, "state", KVOptions{Retries: 2})
	sns := nsT(t, small, "n", 1)
	runs = 0
	err = sns.Update(func(tx Tx) error {
		runs++
		tx.Get("k")
		put(t, ons, "k", "meddled again "+strconv.Itoa(runs))
		if err := tx.Put("b", []byte("never")); err != nil {
			return err
		}
		return tx.Put("k", []byte("never"))
	})
	if !errors.Is(err, ErrConflict) || runs != 3 {
		t.Fatalf("Update = %v after %d runs; want ErrConflict after 3", err, runs)
	}
	if v, ok := get(t, ns, "b"); ok {
		t.Errorf("b = %q: a failed transaction wrote one of its keys", v)
	}
}

// hammer has each store add 1 to counter "n" and to both "a" and "b",
// rounds times, concurrently, and checks that no increment was lost and
// that a and b never parted (every commit wrote both or neither).
func hammer(t *testing.T, stores []Store, rounds int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(stores))
	for _, st := range stores {
		ns := nsT(t, st, "count", 1)
		wg.Go(func() {
			for range rounds {
				err := ns.Update(func(tx Tx) error {
					for _, k := range []string{"n", "a", "b"} {
						v, _ := tx.Get(k)
						i, _ := strconv.Atoi(string(v))
						if err := tx.Put(k, []byte(strconv.Itoa(i+1))); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ns := nsT(t, stores[0], "count", 1)
	want := strconv.Itoa(len(stores) * rounds)
	for _, k := range []string{"n", "a", "b"} {
		if v, _ := get(t, ns, k); v != want {
			t.Errorf("%s = %s after %d increments", k, v, len(stores)*rounds)
		}
	}
}

func TestKVNoLostUpdate(t *testing.T) {
	srv := natstest.Start(t)
	var stores []Store
	for range 2 {
		_, js := natstest.Connect(t, srv.URL())
		stores = append(stores, openKV(t, js, "state", KVOptions{Retries: 100}))
	}
	hammer(t, stores, 50)
}

// TestKVCluster runs two stores connected to different nodes of a 3-node
// cluster on a bucket with three replicas, writing the same keys.
func TestKVCluster(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	var stores []Store
	for i := range 2 {
		_, js := natstest.Connect(t, c.Servers[i].URL())
		stores = append(stores, openKV(t, js, "state", KVOptions{Replicas: 3, Retries: 100}))
	}
	_, js := natstest.Connect(t, c.Servers[2].URL())
	info, err := js.Stream(natstest.Context(t, 10*time.Second), "KV_state")
	if err != nil {
		t.Fatal(err)
	}
	if r := info.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("bucket has %d replicas, want 3", r)
	}
	hammer(t, stores, 30)
	// A read from the third node sees the last write.
	third := openKV(t, js, "state", KVOptions{})
	if v, _ := get(t, nsT(t, third, "count", 1), "n"); v != "60" {
		t.Errorf("third node reads n = %s, want 60", v)
	}
}

func TestKVExpiry(t *testing.T) {
	st, _ := kvSingle(t)
	ns := nsT(t, st, "e", 1)
	fn, ch := recorder()
	ns.OnExpire(fn)
	at := time.Now().Add(300 * time.Millisecond)
	err := ns.Update(func(tx Tx) error {
		if err := tx.PutExpiring("soon", []byte("v1"), at); err != nil {
			return err
		}
		if err := tx.PutExpiring("moved", []byte("x"), at); err != nil {
			return err
		}
		return tx.PutExpiring("gone", []byte("x"), at)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := expiry(t, ns, "soon"); !ok || !got.Equal(at) {
		t.Errorf("Expiry = %v, %v; want %v", got, ok, at)
	}
	// Put clears an expiry, Delete removes the key with it.
	put(t, ns, "moved", "kept")
	if err := ns.Update(func(tx Tx) error { return tx.Delete("gone") }); err != nil {
		t.Fatal(err)
	}
	f := next(t, ch)
	if f.key != "soon" || f.value != "v1" {
		t.Errorf("fired %q=%q, want soon=v1", f.key, f.value)
	}
	if time.Now().Before(at) {
		t.Errorf("fired before its time")
	}
	if _, ok := get(t, ns, "soon"); ok {
		t.Error("expired key still readable")
	}
	if v, ok := get(t, ns, "moved"); !ok || v != "kept" {
		t.Errorf("re-Put key = %q, %v; want kept", v, ok)
	}
	select {
	case f := <-ch:
		t.Errorf("fired %q too", f.key)
	case <-time.After(1500 * time.Millisecond):
	}
	// Nothing is left of the three expiry index entries.
	ctx := natstest.Context(t, 5*time.Second)
	lister, err := st.(*kvStore).kv.ListKeysFiltered(ctx, "e.e.>")
	if err != nil {
		t.Fatal(err)
	}
	for k := range lister.Keys() {
		t.Errorf("index entry %s left", k)
	}
}

// TestKVExpiryOnce has three stores on one bucket collect the same
// expiring keys: each key fires once, on one of them.
func TestKVExpiryOnce(t *testing.T) {
	srv := natstest.Start(t)
	var mu sync.Mutex
	fired := map[string][]int{}
	var nss []Namespace
	for i := range 3 {
		_, js := natstest.Connect(t, srv.URL())
		st := openKV(t, js, "state", KVOptions{SweepInterval: 50 * time.Millisecond})
		ns := nsT(t, st, "e", 1)
		ns.OnExpire(func(key string, _ []byte) {
			mu.Lock()
			fired[key] = append(fired[key], i)
			mu.Unlock()
		})
		nss = append(nss, ns)
	}
	const n = 30
	at := time.Now().Add(200 * time.Millisecond)
	err := nss[0].Update(func(tx Tx) error {
		for i := range n {
			if err := tx.PutExpiring(fmt.Sprintf("k%02d", i), []byte("v"), at.Add(time.Duration(i)*10*time.Millisecond)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fired) == n
	})
	time.Sleep(500 * time.Millisecond) // room for a second firing
	mu.Lock()
	defer mu.Unlock()
	by := map[int]int{}
	for k, who := range fired {
		if len(who) != 1 {
			t.Errorf("%s fired %d times (stores %v)", k, len(who), who)
		}
		by[who[0]]++
	}
	t.Logf("keys collected per store: %v", by)
}

// TestKVExpiryCatchUp sets expiries with no collector running: they stay
// hidden until a namespace calls OnExpire, then fire.
func TestKVExpiryCatchUp(t *testing.T) {
	st, _ := kvSingle(t)
	ns := nsT(t, st, "late", 1)
	err := ns.Update(func(tx Tx) error { return tx.PutExpiring("k", []byte("v"), time.Now().Add(50*time.Millisecond)) })
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, ok := get(t, ns, "k"); ok {
		t.Error("due key readable")
	}
	fn, ch := recorder()
	ns.OnExpire(fn)
	if f := next(t, ch); f.key != "k" || f.value != "v" {
		t.Errorf("fired %q=%q", f.key, f.value)
	}
}

func TestKVLimits(t *testing.T) {
	st, _ := kvSingle(t)
	ns := nsT(t, st, "big", 1)
	// An empty namespace lists nothing, promptly.
	n := 0
	if err := ns.View(func(tx Tx) error {
		return tx.ForEach("", func(string, []byte) error { n++; return nil })
	}); err != nil || n != 0 {
		t.Fatalf("ForEach on an empty namespace: %d keys, %v", n, err)
	}
	err := ns.Update(func(tx Tx) error {
		for i := range kvMaxBatch + 1 {
			if err := tx.Put(strconv.Itoa(i), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("Update of %d keys = %v, want ErrTooLarge", kvMaxBatch+1, err)
	}
	// Half of the limit, with expiries (an index entry each), commits.
	err = ns.Update(func(tx Tx) error {
		for i := range kvMaxBatch / 2 {
			if err := tx.PutExpiring(strconv.Itoa(i), nil, time.Now().Add(time.Hour)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.View(func(tx Tx) error {
		return tx.ForEach("", func(string, []byte) error { n++; return nil })
	}); err != nil || n != kvMaxBatch/2 {
		t.Errorf("ForEach: %d keys, %v; want %d", n, err, kvMaxBatch/2)
	}
}

// TestKVClusterNodeRestart writes while one node of three is down, then
// reads through it once it is back.
func TestKVClusterNodeRestart(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	var stores []Store
	for i := range 2 {
		_, js := natstest.Connect(t, c.Servers[i].URL())
		stores = append(stores, openKV(t, js, "state", KVOptions{Replicas: 3, Retries: 100}))
	}
	stopped := time.Now()
	c.Servers[2].Stop()
	// When the stopped node led the bucket's stream, the other two elect
	// a new leader first; requests meanwhile time out.
	deadline := time.Now().Add(30 * time.Second)
	for !c.Servers[0].JetStreamIsStreamLeader("$G", "KV_state") && !c.Servers[1].JetStreamIsStreamLeader("$G", "KV_state") {
		if time.Now().After(deadline) {
			t.Fatal("no stream leader in 30s after a node stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("stream leader among the two nodes left after %v", time.Since(stopped).Round(time.Millisecond))
	hammer(t, stores, 20)
	t.Logf("writes with a node down done after %v", time.Since(stopped).Round(time.Millisecond))
	back := time.Now()
	c.Servers[2].Restart(t)
	// The restarted node answers once its replica of the bucket caught up.
	deadline = time.Now().Add(30 * time.Second)
	for !c.Servers[2].JetStreamIsStreamCurrent("$G", "KV_state") {
		if time.Now().After(deadline) {
			t.Fatal("the restarted node's replica did not catch up in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("restarted node current after %v", time.Since(back).Round(time.Millisecond))
	_, js := natstest.Connect(t, c.Servers[2].URL())
	third := openKV(t, js, "state", KVOptions{})
	ns := nsT(t, third, "count", 1)
	t.Logf("store open through the restarted node after %v", time.Since(back).Round(time.Millisecond))
	if v, _ := get(t, ns, "n"); v != "40" {
		t.Errorf("through the restarted node: n = %s, want 40", v)
	}
}

// TestKVForEach is TestForEach and TestForEachWritesAsItGoes on the KV
// backend.
func TestKVForEach(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	clock := &fakeClock{now: time.Now()}
	st := openKV(t, js, "state", KVOptions{Now: clock.Now})
	ns := nsT(t, st, "t", 1)
	err := ns.Update(func(tx Tx) error {
		for _, k := range []string{"a/1", "a/2", "a/3", "b/1", "a", "a/0"} {
			if err := tx.Put(k, []byte("v"+k)); err != nil {
				return err
			}
		}
		// Due (by the injected clock) but not collected: not seen.
		return tx.PutExpiring("a/9", []byte("gone"), clock.Now().Add(-time.Second))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"a/", ""} {
		var got []string
		err := ns.View(func(tx Tx) error {
			return tx.ForEach(prefix, func(k string, v []byte) error {
				if string(v) != "v"+k {
					t.Errorf("%s = %q", k, v)
				}
				got = append(got, k)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a/0", "a/1", "a/2", "a/3"}
		if prefix == "" {
			want = []string{"a", "a/0", "a/1", "a/2", "a/3", "b/1"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("ForEach(%q) = %q, want %q", prefix, got, want)
		}
	}

	// Delete every key it is given and insert one after each odd one:
	// the walk sees each old key once and the new ones too.
	err = ns.Update(func(tx Tx) error {
		for i := range 200 {
			if err := tx.Put(fmt.Sprintf("k/%04d", i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	err = ns.Update(func(tx Tx) error {
		return tx.ForEach("k/", func(k string, _ []byte) error {
			seen = append(seen, k)
			if err := tx.Delete(k); err != nil {
				return err
			}
			var i int
			if _, err := fmt.Sscanf(k, "k/%04d", &i); err == nil && i%2 == 1 && !strings.HasSuffix(k, "+") {
				return tx.Put(k+"+", []byte("new"))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 200 {
		want = append(want, fmt.Sprintf("k/%04d", i))
		if i%2 == 1 {
			want = append(want, fmt.Sprintf("k/%04d+", i))
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf("walk saw %d keys, want %d (first difference near %v)", len(seen), len(want), firstDiff(seen, want))
	}
	left := 0
	err = ns.View(func(tx Tx) error {
		return tx.ForEach("k/", func(string, []byte) error { left++; return nil })
	})
	if err != nil || left != 0 {
		t.Errorf("%d keys left (%v), want none", left, err)
	}

	var kept Tx
	if err := ns.Update(func(tx Tx) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := kept.Put("k", []byte("x")); !errors.Is(err, ErrTxDone) {
		t.Errorf("Put after the function = %v, want ErrTxDone", err)
	}
	if err := kept.ForEach("", func(string, []byte) error { return nil }); !errors.Is(err, ErrTxDone) {
		t.Errorf("ForEach after the function = %v, want ErrTxDone", err)
	}
	if _, ok := kept.Get("a"); ok {
		t.Error("Get after the function found the key")
	}
}
