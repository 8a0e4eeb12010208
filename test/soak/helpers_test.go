//go:build soak

package soak

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// tally counts the pushes the receiver got, by number. Bodies are "TAG N".
type tally struct {
	mu      sync.Mutex
	tag     string
	counts  map[int]int
	odd     []string
	changed chan struct{}
}

func newTally(tag string) *tally {
	return &tally{tag: tag, counts: map[int]int{}, changed: make(chan struct{})}
}

func (t *tally) add(body string, _ time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tag, num, _ := strings.Cut(strings.TrimSpace(body), " ")
	i, err := strconv.Atoi(num)
	if tag != t.tag || err != nil || i < 1 {
		if len(t.odd) < 5 {
			t.odd = append(t.odd, body)
		}
		return
	}
	t.counts[i]++
	close(t.changed)
	t.changed = make(chan struct{})
}

// wait waits until the pushes 1..n all arrived, at most limit, and returns
// how many of them did.
func (t *tally) wait(n int, limit time.Duration) int {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		got := 0
		for i := 1; i <= n; i++ {
			if t.counts[i] > 0 {
				got++
			}
		}
		ch := t.changed
		t.mu.Unlock()
		if got == n {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			return got
		}
	}
}

// check returns the pushes of 1..n that never arrived and how many copies
// arrived beyond the first.
func (t *tally) check(n int) (missing []int, dups int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := 1; i <= n; i++ {
		switch c := t.counts[i]; {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			dups += c - 1
		}
	}
	return missing, dups
}

func (t *tally) unexpected() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.odd...)
}

// pinger is alice: she sits in the room and pings crier there and in chat,
// and counts crier's pongs. A crash of every session ends her connection;
// connect logs her in again and rejoins the room.
type pinger struct {
	t      *testing.T
	srv    *miniserver.Server
	mu     sync.Mutex
	client *xmpptest.Client
	pongs  map[string]int // by the bare JID the pong came from
}

func newPinger(t *testing.T, srv *miniserver.Server) *pinger {
	return &pinger{t: t, srv: srv, pongs: map[string]int{}}
}

func (p *pinger) c() *xmpptest.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client
}

// connect logs alice in (closing her previous session) and joins the room.
func (p *pinger) connect(ctx context.Context) {
	p.t.Helper()
	if old := p.c(); old != nil {
		p.collect(old)
		_ = old.Close()
	}
	var (
		c   *xmpptest.Client
		err error
	)
	for range 50 {
		c, err = xmpptest.Connect(ctx, xmpptest.Options{Addr: p.srv.Addr(), JID: aliceJID, Password: alicePW,
			Resource: "ping", RootCAs: p.srv.CertPool(), Timeout: 10 * time.Second})
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("alice logs in: %v", err)
	}
	if err := c.Join(room, "alice"); err != nil {
		p.t.Fatalf("alice joins %s: %v", room, err)
	}
	p.mu.Lock()
	p.client = c
	p.mu.Unlock()
}

// collect counts the pongs buffered in c and drops the rest.
func (p *pinger) collect(c *xmpptest.Client) {
	for _, s := range c.Drain() {
		if s.Name == "message" && strings.HasPrefix(s.Body, "pong ") {
			from, _, _ := strings.Cut(s.From, "/")
			p.mu.Lock()
			p.pongs[from]++
			p.mu.Unlock()
		}
	}
}

// count returns the pongs received so far from the bare JID from.
func (p *pinger) count(from string) int {
	if c := p.c(); c != nil {
		p.collect(c)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pongs[from]
}

// pong sends "!ping word" to `to` and marks the test failed unless crier answers
// within 20 s; a ping lost to a rejoin in progress is sent again, every
// 2 s.
func (p *pinger) pong(ctx context.Context, to, typ, word string) {
	p.t.Helper()
	c := p.c()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		since := c.Seq()
		if err := c.SendMessage(to, typ, "!ping "+word); err != nil {
			p.t.Fatalf("alice pings %s: %v", to, err)
		}
		_, err := c.Wait(ctx, since, 2*time.Second, func(s xmpptest.Stanza) bool {
			return s.Name == "message" && strings.HasPrefix(s.Body, "pong") && strings.Contains(s.Body, word)
		})
		if err == nil {
			return
		}
	}
	p.t.Errorf("crier does not answer !ping %s in %s (%s) within 20s:\n%s", word, to, typ, c.Recent(10))
}
