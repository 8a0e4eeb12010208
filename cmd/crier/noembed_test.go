//go:build noembed

package main

import (
	"strings"
	"testing"
)

// TestNoembedRefusesEmbedded checks, in a -tags noembed build, that check
// and run refuse the demo config (it has [embedded]) with exit 2.
func TestNoembedRefusesEmbedded(t *testing.T) {
	for _, cmd := range []string{"check", "run"} {
		code, _, errs := runCLI(cmd, "-c", "../../config.toml")
		if code != 2 || !strings.Contains(errs, "config.toml:") || !strings.Contains(errs, "noembed") {
			t.Errorf("crier %s of the demo in a noembed build: exit %d, want 2:\n%s", cmd, code, errs)
		}
	}
}
