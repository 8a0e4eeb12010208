package transport

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuf is a log buffer safe for concurrent writers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestNothingAfterStreamEnd: while Close ends the stream, the server keeps
// asking for acknowledgements (<r/>), as Prosody does after routing a
// stanza. No answer, and no final <a/>, may go out after
// </stream:stream>: the tap, which follows every outgoing byte, would stop
// with "expected a stream header, got <a>". Many rounds make the race
// likely; the time bounds them.
func TestNothingAfterStreamEnd(t *testing.T) {
	s := startMini(t)
	var logs syncBuf
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	stop := time.Now().Add(20 * time.Second)
	rounds := 0
	for ; rounds < 60 && time.Now().Before(stop); rounds++ {
		o := miniOptions(s)
		o.Logger = log
		c, err := Connect(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		serve(t, c)
		waitFor(t, func() bool { return c.SM() })
		me := c.JID.String()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if s.SendRaw(me, []byte("<r xmlns='urn:xmpp:sm:3'/>")) != nil {
					return // the session is gone
				}
				time.Sleep(20 * time.Microsecond)
			}
		}()
		time.Sleep(time.Duration(rounds%5) * 100 * time.Microsecond)
		_ = c.Close()
		wg.Wait()
		if l := logs.String(); strings.Contains(l, "tap stopped") {
			t.Fatalf("round %d: an element went out after the stream's end:\n%s", rounds, l)
		}
	}
	t.Logf("%d rounds", rounds)
}
