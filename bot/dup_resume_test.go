package bot

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// recConn records, for one connection the mini server serves, what the
// server read from the bot and what it wrote to it.
type recConn struct {
	net.Conn
	mu       sync.Mutex
	in, out  bytes.Buffer // in: bot -> server; out: server -> bot
	idx      int
	openedAt time.Time
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.in.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.out.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// recListener serves plain (loopback, tls "none") connections with srv and
// keeps a recording of each.
type recListener struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*recConn
}

func startRecListener(tb testing.TB, srv *miniserver.Server) *recListener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	l := &recListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			rc := &recConn{Conn: c, idx: len(l.conns), openedAt: time.Now()}
			l.conns = append(l.conns, rc)
			l.mu.Unlock()
			go srv.ServeConn(rc, true)
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	return l
}

// count returns, per connection, how often re matches in the bytes of one
// direction (in: read by the server from the bot).
func (l *recListener) count(in bool, needle string) []int {
	l.mu.Lock()
	conns := append([]*recConn(nil), l.conns...)
	l.mu.Unlock()
	var out []int
	for _, c := range conns {
		c.mu.Lock()
		b := c.out.Bytes()
		if in {
			b = c.in.Bytes()
		}
		out = append(out, bytes.Count(b, []byte(needle)))
		c.mu.Unlock()
	}
	return out
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

// TestResumeNoDuplicateReplies cuts the bot's connection again and again
// while it is answering, every time it resumes its session, and counts for
// every request how many answers reached the user. The mini server
// confirms (h of <resumed/>) what it routed, so nothing may come twice.
// A recording of both directions of each connection tells, for a
// duplicate, whether the bot received the request twice or wrote the
// answer twice. CRIER_DUP_ROUNDS changes the number of rounds (25),
// CRIER_DUP_LOAD=1 adds two busy goroutines.
func TestResumeNoDuplicateReplies(t *testing.T) {
	rounds := 25
	if s := os.Getenv("CRIER_DUP_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	const perRound = 6
	srv := startMini(t, miniserver.Config{})
	rl := startRecListener(t, srv)
	cfg := loadConfig(t, fmt.Sprintf("address = %q\ntls = \"none\"\nkeepalive = \"1s\"\nkeepalive_timeout = \"1s\"", rl.ln.Addr().String()), "[limits]\nsender_replies = \"0\"\n")
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	alice := joinRoom(t, h, "alice")
	const bare = "crier@localhost"

	// CPU pressure, as on a loaded CI machine (bounded by the test).
	stop := make(chan struct{})
	var spin sync.WaitGroup
	if os.Getenv("CRIER_DUP_LOAD") != "" {
		for range 2 {
			spin.Add(1)
			go func() {
				defer spin.Done()
				x := 0
				for {
					select {
					case <-stop:
						return
					default:
					}
					for i := range 20000 {
						x += i
					}
				}
			}()
		}
	}
	defer func() { close(stop); spin.Wait() }()

	want := map[string]string{} // reply body -> "room" or "chat"
	got := map[string]int{}
	collect := func(s xmpptest.Stanza) {
		if s.Name == "message" && strings.HasPrefix(s.Body, "r") {
			got[s.Body]++
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	resumedBefore := srv.Stats().Resumed
	for r := range rounds {
		if time.Now().After(deadline) {
			t.Logf("stopping after %d rounds (time bound)", r)
			break
		}
		for k := range perRound {
			body := fmt.Sprintf("r%d-%d", r, k)
			to, typ := room, "groupchat"
			if k%2 == 1 {
				to, typ = bare, "chat"
			}
			want[body] = typ
			_ = alice.SendMessage(to, typ, "!echo "+body)
			if k == perRound/2 {
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				_ = srv.Cut(botFull)
			}
		}
		// Wait for every answer of the round.
		for k := range perRound {
			body := fmt.Sprintf("r%d-%d", r, k)
			for got[body] == 0 {
				s, err := alice.Wait(context.Background(), 0, 15*time.Second, func(s xmpptest.Stanza) bool { return s.Name == "message" })
				if err != nil {
					t.Fatalf("round %d: no answer %q: %v; the server read the answer from the bot %v (per connection), wrote the request to the bot %v, read the request from alice: %v\nlog:\n%s",
						r, body, err, rl.count(true, "<body>"+body+"</body>"), rl.count(false, "<body>!echo "+body+"</body>"), true, h.logs.String())
				}
				collect(s)
			}
		}
		h.waitReady(10 * time.Second)
	}
	time.Sleep(500 * time.Millisecond)
	for _, s := range alice.Drain() {
		collect(s)
	}
	resumed := srv.Stats().Resumed - resumedBefore
	// Requests the server wrote to the bot more than once (a stanza written
	// into the dying connection, then resent after <resumed/>): the bot
	// must not answer those twice either.
	rewritten := 0
	for body := range want {
		if sum(rl.count(false, "<body>!echo "+body+"</body>")) > 1 {
			rewritten++
		}
	}
	dups := 0
	for body, n := range got {
		if n == 1 {
			continue
		}
		dups += n - 1
		// What the server read from the bot (its answers) and wrote to it
		// (the requests), per connection.
		answers := rl.count(true, "<body>"+body+"</body>")
		requests := rl.count(false, "<body>!echo "+body+"</body>")
		t.Errorf("%q (%s) reached alice %d times; the server read the answer from the bot %v (per connection), wrote the request to the bot %v",
			body, want[body], n, answers, requests)
	}
	// What the outbox decided at each resumption, summed.
	re := regexp.MustCompile(`not acknowledged before it was lost" confirmed_by_server=(\d+) sent_again=(\d+) dropped_stale=(\d+)`)
	var lines, confirmed, again, stale int
	for _, m := range re.FindAllStringSubmatch(h.logs.String(), -1) {
		lines++
		n1, _ := strconv.Atoi(m[1])
		n2, _ := strconv.Atoi(m[2])
		n3, _ := strconv.Atoi(m[3])
		confirmed, again, stale = confirmed+n1, again+n2, stale+n3
	}
	t.Logf("%d rounds, %d resumptions, %d answers, %d duplicates, %d requests written to the bot twice; outbox after resumptions (%d lines): %d confirmed by the server, %d sent again, %d stale",
		len(want)/perRound, resumed, len(got), dups, rewritten, lines, confirmed, again, stale)
	// The metrics tell the same as the log lines.
	if got := counter(t, h.bot, "crier_sessions_resumed_total"); got != float64(resumed) {
		t.Errorf("crier_sessions_resumed_total = %v, the server resumed %d", got, resumed)
	}
	if got := counter(t, h.bot, "crier_unacknowledged_after_loss_total"); got != float64(confirmed+again+stale) {
		t.Errorf("crier_unacknowledged_after_loss_total = %v, the log lines sum to %d", got, confirmed+again+stale)
	}
}
