package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"crier/bot"
	"crier/internal/config"
	"crier/internal/embeddednats"
	"crier/internal/miniserver"
)

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErr("crier: -log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErr("crier: -log-format %q: want text or json", format)
}

// cmdRun is the daemon. Signals become a context (SIGINT, SIGTERM) and a
// reload channel (SIGHUP); teardown runs in reverse order of start-up.
func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	format := fs.String("log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("")}
	}
	if fs.NArg() > 0 {
		return usageErr("crier run: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	log, err := newLogger(stderr, *format, *level)
	if err != nil {
		return err
	}
	cfg, _, err := loadAll(*path)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	log.Info("crier starting", "version", buildVersion(), "config", *path, "jid", cfg.XMPP.JID, "transport", cfg.XMPP.Transport)

	var roots *x509.CertPool
	if cfg.Embedded.XMPP {
		// The embedded server outlives the bot's graceful shutdown (the
		// bot still leaves its rooms), so it does not share ctx.
		srv, err := startEmbedded(context.Background(), cfg, log)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("crier: embedded server: %w", err)}
		}
		defer srv.Close()
		roots = srv.CertPool()
		if p, err := writeEmbeddedCA(srv.CACertPEM()); err != nil {
			log.Warn("cannot save the embedded server's certificate for crier send", "err", err)
		} else {
			log.Info("embedded server certificate saved (trusted by crier send with this config)", "path", p)
		}
	}

	if cfg.Embedded.NATS {
		ns, err := embeddednats.Start(context.Background(), cfg.NATS.URL, "")
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("crier: embedded NATS: %w", err)}
		}
		defer ns.Close()
		log.Info("embedded NATS server up (JetStream on)", "url", ns.ClientURL())
	}

	b, err := bot.New(cfg, bot.Options{Logger: log, Version: buildVersion(), RootCAs: roots})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	reload := func() error { return b.ReloadFile(*path) }
	if cfg.HTTP.Listen != "" {
		addr, _, err := bot.ServeOps(ctx, cfg.HTTP.Listen, b.OpsHandler(reload))
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		log.Info("operations endpoint up", "addr", addr.String(), "paths", "/metrics /-/healthy /-/ready /-/reload")
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading configuration", "config", *path)
				_ = reload() // logged by the bot
			}
		}
	}()
	if err := b.Run(ctx); err != nil {
		return &exitError{code: 1, err: err}
	}
	log.Info("crier stopped")
	return nil
}

// startEmbedded starts the mini XMPP server of demo mode, with the bot's
// own account and the configured demo accounts.
func startEmbedded(ctx context.Context, cfg *config.Config, log *slog.Logger) (*miniserver.Server, error) {
	domain := cfg.XMPP.Addr().Domainpart()
	accounts := map[string]string{cfg.XMPP.Addr().Bare().String(): cfg.XMPP.Password.Reveal()}
	for _, a := range cfg.Embedded.Accounts {
		accounts[a.JID] = a.Password.Reveal()
	}
	srv, err := miniserver.Start(ctx, miniserver.Config{
		Domain:   domain,
		Addr:     cfg.XMPP.Address,
		TLSAddr:  cfg.Embedded.TLSAddress,
		HTTPAddr: cfg.Embedded.HTTP,
		Accounts: accounts,
		Web:      webFS(),
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("embedded XMPP server up", "domain", domain, "c2s", srv.Addr(), "http", srv.HTTPAddr(), "accounts", len(accounts))
	return srv, nil
}
