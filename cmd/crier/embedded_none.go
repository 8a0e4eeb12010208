//go:build noembed

package main

import (
	"crypto/x509"
	"errors"
	"log/slog"

	"crier/internal/config"
)

// haveEmbedded says whether this build has the embedded servers.
const haveEmbedded = false

// startEmbedded refuses [embedded]: this is the lean production build
// (-tags noembed), without the demo's in-process servers.
func startEmbedded(cfg *config.Config, _ *slog.Logger) (*x509.CertPool, func(), error) {
	if cfg.Embedded.XMPP || cfg.Embedded.NATS {
		return nil, func() {}, errors.New("crier: this build has no embedded servers (built with -tags noembed); turn [embedded] off or use a default build")
	}
	return nil, func() {}, nil
}
