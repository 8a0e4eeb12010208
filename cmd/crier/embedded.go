//go:build !noembed

package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"

	"crier/examples/webchat"
	"crier/internal/config"
	"crier/internal/embeddednats"
	"crier/internal/miniserver"
	"crier/plugins/natsrelay"
)

// startEmbedded starts the in-process servers that [embedded] asks for:
// the mini XMPP server (with the bot's own account, the demo accounts and
// the web chat) and a NATS server with JetStream. It returns the
// certificates to trust and a function that stops them after the bot. They
// do not share the daemon's context: the bot still leaves its rooms during
// a graceful shutdown.
func startEmbedded(cfg *config.Config, log *slog.Logger) (*x509.CertPool, func(), error) {
	var roots *x509.CertPool
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if cfg.Embedded.XMPP {
		domain := cfg.XMPP.Addr().Domainpart()
		accounts := map[string]string{cfg.XMPP.Addr().Bare().String(): cfg.XMPP.Password.Reveal()}
		for _, a := range cfg.Embedded.Accounts {
			accounts[a.JID] = a.Password.Reveal()
		}
		srv, err := miniserver.Start(context.Background(), miniserver.Config{
			Domain:   domain,
			Addr:     cfg.XMPP.Address,
			TLSAddr:  cfg.Embedded.TLSAddress,
			HTTPAddr: cfg.Embedded.HTTP,
			Accounts: accounts,
			Web:      webchat.FS,
			Logger:   log,
		})
		if err != nil {
			return nil, stop, fmt.Errorf("crier: embedded server: %w", err)
		}
		stops = append(stops, func() { srv.Close() })
		log.Info("embedded XMPP server up", "domain", domain, "c2s", srv.Addr(), "http", srv.HTTPAddr(), "accounts", len(accounts))
		roots = srv.CertPool()
		if p, err := writeEmbeddedCA(srv.CACertPEM()); err != nil {
			log.Warn("cannot save the embedded server's certificate for crier send", "err", err)
		} else {
			log.Info("embedded server certificate saved (trusted by crier send with this config)", "path", p)
		}
	}
	if cfg.Embedded.NATS {
		ns, err := embeddednats.Start(context.Background(), natsrelay.ConfigOf(cfg.Plugins).URL, "")
		if err != nil {
			stop()
			return nil, func() {}, fmt.Errorf("crier: embedded NATS: %w", err)
		}
		stops = append(stops, func() { ns.Close() })
		log.Info("embedded NATS server up (JetStream on)", "url", ns.ClientURL())
	}
	return roots, stop, nil
}
