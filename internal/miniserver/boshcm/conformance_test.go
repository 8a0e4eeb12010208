package boshcm_test

import (
	"context"
	"testing"
	"time"

	"crier/internal/boshwire/conform"
	"crier/internal/miniserver"
)

// TestConformance runs the XEP-0124/XEP-0206 conformance checks against the
// mini server's connection manager: every check must pass.
func TestConformance(t *testing.T) {
	srv, err := miniserver.Start(context.Background(), miniserver.Config{
		Domain:   "localhost",
		Addr:     "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Accounts: map[string]string{"alice@localhost": "alice"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rs := conform.Run(ctx, conform.Target{URL: srv.BOSHURL(), Domain: "localhost", User: "alice", Password: "alice"})
	passed, total := conform.Score(rs)
	t.Logf("mini server connection manager, XEP-0124/0206 conformance:\n%s", conform.Report(rs))
	for _, r := range rs {
		if r.Err != nil {
			t.Errorf("%s (%s, %s): %v", r.ID, r.Section, r.Rule, r.Err)
		}
	}
	if passed != total || total < 20 {
		t.Errorf("score %d/%d, want all of at least 20", passed, total)
	}
}
