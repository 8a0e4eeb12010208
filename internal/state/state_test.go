package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestUpdateCommitsOrRollsBack(t *testing.T) {
	errMine := errors.New("mine")
	tests := []struct {
		name    string
		fn      func(Tx) error
		wantErr []error // each must match with errors.Is; none: success
		kept    bool
	}{
		{
			name: "nil commits",
			fn:   func(tx Tx) error { return tx.Put("k", []byte("new")) },
			kept: true,
		},
		{
			name: "error rolls back and is returned as it is",
			fn: func(tx Tx) error {
				if err := tx.Put("k", []byte("new")); err != nil {
					return err
				}
				return errMine
			},
			wantErr: []error{errMine},
		},
		{
			name: "panic rolls back and is returned",
			fn: func(tx Tx) error {
				if err := tx.Put("k", []byte("new")); err != nil {
					return err
				}
				panic("boom")
			},
			wantErr: []error{ErrPanic},
		},
		{
			name: "panic with an error wraps it",
			fn: func(tx Tx) error {
				if err := tx.Delete("k"); err != nil {
					return err
				}
				panic(fmt.Errorf("wrapped: %w", errMine))
			},
			wantErr: []error{ErrPanic, errMine},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := openT(t, Options{})
			ns := nsT(t, st, "t", 1)
			put(t, ns, "k", "old")
			err := ns.Update(tc.fn)
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Update = %v, want it to match %v", err, want)
				}
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatalf("Update = %v", err)
			}
			want := "old"
			if tc.kept {
				want = "new"
			}
			if got, ok := get(t, ns, "k"); !ok || got != want {
				t.Errorf("after Update: k = %q, %v; want %q", got, ok, want)
			}
		})
	}
}

func TestPanicErrorCarriesStack(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	err := ns.View(func(Tx) error { panic("in view") })
	var pe *PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("View = %v, want a *PanicError", err)
	}
	if pe.Value != "in view" || !strings.Contains(string(pe.Stack), "TestPanicErrorCarriesStack") {
		t.Errorf("PanicError = %v with stack\n%s", pe.Value, pe.Stack)
	}
}

func TestViewIsReadOnly(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	put(t, ns, "k", "v")
	writes := map[string]func(Tx) error{
		"Put":         func(tx Tx) error { return tx.Put("k", []byte("x")) },
		"PutExpiring": func(tx Tx) error { return tx.PutExpiring("k", []byte("x"), time.Now().Add(time.Hour)) },
		"Delete":      func(tx Tx) error { return tx.Delete("k") },
	}
	for name, w := range writes {
		var werr error
		if err := ns.View(func(tx Tx) error { werr = w(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(werr, ErrReadOnly) {
			t.Errorf("%s in View = %v, want ErrReadOnly", name, werr)
		}
	}
	if v, ok := get(t, ns, "k"); !ok || v != "v" {
		t.Errorf("k = %q, %v after refused writes", v, ok)
	}
}

func TestKeys(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	tests := []struct {
		name string
		key  string
		bad  bool
	}{
		{"empty", "", true},
		{"one byte", "k", false},
		{"longest", strings.Repeat("k", MaxKeyBytes), false},
		{"too long", strings.Repeat("k", MaxKeyBytes+1), true},
		{"any bytes", "a/\x00\xff é", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			writes := map[string]func(Tx) error{
				"Put":         func(tx Tx) error { return tx.Put(tc.key, []byte("v")) },
				"PutExpiring": func(tx Tx) error { return tx.PutExpiring(tc.key, []byte("v"), time.Now().Add(time.Hour)) },
				"Delete":      func(tx Tx) error { return tx.Delete(tc.key) },
			}
			for name, w := range writes {
				err := ns.Update(w)
				if tc.bad != errors.Is(err, ErrBadKey) || (!tc.bad && err != nil) {
					t.Errorf("%s(%q) = %v, bad key: %v", name, tc.key, err, tc.bad)
				}
			}
			if !tc.bad {
				put(t, ns, tc.key, "v")
			}
			if _, ok := get(t, ns, tc.key); ok == tc.bad {
				t.Errorf("Get(%q) found = %v", tc.key, ok)
			}
		})
	}
}

func TestPutCopiesValue(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	buf := []byte("first")
	err := ns.Update(func(tx Tx) error {
		if err := tx.Put("k", buf); err != nil {
			return err
		}
		copy(buf, "XXXXX") // the caller reuses its buffer before the commit
		if v, _ := tx.Get("k"); string(v) != "first" {
			t.Errorf("Get in the same transaction = %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, ns, "k"); v != "first" {
		t.Errorf("k = %q, want the value as it was at Put", v)
	}
}

func TestEmptyValueIsThere(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	err := ns.Update(func(tx Tx) error {
		if err := tx.Put("nil", nil); err != nil {
			return err
		}
		if v, ok := tx.Get("nil"); !ok || v == nil || len(v) != 0 {
			t.Errorf("Get in the same transaction = %v, %v", v, ok)
		}
		return tx.Put("empty", []byte{})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"nil", "empty"} {
		if v, ok := get(t, ns, k); !ok || v != "" {
			t.Errorf("%s = %q, %v; want an empty value that is there", k, v, ok)
		}
	}
	if _, ok := get(t, ns, "missing"); ok {
		t.Error("a missing key is found")
	}
}

func TestTxAfterItsFunction(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	put(t, ns, "k", "v")
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
	if _, ok := kept.Get("k"); ok {
		t.Error("Get after the function found the key")
	}
}

func TestForEach(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st, _ := openT(t, Options{Now: clock.Now})
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
	errStop := errors.New("stop")
	tests := []struct {
		name     string
		prefix   string
		stopAt   string
		writable bool
		want     []string
		wantErr  error
	}{
		{name: "prefix in key order", prefix: "a/", want: []string{"a/0", "a/1", "a/2", "a/3"}},
		{name: "all", prefix: "", want: []string{"a", "a/0", "a/1", "a/2", "a/3", "b/1"}},
		{name: "none", prefix: "c", want: nil},
		{name: "stops at the first error", prefix: "a/", stopAt: "a/1", want: []string{"a/0", "a/1"}, wantErr: errStop},
		{name: "in an update", prefix: "a/", writable: true, want: []string{"a/0", "a/1", "a/2", "a/3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			run := ns.View
			if tc.writable {
				run = ns.Update
			}
			var ferr error
			err := run(func(tx Tx) error {
				ferr = tx.ForEach(tc.prefix, func(k string, v []byte) error {
					if string(v) != "v"+k {
						t.Errorf("%s = %q", k, v)
					}
					got = append(got, k)
					if k == tc.stopAt {
						return errStop
					}
					return nil
				})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(ferr, tc.wantErr) || (tc.wantErr == nil && ferr != nil) {
				t.Errorf("ForEach = %v, want %v", ferr, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("keys = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestForEachWritesAsItGoes(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	err := ns.Update(func(tx Tx) error {
		for i := range 500 { // enough for several pages
			if err := tx.Put(fmt.Sprintf("k/%04d", i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Delete every key it is given and insert one after each odd one:
	// the walk must see each old key once and the new ones too.
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
	for i := range 500 {
		want = append(want, fmt.Sprintf("k/%04d", i))
		if i%2 == 1 {
			want = append(want, fmt.Sprintf("k/%04d+", i))
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf("walk saw %d keys, want %d (first difference near %v)", len(seen), len(want), firstDiff(seen, want))
	}
	var left int
	err = ns.View(func(tx Tx) error {
		return tx.ForEach("", func(string, []byte) error { left++; return nil })
	})
	if err != nil || left != 0 {
		t.Errorf("%d keys left (%v), want none", left, err)
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("%d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("length %d vs %d", len(a), len(b))
}

func TestNamespacesAreSeparate(t *testing.T) {
	st, _ := openT(t, Options{})
	a, b := nsT(t, st, "a", 1), nsT(t, st, "b", 1)
	put(t, a, "k", "in a")
	if _, ok := get(t, b, "k"); ok {
		t.Error("b sees a's key")
	}
	again := nsT(t, st, "a", 1)
	if v, _ := get(t, again, "k"); v != "in a" || again.Name() != "a" {
		t.Errorf("a second handle on a reads %q (name %q)", v, again.Name())
	}
}

func TestNamespaceNames(t *testing.T) {
	st, _ := openT(t, Options{})
	tests := []struct {
		name   string
		schema int
		ok     bool
	}{
		{"commands", 1, true},
		{"cron.last-fired_2", 0, true},
		{strings.Repeat("n", MaxNamespaceBytes), 1, true},
		{"", 1, false},
		{strings.Repeat("n", MaxNamespaceBytes+1), 1, false},
		{"a/b", 1, false},
		{"a b", 1, false},
		{"ok", -1, false},
	}
	for _, tc := range tests {
		_, err := st.Namespace(tc.name, tc.schema)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrBadNamespace)) {
			t.Errorf("Namespace(%q, %d) = %v, want ok %v", tc.name, tc.schema, err, tc.ok)
		}
	}
}

func TestSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crier.db")
	reopen := func(t *testing.T) Store {
		t.Helper()
		st, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	st := reopen(t)
	ns := nsT(t, st, "commands", 2)
	if got := ns.Schema(); got != 2 {
		t.Errorf("new namespace's Schema = %d, want the caller's 2", got)
	}
	put(t, ns, "k", "v")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// An older binary refuses a newer schema, naming everything.
	st = reopen(t)
	_, err := st.Namespace("commands", 1)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Namespace at an older schema = %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{`"commands"`, "schema 2", "up to 1", path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// A newer binary sees the old version, migrates and records it.
	ns = nsT(t, st, "commands", 3)
	if got := ns.Schema(); got != 2 {
		t.Errorf("Schema = %d, want the stored 2", got)
	}
	if err := ns.SetSchema(3); err != nil {
		t.Fatal(err)
	}
	if got := ns.Schema(); got != 3 {
		t.Errorf("Schema after SetSchema = %d", got)
	}
	if err := ns.SetSchema(-1); !errors.Is(err, ErrBadNamespace) {
		t.Errorf("SetSchema(-1) = %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = reopen(t)
	if _, err := st.Namespace("commands", 2); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("after SetSchema(3) an older binary opens it: %v", err)
	}
	ns = nsT(t, st, "commands", 3)
	if v, ok := get(t, ns, "k"); ns.Schema() != 3 || v != "v" || !ok {
		t.Errorf("after reopen: schema %d, k = %q, %v", ns.Schema(), v, ok)
	}
}

func TestClosed(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 4)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	calls := map[string]error{
		"Namespace": func() error { _, err := st.Namespace("t", 1); return err }(),
		"View":      ns.View(func(Tx) error { return nil }),
		"Update":    ns.Update(func(Tx) error { return nil }),
		"SetSchema": ns.SetSchema(5),
	}
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if got := ns.Schema(); got != 4 {
		t.Errorf("Schema after Close = %d, want the last known 4", got)
	}
	ns.OnExpire(func(string, []byte) {}) // must not block or panic
}

func TestCloseWaitsForTransactions(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	inside, release := make(chan struct{}), make(chan struct{})
	updated := make(chan error, 1)
	go func() {
		updated <- ns.Update(func(tx Tx) error {
			close(inside)
			<-release
			return tx.Put("k", []byte("v"))
		})
	}()
	<-inside
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) during an Update", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-updated; err != nil {
		t.Errorf("the Update under way at Close = %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
}

func TestFilesAndOpenLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	path := filepath.Join(dir, "crier.db")
	var logs logBuffer
	st, err := Open(path, Options{Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	nsT(t, st, "commands", 1)
	nsT(t, st, "cron", 1)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", p, got, want)
		}
	}

	// Reopened: the Info line names the file and the namespaces; a file
	// that others can read is made private, with a warning.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	logs = logBuffer{}
	st, err = Open(path, Options{Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := logs.String()
	for _, want := range []string{"level=INFO", "path=" + path, "namespaces=\"[commands cron]\"", "level=WARN", "made it 0600"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not have %q:\n%s", want, out)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after reopen %v", fi.Mode().Perm())
	}
}

func TestOpenADirectory(t *testing.T) {
	_, err := Open(t.TempDir(), Options{})
	if err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("Open(a directory) = %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	st, _ := openT(t, Options{})
	ns := nsT(t, st, "t", 1)
	var fired sync.WaitGroup
	fired.Add(4 * 20)
	ns.OnExpire(func(string, []byte) { fired.Done() })
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				key := fmt.Sprintf("w%d/%d", w, i)
				err := ns.Update(func(tx Tx) error {
					if err := tx.Put(key, []byte("v")); err != nil {
						return err
					}
					return tx.PutExpiring(key+"/e", []byte("e"), time.Now().Add(time.Millisecond))
				})
				if err != nil {
					t.Error(err)
				}
				if _, ok := get(t, ns, key); !ok {
					t.Errorf("%s missing after its Update", key)
				}
			}
		})
	}
	wg.Wait()
	// Every expiry fires once (a second call panics the WaitGroup).
	all := make(chan struct{})
	go func() { fired.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("not every expiry fired in 10s")
	}
}

// countIndex counts a namespace's expiry index and by-key entries.
func countIndex(t *testing.T, st Store, name string) (index, expires int) {
	t.Helper()
	err := st.(*boltStore).db.View(func(btx *bolt.Tx) error {
		b := btx.Bucket([]byte(name))
		index = b.Bucket(bucketIndex).Stats().KeyN
		expires = b.Bucket(bucketExpires).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return index, expires
}
