package lease

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Environment of a re-executed test binary that plays a contender.
const (
	childURL = "CRIER_LEASE_TEST_URL"
	childTTL = "CRIER_LEASE_TEST_TTL"
	childID  = "CRIER_LEASE_TEST_ID"
)

// TestMain lets a test start its own binary as a contender process.
func TestMain(m *testing.M) {
	if url := os.Getenv(childURL); url != "" {
		os.Exit(childContender(url))
	}
	os.Exit(m.Run())
}

// childContender campaigns until it is killed (or 60 seconds pass),
// printing "leading TOKEN UNIXNANO" and "lost TOKEN UNIXNANO" lines.
func childContender(url string) int {
	ttl, err := time.ParseDuration(os.Getenv(childTTL))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kv, err := Bucket(ctx, js, "ha", 0, ttl)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := make(chan string, 16)
	l, err := New(ctx, js, kv, Options{ID: os.Getenv(childID), TTL: ttl, OnChange: func(c Change) {
		word := "lost"
		if c.Leading {
			word = "leading"
		}
		out <- fmt.Sprintf("%s %d %d", word, c.Token, c.At.UnixNano())
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for s := range out {
			fmt.Println(s)
		}
	}()
	fmt.Println("ready")
	_ = l.Run(ctx)
	return 0
}

// child is a contender process and the lines it printed.
type child struct {
	cmd   *exec.Cmd
	lines chan string
}

// startChild starts the test binary as contender id on url.
func startChild(tb testing.TB, url, id string, ttl time.Duration) *child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childURL+"="+url, childTTL+"="+ttl.String(), childID+"="+id)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 64)}
	go func(r io.Reader) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}(stdout)
	tb.Cleanup(c.kill)
	return c
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// waitLine waits (at most d) for a line of c starting with word and returns
// its token and time.
func (c *child) waitLine(tb testing.TB, word string, d time.Duration) (uint64, time.Time, bool) {
	tb.Helper()
	timeout := time.After(d)
	for {
		select {
		case s, ok := <-c.lines:
			if !ok {
				return 0, time.Time{}, false
			}
			f := strings.Fields(s)
			if len(f) == 3 && f[0] == word {
				tok, _ := strconv.ParseUint(f[1], 10, 64)
				ns, _ := strconv.ParseInt(f[2], 10, 64)
				return tok, time.Unix(0, ns), true
			}
			if word == "ready" && s == "ready" {
				return 0, time.Now(), true
			}
		case <-timeout:
			return 0, time.Time{}, false
		}
	}
}

// killFailover starts two contender processes, SIGKILLs the one that leads
// and returns the time from the kill to the other's lead, and the part of
// it spent until the server expired the lease.
func killFailover(tb testing.TB, url string, ttl time.Duration, expired <-chan time.Time) (total, expiry time.Duration) {
	tb.Helper()
	a, b := startChild(tb, url, "a", ttl), startChild(tb, url, "b", ttl)
	for _, c := range []*child{a, b} {
		if _, _, ok := c.waitLine(tb, "ready", 20*time.Second); !ok {
			tb.Fatal("contender did not start")
		}
	}
	// Whoever leads first; the other waits.
	type res struct {
		c     *child
		token uint64
		at    time.Time
	}
	first := make(chan res, 2)
	for _, c := range []*child{a, b} {
		go func() {
			if tok, at, ok := c.waitLine(tb, "leading", 30*time.Second+2*ttl); ok {
				first <- res{c, tok, at}
			}
		}()
	}
	var leader res
	select {
	case leader = <-first:
	case <-time.After(20 * time.Second):
		tb.Fatal("nobody leads")
	}
	standby := a
	if leader.c == a {
		standby = b
	}
	// Past a renewal or two, at a random point of the renewal cycle.
	time.Sleep(ttl/2 + time.Duration(time.Now().UnixNano()%int64(ttl/3)))
	for len(expired) > 0 {
		<-expired
	}
	killed := time.Now()
	if err := leader.c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
	var next res
	select {
	case next = <-first:
	case <-time.After(ttl + 10*time.Second):
		tb.Fatalf("no takeover in %v after the kill", ttl+10*time.Second)
	}
	if next.c != standby || next.token <= leader.token {
		tb.Fatalf("takeover by the wrong process or with token %d after %d", next.token, leader.token)
	}
	select {
	case at := <-expired:
		expiry = at.Sub(killed)
	case <-time.After(2 * time.Second):
		tb.Fatal("no expiry marker")
	}
	a.kill()
	b.kill()
	// The standby's time of the takeover is the one it printed.
	return next.at.Sub(killed), expiry
}
