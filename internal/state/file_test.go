package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLockedBySameProcess(t *testing.T) {
	st, path := openT(t, Options{})
	// A second Open is a second open file description: bbolt's flock
	// conflicts with the first one even in one process.
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	checkLocked(t, err, path)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after the holder closed = %v", err)
	}
	_ = st2.Close()
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crier.db")
	cmd, stdout, stdin := startChild(t, "holder", path)
	if got := readLine(t, bufio.NewReader(stdout)); got != "open" {
		t.Fatalf("holder said %q", got)
	}
	_, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	checkLocked(t, err, path)
	// The holder closes its store and exits: the lock is free.
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	st, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after the holder exited = %v", err)
	}
	_ = st.Close()
}

func checkLocked(t *testing.T, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a locked store = %v, want ErrLocked", err)
	}
	for _, want := range []string{path, "another crier"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestCorruptFile(t *testing.T) {
	// A store with enough in it to span many pages, values on overflow
	// pages included.
	good := filepath.Join(t.TempDir(), "good.db")
	st, err := Open(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := nsT(t, st, "t", 1)
	err = ns.Update(func(tx Tx) error {
		for i := range 2000 {
			if err := tx.Put(fmt.Sprintf("k/%05d", i), []byte(strings.Repeat("v", 100))); err != nil {
				return err
			}
		}
		return tx.Put("big", []byte(strings.Repeat("b", 64<<10)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	// overwrite returns the good file with [from, to) replaced by fill.
	overwrite := func(from, to int, fill func(int) []byte) []byte {
		b := append([]byte(nil), goodBytes...)
		copy(b[from:to], fill(to-from))
		return b
	}
	zeros := func(n int) []byte { return make([]byte, n) }
	// The last leaf page (bbolt's page header: id, then flags, 0x02 for a
	// leaf) holds keys of the data bucket: bbolt opens the file fine, and
	// the read of every page in Open finds it.
	leaf := -1
	for p := 2; p < len(goodBytes)/page; p++ {
		h := goodBytes[p*page:]
		if binary.LittleEndian.Uint64(h) == uint64(p) && binary.LittleEndian.Uint16(h[8:]) == 0x02 {
			leaf = p
		}
	}
	if leaf < 0 {
		t.Fatal("no leaf page in the good file")
	}
	tests := []struct {
		name    string
		content []byte
		says    string
	}{
		{"short garbage", garbage(100), ""},
		{"a page of garbage", garbage(page), ""},
		{"garbage", garbage(64 << 10), ""},
		{"text", []byte(strings.Repeat("this is not a store\n", 1000)), ""},
		{"meta pages zeroed", overwrite(0, 2*page, zeros), ""},
		{"truncated to one page and a bit", goodBytes[:page+904], ""},
		{"truncated to half", goodBytes[:len(goodBytes)/2], "truncated"},
		{"truncated to a tenth", goodBytes[:len(goodBytes)/10/page*page], "truncated"},
		{"truncated, first meta page zeroed", overwrite(0, page, zeros)[:len(goodBytes)/2], "truncated"},
		{"pages after the meta pages are garbage", overwrite(2*page, len(goodBytes), garbage), ""},
		{"pages after the meta pages are zero", overwrite(2*page, len(goodBytes), zeros), ""},
		{"a leaf page is garbage", overwrite(leaf*page, (leaf+1)*page, garbage), "reading it failed"},
		{"a leaf page is zero", overwrite(leaf*page, (leaf+1)*page, zeros), "reading it failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "crier.db")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
			if err == nil {
				_ = st.Close()
				t.Fatal("Open of a corrupt file succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			for _, want := range []string{path, "move the file away", tc.says} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			// The failed Open let go of the file: its lock is free.
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				t.Errorf("the file is still locked after the failed Open: %v", err)
			}
			// Moved away, as the error says, crier starts afresh.
			if err := os.Rename(path, path+".bad"); err != nil {
				t.Fatal(err)
			}
			st, err = Open(path, Options{})
			if err != nil {
				t.Fatalf("Open after moving the file away = %v", err)
			}
			_ = st.Close()
		})
	}
}

// TestSIGKILLKeepsCommittedWrites kills a writer in the middle of its
// writes, a few times, and checks that the store opens cleanly and holds
// every write the writer saw committed.
func TestSIGKILLKeepsCommittedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crier.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 10))
	reported := 0 // the highest number a writer reported committed
	for round := range 4 {
		after := 5 + rng.IntN(60)
		cmd, stdout, _ := startChild(t, "writer", path)
		lines := bufio.NewReader(stdout)
		var last int
		for range after {
			n, err := strconv.Atoi(readLine(t, lines))
			if err != nil {
				t.Fatal(err)
			}
			if n != last+1 && last != 0 {
				t.Fatalf("writer reported %d after %d", n, last)
			}
			last = n
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Numbers already in the pipe were committed too.
		for {
			s, err := lines.ReadString('\n')
			if err != nil {
				break
			}
			if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
				last = n
			}
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("writer ended with %v, not by SIGKILL", err)
		}
		if last < reported {
			t.Fatalf("round %d: writer started at %d, below the %d already reported", round, last, reported)
		}
		reported = last

		st, err := Open(path, Options{LockTimeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL = %v", round, err)
		}
		ns := nsT(t, st, "crash", 1)
		// Writes are sequential, so what is stored is 1..stored, every
		// reported number among them.
		stored := 0
		err = ns.View(func(tx Tx) error {
			return tx.ForEach("n/", func(k string, v []byte) error {
				stored++
				if k != crashKey(stored) || string(v) != strconv.Itoa(stored) {
					return fmt.Errorf("key %d is %q = %q", stored, k, v)
				}
				return nil
			})
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if stored < reported {
			t.Fatalf("round %d: store holds 1..%d, the writer reported %d committed", round, stored, reported)
		}
		// The expiry index moved with the writes: one entry left.
		if i, e := countIndex(t, st, "crash"); i != 1 || e != 1 {
			t.Errorf("round %d: expiry index %d, expiries %d; want 1, 1", round, i, e)
		}
		t.Logf("round %d: killed after %d reported (%d stored)", round, reported, stored)
		reported = stored
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
