//go:build peers

package peers_test

import (
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// TestModerator runs the moderator acceptance scenario against Prosody
// with mod_muc_moderation (Debian's prosody-modules): a disguised blocked
// phrase is retracted (XEP-0425); a flooder is warned, muted, kicked,
// banned for a time and unbanned when the time is up, across a crier
// restart; a clean player gets nothing.
func TestModerator(t *testing.T) {
	p := peers.Get(t, "prosody")
	crierproc.RunModeratorScenario(t, crierproc.ModeratorEnv{
		Domain: p.Domain, MUC: "conference." + p.Domain,
		XMPP: tcpXMPP(p, "starttls", p.Account(t, "crier").Password),
		Dial: func(t *testing.T, local string) *xmpptest.Client {
			a := p.Account(t, local)
			return xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: a.JID, Password: a.Password,
				RootCAs: p.CertPool(), Timeout: 15 * time.Second})
		},
	})
}
