package state_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"crier/internal/state"
)

func Example() {
	dir, err := os.MkdirTemp("", "crier-state")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	st, err := state.Open(filepath.Join(dir, "crier.db"), state.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	ns, err := st.Namespace("commands", 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	expired := make(chan string, 1)
	ns.OnExpire(func(key string, value []byte) { expired <- key + " = " + string(value) })

	err = ns.Update(func(tx state.Tx) error {
		if err := tx.Put("acl/alice@example.org", []byte("admin")); err != nil {
			return err
		}
		return tx.PutExpiring("confirm/bob@example.org", []byte("leave room@muc.example.org"), time.Now().Add(10*time.Millisecond))
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = ns.View(func(tx state.Tx) error {
		v, ok := tx.Get("acl/alice@example.org")
		fmt.Println(string(v), ok)
		return nil
	})
	fmt.Println("expired:", <-expired)
	// Output:
	// admin true
	// expired: confirm/bob@example.org = leave room@muc.example.org
}
