// Package moderator runs crier's moderator acceptance scenario (a flooder
// warned, muted, kicked, banned for a time and unbanned across a restart;
// a disguised blocked phrase retracted; a clean player left alone) against
// the embedded mini server, as the peers suite runs it against Prosody.
package moderator

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

func TestModeratorOnMiniServer(t *testing.T) {
	srv, err := miniserver.Start(context.Background(), miniserver.Config{
		Domain: "localhost", Addr: "127.0.0.1:0",
		Accounts: map[string]string{"crier@localhost": "botpw", "alice@localhost": "alicepw", "bob@localhost": "bobpw"},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ca := crierproc.WriteFile(t, "ca.pem", srv.CACertPEM())
	crierproc.RunModeratorScenario(t, crierproc.ModeratorEnv{
		Domain: "localhost", MUC: "conference.localhost",
		XMPP: crierproc.XMPP{JID: "crier@localhost", Password: "botpw", Resource: "crier", Address: srv.Addr(), CAFile: ca},
		Dial: func(t *testing.T, local string) *xmpptest.Client {
			return xmpptest.Dial(t, xmpptest.Options{Addr: srv.Addr(), JID: local + "@localhost", Password: local + "pw",
				RootCAs: srv.CertPool(), Timeout: 10 * time.Second})
		},
	})
}
