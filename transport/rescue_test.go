package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// TestUnacknowledgedOnSessionEnd: messages a stream-managed session
// received are acknowledged before a clean close (a final <a/>), so the
// server passes nothing on; what a session never received (it was cut and
// not resumed in time, or replaced) is passed on to offline storage and
// reaches the account's next login, once.
func TestUnacknowledgedOnSessionEnd(t *testing.T) {
	s := startMiniWith(t, miniserver.Config{
		Domain:        "localhost",
		Addr:          "127.0.0.1:0",
		Accounts:      map[string]string{"bot@localhost": "pw", "alice@localhost": "alicepw"},
		ResumeTimeout: 200 * time.Millisecond,
	})
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: s.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: s.CertPool()})
	bot := func(t *testing.T, resource string) *Conn {
		t.Helper()
		c, err := Connect(context.Background(), Options{
			JID: jid.MustParse("bot@localhost"), Password: "pw", Resource: resource,
			Address: s.Addr(), TLSConfig: &tls.Config{RootCAs: s.CertPool()}, Timeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		serve(t, c)
		return c
	}
	waitHandled := func(t *testing.T, c *Conn, n uint32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for c.SMStats().Handled < n {
			if time.Now().After(deadline) {
				t.Fatalf("handled %d, want %d", c.SMStats().Handled, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// offline logs in as bot and returns the bodies it gets with prefix.
	offline := func(t *testing.T, resource, prefix string) []string {
		t.Helper()
		c := xmpptest.Dial(t, xmpptest.Options{Addr: s.Addr(), JID: "bot@localhost", Password: "pw", Resource: resource, RootCAs: s.CertPool()})
		time.Sleep(300 * time.Millisecond)
		var got []string
		for _, st := range c.Drain() {
			if st.Name == "message" && strings.HasPrefix(st.Body, prefix) {
				got = append(got, st.Body)
			}
		}
		return got
	}
	waitEnabled := func(t *testing.T, c *Conn) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !c.SMStats().Enabled {
			if time.Now().After(deadline) {
				t.Fatal("stream management not enabled")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	t.Run("close acknowledges", func(t *testing.T) {
		c := bot(t, "close")
		waitEnabled(t, c)
		before := c.SMStats().Handled
		for i := range 3 {
			_ = alice.SendMessage("bot@localhost/close", "chat", fmt.Sprint("close-", i))
		}
		waitHandled(t, c, before+3)
		rescued := s.Stats().Rescued
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if n := s.Stats().Rescued - rescued; n != 0 {
			t.Fatalf("the server passed on %d received messages after a clean close", n)
		}
		if got := offline(t, "close-after", "close-"); len(got) != 0 {
			t.Fatalf("messages received before the close came again: %q", got)
		}
	})

	t.Run("expired", func(t *testing.T) {
		c := bot(t, "cut")
		waitEnabled(t, c)
		c.Abort() // a network failure: the session hibernates
		deadline := time.Now().Add(5 * time.Second)
		for s.Stats().Hibernating == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the session did not hibernate")
			}
			time.Sleep(5 * time.Millisecond)
		}
		rescued := s.Stats().Rescued
		for i := range 3 {
			_ = alice.SendMessage("bot@localhost/cut", "chat", fmt.Sprint("cut-", i))
		}
		// Past the resumption window the server passes them on.
		deadline = time.Now().Add(5 * time.Second)
		for s.Stats().Rescued < rescued+3 {
			if time.Now().After(deadline) {
				t.Fatalf("the server passed on %d messages of the expired session, want 3", s.Stats().Rescued-rescued)
			}
			time.Sleep(10 * time.Millisecond)
		}
		got := offline(t, "later", "cut-")
		if strings.Join(got, ",") != "cut-0,cut-1,cut-2" {
			t.Fatalf("after the window passed, the next login got %q, want the 3 messages once, in order", got)
		}
	})

	t.Run("replaced", func(t *testing.T) {
		c := bot(t, "again")
		waitEnabled(t, c)
		hib := s.Stats().Hibernating
		c.Abort()
		deadline := time.Now().Add(5 * time.Second)
		for s.Stats().Hibernating == hib {
			if time.Now().After(deadline) {
				t.Fatal("the session did not hibernate")
			}
			time.Sleep(5 * time.Millisecond)
		}
		for i := range 2 {
			_ = alice.SendMessage("bot@localhost/again", "chat", fmt.Sprint("again-", i))
		}
		time.Sleep(50 * time.Millisecond)
		// A new login with the same resource, not a resumption, replaces
		// the hibernating session within its window.
		if got := offline(t, "again", "again-"); strings.Join(got, ",") != "again-0,again-1" {
			t.Fatalf("the replacing session got %q, want the 2 messages once, in order", got)
		}
	})
}
