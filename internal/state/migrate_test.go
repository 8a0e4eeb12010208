package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// fill writes a namespace at schema 3 with plain and expiring keys.
func fill(t *testing.T, st Store, name string, n int, at time.Time) {
	t.Helper()
	ns, err := st.Namespace(name, 3)
	if err != nil {
		t.Fatal(err)
	}
	err = ns.Update(func(tx Tx) error {
		for i := range n {
			k := fmt.Sprintf("k/%04d", i)
			if i%3 == 0 {
				if err := tx.PutExpiring(k, []byte("exp "+k), at); err != nil {
					return err
				}
				continue
			}
			if err := tx.Put(k, []byte("v "+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// same checks that every key, value and expiry of src's namespace is in
// dst's.
func same(t *testing.T, dst, src Store, name string) int {
	t.Helper()
	sn, err := src.Namespace(name, 100)
	if err != nil {
		t.Fatal(err)
	}
	dn, err := dst.Namespace(name, 100)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := sn.Schema(), dn.Schema(); a != b {
		t.Fatalf("%s: schema %d in the source, %d in the copy", name, a, b)
	}
	n := 0
	err = sn.View(func(stx Tx) error {
		return dn.View(func(dtx Tx) error {
			return stx.ForEach("", func(k string, v []byte) error {
				n++
				got, ok := dtx.Get(k)
				if !ok || string(got) != string(v) {
					return fmt.Errorf("%s: key %q = %q %v in the copy, want %q", name, k, got, ok, v)
				}
				sat, sok := stx.Expiry(k)
				dat, dok := dtx.Expiry(k)
				if sok != dok || !sat.Equal(dat) {
					return fmt.Errorf("%s: key %q expires %v %v in the copy, want %v %v", name, k, dat, dok, sat, sok)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCopyFileToKVAndBack moves a store from bbolt to NATS KV and back:
// every key, value, expiry and schema arrives; a second copy without
// Overwrite is refused before it writes; a dry run writes nothing.
func TestCopyFileToKVAndBack(t *testing.T) {
	dir := t.TempDir()
	file, err := Open(filepath.Join(dir, "a.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	at := time.Now().Add(time.Hour).Round(0)
	fill(t, file, "core", 10, at)
	fill(t, file, "commands", 1000, at) // more than one batch
	kv, _ := kvSingle(t)

	dry, err := Copy(kv, file, CopyOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dry) != "[{commands 3 1000 334 0} {core 3 10 4 0}]" {
		t.Fatalf("dry run = %v", dry)
	}
	if names, _ := kv.(Lister).Namespaces(); len(names) != 0 {
		t.Fatalf("a dry run wrote namespaces %v", names)
	}
	if _, err := Copy(kv, file, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := same(t, kv, file, "commands"); n != 1000 {
		t.Fatalf("%d keys compared, want 1000", n)
	}
	same(t, kv, file, "core")
	if _, err := Copy(kv, file, CopyOptions{}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second copy = %v, want ErrNotEmpty", err)
	}
	if _, err := Copy(kv, file, CopyOptions{Overwrite: true}); err != nil {
		t.Fatalf("second copy with Overwrite: %v", err)
	}

	back, err := Open(filepath.Join(dir, "b.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if _, err := Copy(back, kv, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if names, _ := back.(Lister).Namespaces(); fmt.Sprint(names) != "[commands core]" {
		t.Fatalf("namespaces after the copy back: %v", names)
	}
	same(t, back, file, "commands")
	same(t, back, file, "core")
}

// TestCopySchemaTooNew: a destination namespace at a newer schema stops the
// copy before anything is written.
func TestCopySchemaTooNew(t *testing.T) {
	src, dst := NewMemory(), NewMemory()
	fill(t, src, "a", 2, time.Now().Add(time.Hour))
	fill(t, src, "b", 2, time.Now().Add(time.Hour))
	if _, err := dst.Namespace("b", 9); err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(dst, src, CopyOptions{Overwrite: true}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("copy = %v, want ErrSchemaTooNew", err)
	}
	if names, _ := dst.(Lister).Namespaces(); fmt.Sprint(names) != "[b]" {
		t.Fatalf("namespaces written before the refusal: %v", names)
	}
}
