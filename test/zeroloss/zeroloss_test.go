package zeroloss

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// Accounts on the mini server.
const (
	crierJID = "crier@localhost"
	crierPW  = "crierpw"
	rcvJID   = "rcv@localhost"
	rcvPW    = "rcvpw"
)

// startMini runs a mini server with a c2s listener and BOSH, and the
// accounts crier and rcv; it stops when the test ends.
func startMini(t testing.TB) *miniserver.Server {
	t.Helper()
	srv, err := miniserver.Start(context.Background(), miniserver.Config{
		Domain:   "localhost",
		Addr:     "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Accounts: map[string]string{crierJID: crierPW, rcvJID: rcvPW},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("mini server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// miniXMPP returns crier's [xmpp] section for srv over transport ("tcp"
// or "bosh").
func miniXMPP(t testing.TB, srv *miniserver.Server, transport string) XMPP {
	x := XMPP{JID: crierJID, Password: crierPW, Transport: transport,
		CAFile: crierproc.WriteFile(t, "ca.pem", srv.CACertPEM())}
	if transport == "bosh" {
		x.BOSHURL = srv.BOSHURL()
	} else {
		x.Address = srv.Addr()
	}
	return x
}

// miniReceiver returns the log-in options of the receiving user.
func miniReceiver(srv *miniserver.Server, resource string) xmpptest.Options {
	return xmpptest.Options{Addr: srv.Addr(), JID: rcvJID, Password: rcvPW, Resource: resource,
		RootCAs: srv.CertPool()}
}

// TestZeroLoss publishes 10,000 JetStream events while the mini server is
// restarted twice and crier is killed with SIGKILL and started again once,
// with crier connected over TCP and over BOSH; every event must reach the
// receiver, with duplicates within DuplicateBound (see Run).
func TestZeroLoss(t *testing.T) {
	for _, transport := range []string{"tcp", "bosh"} {
		t.Run(transport, func(t *testing.T) {
			srv := startMini(t)
			res := Run(t, Scenario{
				Events:   10000,
				XMPP:     miniXMPP(t, srv, transport),
				Receiver: miniReceiver(srv, "zl-"+transport),
				RestartServer: func(t testing.TB) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := srv.Restart(ctx); err != nil {
						t.Fatalf("restart the mini server: %v", err)
					}
				},
			})
			if len(res.Disruptions) != 3 {
				t.Errorf("disruptions = %q, want 2 restarts and 1 kill", res.Disruptions)
			}
			st := srv.Stats()
			t.Logf("mini server: %d logins, %d stanzas in, %d routed, %d rejected", st.Logins, st.StanzasIn,
				st.StanzasRouted, st.Rejected)
		})
	}
}
