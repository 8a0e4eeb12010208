package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/internal/miniserver"
)

// startMini runs the embedded server with every listener on loopback.
func startMini(t *testing.T) *miniserver.Server {
	t.Helper()
	return startMiniWith(t, miniserver.Config{
		Domain:   "localhost",
		Addr:     "127.0.0.1:0",
		TLSAddr:  "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Accounts: map[string]string{"bot@localhost": "pw"},
	})
}

// startMiniWith runs the embedded server with cfg (logging discarded) until
// the test ends.
func startMiniWith(t *testing.T, cfg miniserver.Config) *miniserver.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := miniserver.Start(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		cancel()
	})
	return s
}

func miniOptions(s *miniserver.Server) Options {
	return Options{
		JID:       jid.MustParse("bot@localhost"),
		Password:  "pw",
		Resource:  "crier",
		Address:   s.Addr(),
		TLSConfig: &tls.Config{RootCAs: s.CertPool()},
		Timeout:   10 * time.Second,
	}
}

// roundTrip sends a chat message to the session's own full JID and waits
// for the server to route it back, as seen by the tap.
func roundTrip(t *testing.T, c *Conn, rec *recorder) {
	t.Helper()
	serve(t, c)
	msg := stanza.Message{To: c.JID, Type: stanza.ChatMessage}
	if err := c.Session.Send(context.Background(), msg.Wrap(nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, out := rec.find(Out, nsClient, "message", "")
		_, in := rec.find(In, nsClient, "message", "")
		return out && in
	})
}

func TestMiniserverTCP(t *testing.T) {
	s := startMini(t)
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"starttls", func(*Options) {}},
		{"direct", func(o *Options) { o.TLS, o.Address = TLSDirect, s.TLSAddr() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			o := miniOptions(s)
			o.Tap = rec
			tc.edit(&o)
			c := connect(t, o)
			if c.JID.String() != "bot@localhost/crier" || !c.Secure {
				t.Fatalf("JID=%s Secure=%v", c.JID, c.Secure)
			}
			if !strings.HasPrefix(c.Mechanism, "SCRAM-SHA-") {
				t.Errorf("Mechanism = %q, want SCRAM", c.Mechanism)
			}
			if _, ok := rec.find(In, nsClient, "iq", "bot@localhost/crier"); !ok {
				t.Error("tap missed the bind result")
			}
			roundTrip(t, c, rec)
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestMiniserverErrors(t *testing.T) {
	s := startMini(t)
	o := miniOptions(s)
	o.Password = "wrong"
	_, err := Connect(context.Background(), o)
	if !errors.Is(err, ErrAuth) || Reason(err) != "auth" {
		t.Errorf("wrong password: %v (reason %s)", err, Reason(err))
	}
	o = miniOptions(s)
	o.TLSConfig = nil
	_, err = Connect(context.Background(), o)
	if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "x509") {
		t.Errorf("untrusted certificate: %v", err)
	}
}

func TestMiniserverBOSH(t *testing.T) {
	s := startMini(t)
	rec := &recorder{}
	o := miniOptions(s)
	o.Transport, o.BOSHURL, o.Address, o.Tap = TransportBOSH, s.BOSHURL(), "", rec
	c := connect(t, o)
	if c.JID.String() != "bot@localhost/crier" || c.Transport != TransportBOSH {
		t.Fatalf("JID=%s Transport=%s", c.JID, c.Transport)
	}
	// Plain HTTP on loopback: encrypted it is not, and PLAIN stays out.
	if c.Secure || c.Mechanism == "PLAIN" {
		t.Errorf("Secure=%v Mechanism=%s", c.Secure, c.Mechanism)
	}
	roundTrip(t, c, rec)
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
