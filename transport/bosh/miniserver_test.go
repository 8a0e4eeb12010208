package bosh_test

import (
	"context"
	"runtime"
	"testing"
	"time"

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
