package state

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// childEnv names the role a re-executed test binary plays (see TestMain)
// and childPath the store it opens.
const (
	childEnv  = "CRIER_STATE_TEST_CHILD"
	childPath = "CRIER_STATE_TEST_PATH"
)

// TestMain lets a test start its own binary as another process: with
// childEnv set, the binary plays that role instead of running tests.
func TestMain(m *testing.M) {
	switch role := os.Getenv(childEnv); role {
	case "":
		os.Exit(m.Run())
	case "writer":
		os.Exit(childWriter(os.Getenv(childPath)))
	case "holder":
		os.Exit(childHolder(os.Getenv(childPath)))
	default:
		fmt.Fprintf(os.Stderr, "unknown child role %q\n", role)
		os.Exit(2)
	}
}

// startChild starts the test binary as a child in role on the store at path.
// The -test.run pattern matches no test: TestMain plays the role first.
func startChild(t *testing.T, role, path string) (*exec.Cmd, io.ReadCloser, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childPath+"="+path)
	cmd.Stderr = &prefixWriter{t: t, prefix: role + ": "}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, stdout, stdin
}

// prefixWriter logs a child's stderr in the test's log.
type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for line := range strings.Lines(string(p)) {
		w.t.Log(w.prefix + strings.TrimRight(line, "\n"))
	}
	return len(p), nil
}

// childWriter commits numbered writes until it is killed (or 20 seconds
// pass), printing each number once its commit returned. It goes on from the
// numbers a previous writer left.
func childWriter(path string) int {
	st, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ns, err := st.Namespace("crash", 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	next := 1
	err = ns.View(func(tx Tx) error {
		return tx.ForEach("n/", func(string, []byte) error { next++; return nil })
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	far := time.Now().Add(24 * time.Hour)
	deadline := time.Now().Add(20 * time.Second)
	for i := next; i < next+100000 && time.Now().Before(deadline); i++ {
		err := ns.Update(func(tx Tx) error {
			if err := tx.Put(crashKey(i), []byte(strconv.Itoa(i))); err != nil {
				return err
			}
			// A moving expiry too, so that the index is written to
			// and pruned in the same commits.
			if err := tx.Delete(fmt.Sprintf("e/%08d", i-1)); err != nil {
				return err
			}
			return tx.PutExpiring(fmt.Sprintf("e/%08d", i), []byte("x"), far.Add(time.Duration(i)))
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(i)
	}
	return 0
}

func crashKey(i int) string { return fmt.Sprintf("n/%08d", i) }

// childHolder opens the store, says "open" and keeps it until its stdin
// closes (or 20 seconds pass).
func childHolder(path string) int {
	st, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("open")
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
	}
	if err := st.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// readLine reads one line from a child's stdout, failing after a time.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := r.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case got := <-ch:
		if got.err != nil {
			t.Fatalf("child's stdout: %v (read %q)", got.err, got.s)
		}
		return got.s
	case <-time.After(20 * time.Second):
		t.Fatal("child printed nothing for 20s")
	}
	return ""
}

// logBuffer is a logger writing to a buffer that tests read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// openT opens a store in a fresh directory, closed at the test's end.
func openT(t testing.TB, opts Options) (Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crier.db")
	st, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, path
}

// nsT opens a namespace or fails the test.
func nsT(t testing.TB, st Store, name string, schema int) Namespace {
	t.Helper()
	ns, err := st.Namespace(name, schema)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// get reads one key in its own View.
func get(t testing.TB, ns Namespace, key string) (string, bool) {
	t.Helper()
	var v string
	var ok bool
	err := ns.View(func(tx Tx) error {
		b, found := tx.Get(key)
		v, ok = string(b), found
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

// put writes one key in its own Update.
func put(t testing.TB, ns Namespace, key, value string) {
	t.Helper()
	if err := ns.Update(func(tx Tx) error { return tx.Put(key, []byte(value)) }); err != nil {
		t.Fatal(err)
	}
}

// fakeClock is an injected clock tests set.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
