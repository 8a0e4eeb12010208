package state

import (
	"fmt"
	"testing"

	"crier/internal/natstest"
)

// BenchmarkUpdatePut is one committed write: bbolt fsyncs at each commit,
// so this measures the disk more than the store.
func BenchmarkUpdatePut(b *testing.B) {
	st, _ := openT(b, Options{})
	ns := nsT(b, st, "bench", 1)
	value := []byte("a value of some tens of bytes, like an ACL entry")
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		key := fmt.Sprintf("k/%06d", i%1000)
		i++
		if err := ns.Update(func(tx Tx) error { return tx.Put(key, value) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkViewGet is one read in its own transaction, among 1000 keys.
func BenchmarkViewGet(b *testing.B) {
	st, _ := openT(b, Options{})
	ns := nsT(b, st, "bench", 1)
	value := []byte("a value of some tens of bytes, like an ACL entry")
	err := ns.Update(func(tx Tx) error {
		for i := range 1000 {
			if err := tx.Put(fmt.Sprintf("k/%06d", i), value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("k/%06d", i)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		key := keys[i%len(keys)]
		i++
		err := ns.View(func(tx Tx) error {
			if _, ok := tx.Get(key); !ok {
				return fmt.Errorf("%s missing", key)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKVUpdatePut is one committed write to the KV backend (one
// in-process NATS server, file storage), unfenced and fenced (the commit
// carries the fence check).
func BenchmarkKVUpdatePut(b *testing.B) {
	for _, fenced := range []bool{false, true} {
		b.Run(fmt.Sprintf("fenced=%v", fenced), func(b *testing.B) {
			srv := natstest.Start(b)
			_, js := natstest.Connect(b, srv.URL())
			st := openKV(b, js, "bench", KVOptions{})
			if fenced {
				if err := st.(Fencer).Fence("", 1, nil); err != nil {
					b.Fatal(err)
				}
			}
			ns := nsT(b, st, "bench", 1)
			value := []byte("a value of some tens of bytes, like an ACL entry")
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				key := fmt.Sprintf("k/%06d", i%1000)
				i++
				if err := ns.Update(func(tx Tx) error { return tx.Put(key, value) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
