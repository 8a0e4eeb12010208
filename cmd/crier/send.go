package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"crier/bot"
	"crier/internal/config"
)

// embeddedCAPath is where `crier run` leaves the embedded server's
// certificate, so that `crier send` with the same config trusts it.
func embeddedCAPath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "crier", "embedded-ca.pem")
}

func writeEmbeddedCA(pem []byte) (string, error) {
	p := embeddedCAPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, pem, 0o600)
}

// cmdSend is the one-shot push: it exits 0 only once the server
// acknowledged the message.
func cmdSend(args []string, stdin io.Reader, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	to := fs.String("to", "", "recipient JID (a room's bare JID for groupchat)")
	typ := fs.String("type", "", "message type: chat, headline, normal or groupchat (default: groupchat for a configured room, else chat)")
	subject := fs.String("subject", "", "message subject")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: errors.New("")}
	}
	if *to == "" {
		return usageErr("crier send: --to is required")
	}
	var body string
	switch {
	case fs.NArg() == 0 || (fs.NArg() == 1 && fs.Arg(0) == "-"):
		b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("crier send: reading the body: %w", err)}
		}
		body = strings.TrimRight(string(b), "\n")
	default:
		body = strings.Join(fs.Args(), " ")
	}
	if body == "" && *subject == "" {
		return usageErr("crier send: nothing to send (give a BODY, or - for standard input)")
	}
	cfg, _, err := loadAll(*path)
	if err != nil {
		return err
	}
	t := *typ
	if t == "" {
		t = "chat"
		for _, r := range cfg.Rooms {
			if strings.EqualFold(r.Addr().Bare().String(), *to) {
				t = "groupchat"
			}
		}
	}
	switch t {
	case "chat", "headline", "normal", "groupchat":
	default:
		return usageErr("crier send: --type %q: want chat, headline, normal or groupchat", t)
	}
	log, _ := newLogger(stderr, "text", "warn")
	opts := bot.Options{Logger: log}
	if cfg.Embedded.XMPP {
		opts.RootCAs = embeddedRoots(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := bot.SendOnce(ctx, cfg, opts, bot.OneShot{To: *to, Type: t, Subject: *subject, Body: body}); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("crier send: %w", err)}
	}
	return nil
}

// embeddedRoots trusts the certificate a running demo left behind.
func embeddedRoots(cfg *config.Config) *x509.CertPool {
	pem, err := os.ReadFile(embeddedCAPath())
	if err != nil {
		return nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(pem)
	return pool
}
