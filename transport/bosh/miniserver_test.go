package bosh_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"mellium.im/xmpp/stream"

	"crier/internal/miniserver"
	"crier/transport/bosh"
)

// TestAgainstMiniserver logs two accounts in through the mini server's
// /http-bind and sends a message between them.
func TestAgainstMiniserver(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := miniserver.Start(ctx, miniserver.Config{
		Domain:   domain,
		Addr:     "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Accounts: map[string]string{"alice@" + domain: "apass", "bob@" + domain: "bpass"},
	})
	if err != nil {
		t.Fatal(err)
	}
	alice := login(t, s.BOSHURL(), "alice", "apass", bosh.Config{Wait: 2})
	bob := login(t, s.BOSHURL(), "bob", "bpass", bosh.Config{Wait: 2})
	// Be available so that the server routes chat to the bound resource.
	alice.presence(t)
	bob.presence(t)
	time.Sleep(100 * time.Millisecond)
	alice.send(t, "bob@"+domain, "hello through the mini server")
	bob.expect(t, "hello through the mini server")
	bob.send(t, "alice@"+domain, "and back")
	alice.expect(t, "and back")
	st := alice.conn.Stats()
	t.Logf("alice: %d HTTP requests, %d stanzas sent, %d received, %d retries", st.Requests, st.StanzasSent, st.StanzasReceived, st.Retries)
	if err := alice.stop(t); err != nil {
		t.Errorf("alice Serve: %v", err)
	}
	if err := bob.stop(t); err != nil {
		t.Errorf("bob Serve: %v", err)
	}
	_ = s.Close()
	cancel()
	checkGoroutines(t, before)
}

// TestMiniserverCloseEndsBOSHSessions closes the mini server under a live
// BOSH session: the session ends at once with system-shutdown, and nothing
// is left running on either side.
func TestMiniserverCloseEndsBOSHSessions(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := miniserver.Start(context.Background(), miniserver.Config{
		Domain:   domain,
		Addr:     "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Accounts: map[string]string{"alice@" + domain: "apass"},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	alice := login(t, s.BOSHURL(), "alice", "apass", bosh.Config{Wait: 30, RetryDelay: 20 * time.Millisecond})
	alice.presence(t)
	time.Sleep(100 * time.Millisecond) // a request is held now
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = s.Close()
	}()
	select {
	case err := <-alice.done:
		// The held request carries the connection manager's
		// system-shutdown, not a broken connection.
		if !errors.Is(err, stream.SystemShutdown) {
			t.Fatalf("Serve returned %v, want the system-shutdown stream error", err)
		}
		if c := alice.conn.Stats().Condition; c != "system-shutdown" {
			t.Errorf("Stats().Condition = %q, want system-shutdown", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the BOSH session outlived the server by 10s")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Server.Close did not return")
	}
	_ = alice.conn.Close()
	checkGoroutines(t, before)
}
