//go:build !noembed

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"crier/examples/webchat"
	"crier/internal/config"
	"crier/internal/embeddednats"
	"crier/internal/miniserver"
	"crier/plugins/natsrelay"
)

// haveEmbedded says whether this build has the embedded servers.
const haveEmbedded = true

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
		accounts := map[string]string{}
		mc := miniserver.Config{
			Addr:     cfg.XMPP.Address,
			TLSAddr:  cfg.Embedded.TLSAddress,
			HTTPAddr: cfg.Embedded.HTTP,
			Web:      webchat.FS,
			Logger:   log,
		}
		clientKey := keyAddr{"xmpp.address", cfg.XMPP.Address}
		compKey := keyAddr{}
		if cfg.XMPP.Component() {
			// The bot is a component of the embedded server: its domain
			// is server_domain, xmpp.address its component listener.
			domain = cfg.XMPP.ServerDomain
			mc.Addr, mc.ComponentAddr = cfg.Embedded.Address, cfg.XMPP.Address
			mc.Components = map[string]string{cfg.XMPP.JID: cfg.XMPP.Password.Reveal()}
			clientKey, compKey = keyAddr{"embedded.address", cfg.Embedded.Address}, keyAddr{"xmpp.address", cfg.XMPP.Address}
		} else {
			accounts[cfg.XMPP.Addr().Bare().String()] = cfg.XMPP.Password.Reveal()
		}
		certPath := demoCertPath(cfg)
		cert, err := demoCertificate(certPath, domain, log)
		if err != nil {
			return nil, stop, fmt.Errorf("crier: embedded server: %w", err)
		}
		for _, a := range cfg.Embedded.Accounts {
			accounts[a.JID] = a.Password.Reveal()
		}
		mc.Domain, mc.Accounts, mc.Certificate = domain, accounts, cert
		srv, err := miniserver.Start(context.Background(), mc)
		if err != nil {
			return nil, stop, inUse(fmt.Errorf("crier: embedded server: %w", err), cfg.Path,
				clientKey, compKey, keyAddr{"embedded.tls_address", cfg.Embedded.TLSAddress}, keyAddr{"embedded.http", cfg.Embedded.HTTP})
		}
		stops = append(stops, func() { srv.Close() })
		log.Info("embedded XMPP server up", "domain", domain, "c2s", srv.Addr(), "http", srv.HTTPAddr(), "accounts", len(accounts))
		roots = srv.CertPool()
		if cert != nil {
			log.Info("embedded server certificate (trusted by crier send with this config; --ca-file for other clients)", "path", certPath)
		}
	}
	if cfg.Embedded.NATS {
		ns, err := embeddednats.Start(context.Background(), natsrelay.ConfigOf(cfg.Plugins).URL, "")
		if err != nil {
			stop()
			return nil, func() {}, inUse(fmt.Errorf("crier: embedded NATS: %w", err), cfg.Path, keyAddr{"nats.url", hostPortOf(natsrelay.ConfigOf(cfg.Plugins).URL)})
		}
		stops = append(stops, func() { ns.Close() })
		log.Info("embedded NATS server up (JetStream on)", "url", ns.ClientURL())
	}
	return roots, stop, nil
}

// demoCertificate returns the embedded server's certificate: the one kept
// at path, or a new one saved there first. A file that is there is never
// replaced, so that a start (even one that fails later, on a port in use)
// cannot change the certificate a running demo presents and crier send
// trusts. It is created in one step (written aside, then linked into
// place), so that two starts at once agree on one certificate. When the
// directory is not writable, the server gets a certificate of its own for
// this run only (nil), and the log says so.
func demoCertificate(path, domain string, log *slog.Logger) (*tls.Certificate, error) {
	if cert, err := readDemoCert(path, domain); err == nil || !errors.Is(err, os.ErrNotExist) {
		return cert, err
	}
	certPEM, keyPEM, err := miniserver.NewCertificate(domain)
	if err != nil {
		return nil, err
	}
	if err := createFile(path, append(certPEM, keyPEM...)); err != nil && !errors.Is(err, os.ErrExist) {
		log.Warn("cannot keep the embedded server's certificate: it changes at each start, and crier send needs --ca-file", "path", path, "err", err)
		return nil, nil
	}
	return readDemoCert(path, domain)
}

// readDemoCert loads the certificate and key kept at path and checks that
// they still serve domain for at least a day.
func readDemoCert(path, domain string) (*tls.Certificate, error) {
	data, err := readPrivateFile(path, 64<<10)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (remove the file to make a new certificate)", path, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := leaf.VerifyHostname(domain); err != nil {
		return nil, fmt.Errorf("%s: %w (remove the file to make a new certificate)", path, err)
	}
	if time.Now().Add(24 * time.Hour).After(leaf.NotAfter) {
		return nil, fmt.Errorf("%s: the certificate expires on %s (remove the file to make a new one)", path, leaf.NotAfter.Format(time.DateOnly))
	}
	return &cert, nil
}

// createFile creates path with data, readable by its owner only, unless
// it exists (os.ErrExist): the data is written to a temporary file of the
// same directory and linked into place, so that a reader never sees it
// half written.
func createFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Link(tmp, path)
}

// hostPortOf returns the host:port of a URL such as nats://127.0.0.1:4222
// (the first of a comma-separated list), or "" when it has none.
func hostPortOf(raw string) string {
	raw, _, _ = strings.Cut(raw, ",")
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return ""
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), strconv.Itoa(4222))
	}
	return u.Host
}
