//go:build peers

package peers_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"crier/internal/boshwire/conform"
	"crier/internal/peers"
)

// boshDeviations are, for each peer, the conformance checks its BOSH is
// known to fail, with the reason. A check failing that is not listed fails
// the test, and so does a listed one that passes (the list must stay true).
var boshDeviations = map[string]map[string]string{
	"prosody":  prosodyBOSHDeviations,
	"ejabberd": ejabberdBOSHDeviations,
}

// ejabberdBOSHDeviations are ejabberd 23.01's (mod_bosh).
var ejabberdBOSHDeviations = map[string]string{
	"wait-invalid": "a bad wait is a bare HTTP 400, not a terminate with bad-request",
	"hold-invalid": "a bad hold is a bare HTTP 400, not a terminate with bad-request",
	"host-unknown": "an unknown domain is refused with internal-server-error",
	"content-type": "the 'content' attribute is ignored: responses stay text/xml",
	"hold-zero":    "hold='0' is accepted but empty requests are still held for 'wait'",
	"rid-stale":    "a repeated rid no longer buffered is held, not answered with item-not-found",
	"pause":        "a pause request ends the session with item-not-found after 'wait'",
}

// prosodyBOSHDeviations are Prosody 0.12's (mod_bosh).
var prosodyBOSHDeviations = map[string]string{
	"hold-invalid": "hold='-1' is taken as hold='1' instead of a bad-request",
	"hold-zero":    "hold='0' (a polling session) is answered hold='1', more than asked",
	"host-unknown": "an unknown domain is refused with improper-addressing, which is for a missing 'to'",
	"content-type": "the 'content' attribute is ignored: responses stay text/xml",
}

// TestBOSHConformance runs the XEP-0124/XEP-0206 conformance checks of
// internal/boshwire/conform against each peer's BOSH endpoint and reports
// the score. The mini server's connection manager passes every check (its
// own test in internal/miniserver/boshcm).
func TestBOSHConformance(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			if p.BOSHURL == "" {
				t.Fatalf("%s's env file %s/env has no BOSH_URL", name, p.Dir)
			}
			alice := p.Account(t, "alice")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			user, _, _ := strings.Cut(alice.JID, "@")
			rs := conform.Run(ctx, conform.Target{URL: p.BOSHURL, Domain: p.Domain, User: user, Password: alice.Password})
			passed, total := conform.Score(rs)
			t.Logf("%s BOSH, XEP-0124/0206 conformance:\n%s", name, conform.Report(rs))
			deviations := boshDeviations[name]
			var failed []string
			for _, r := range rs {
				why, known := deviations[r.ID]
				switch {
				case r.Err != nil && !known:
					t.Errorf("%s (%s, %s): %v", r.ID, r.Section, r.Rule, r.Err)
				case r.Err != nil:
					failed = append(failed, r.ID)
					t.Logf("known deviation %s: %s", r.ID, why)
				case known:
					t.Errorf("%s passes now: remove it from the known deviations (%s)", r.ID, why)
				}
			}
			sort.Strings(failed)
			t.Logf("%s score %d/%d; known deviations failing: %v", name, passed, total, failed)
		})
	}
}
