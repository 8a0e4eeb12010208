package crierproc

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// Mini is an in-process mini server (domain localhost) that the crier
// binary signs in to, as it would to a real one. Each account local has the
// password local+"pw"; crier's account is crier@localhost.
type Mini struct {
	*miniserver.Server
	// CAFile holds the server's certificate, for crier's ca_file.
	CAFile string
}

// StartMini starts a mini server with the accounts crier and locals; it
// stops when the test ends.
func StartMini(t testing.TB, locals ...string) *Mini {
	t.Helper()
	accounts := map[string]string{"crier@localhost": "crierpw"}
	for _, l := range locals {
		accounts[l+"@localhost"] = l + "pw"
	}
	srv, err := miniserver.Start(context.Background(), miniserver.Config{
		Domain: "localhost", Addr: "127.0.0.1:0", Accounts: accounts, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &Mini{Server: srv, CAFile: WriteFile(t, "ca.pem", srv.CACertPEM())}
}

// XMPP is crier's [xmpp] table for the server, binding resource.
func (m *Mini) XMPP(resource string) XMPP {
	return XMPP{JID: "crier@localhost", Password: "crierpw", Resource: resource, Address: m.Addr(), CAFile: m.CAFile}
}

// Dial logs local in.
func (m *Mini) Dial(t *testing.T, local string) *xmpptest.Client {
	t.Helper()
	return xmpptest.Dial(t, xmpptest.Options{Addr: m.Addr(), JID: local + "@localhost", Password: local + "pw",
		RootCAs: m.CertPool(), Timeout: 10 * time.Second})
}
