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
	crierproc.RunModeratorScenario(t, moderatorEnv(t, p))
}

// TestModeratorEjabberd runs the acceptance scenario against ejabberd
// 23.01. It has no XEP-0425 retraction here (no MAM, so no stanza-ids):
// the disguised phrase gets a warning. And it lets an outcast whose role
// was ever changed (the flooder's mute) join again, ban or not (a muc#admin
// outcast request and a join, without crier, show it); crier bans her
// again as she joins, so only while crier is down does she get in.
func TestModeratorEjabberd(t *testing.T) {
	p := peers.Get(t, "ejabberd")
	env := moderatorEnv(t, p)
	env.NoRetract, env.OutcastRejoins = true, true
	crierproc.RunModeratorScenario(t, env)
}

// TestModeratorLists runs the moderator's room-wide scenario (go_on, slow
// mode set by command, the ban list across two rooms) against Prosody,
// whose rooms give XEP-0421 occupant ids (Prosody 0.12's own mod_muc, not
// a community module), and ejabberd 23.01 (no occupant ids, and no
// stanza-ids without MAM, so no XEP-0425 retraction: a warning instead).
func TestModeratorLists(t *testing.T) {
	for _, c := range []struct {
		name               string
		noRetract, noOccID bool
	}{{"prosody", false, false}, {"ejabberd", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			p := peers.Get(t, c.name)
			env := moderatorEnv(t, p)
			env.NoRetract, env.NoOccupantID = c.noRetract, c.noOccID
			crierproc.RunModeratorListsScenario(t, env)
		})
	}
}

// moderatorEnv is where the moderator scenarios find p: crier's account
// over STARTTLS, the players dialled as p's accounts.
func moderatorEnv(t *testing.T, p *peers.Peer) crierproc.ModeratorEnv {
	return crierproc.ModeratorEnv{
		Domain: p.Domain, MUC: "conference." + p.Domain,
		XMPP: tcpXMPP(p, "starttls", p.Account(t, "crier").Password),
		Dial: func(t *testing.T, local string) *xmpptest.Client { return dialPlayer(t, p, local) },
	}
}

// dialPlayer signs p's account local in (no room yet).
func dialPlayer(t *testing.T, p *peers.Peer, local string) *xmpptest.Client {
	a := p.Account(t, local)
	return xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: a.JID, Password: a.Password,
		RootCAs: p.CertPool(), Timeout: 15 * time.Second})
}
