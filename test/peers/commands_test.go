//go:build peers

package peers_test

import (
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// TestCommands runs the commands acceptance scenario against Prosody and
// ejabberd: an admin joins crier to rooms, makes it speak and leave, as
// chat commands and as ad-hoc commands; a stranger sees only the public
// commands and gets forbidden; a room joined by command is back after a
// SIGKILL and a restart.
func TestCommands(t *testing.T) {
	for _, name := range []string{"prosody", "ejabberd"} {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			crierproc.RunCommandsScenario(t, crierproc.CommandsEnv{
				Domain: p.Domain, MUC: "conference." + p.Domain,
				XMPP: tcpXMPP(p, "starttls", p.Account(t, "crier").Password),
				Dial: func(t *testing.T, local string) *xmpptest.Client {
					a := p.Account(t, local)
					return xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: a.JID, Password: a.Password,
						RootCAs: p.CertPool(), Timeout: 15 * time.Second})
				},
			})
		})
	}
}
