// Package moderator runs crier's moderator acceptance scenario (a flooder
// warned, muted, kicked, banned for a time and unbanned across a restart;
// a disguised blocked phrase retracted; a clean player left alone) against
// the embedded mini server, as the peers suite runs it against Prosody.
package moderator

import (
	"testing"

	"crier/internal/crierproc"
)

func TestModeratorOnMiniServer(t *testing.T) {
	srv := crierproc.StartMini(t, "alice", "bob")
	crierproc.RunModeratorScenario(t, crierproc.ModeratorEnv{
		Domain: "localhost", MUC: "conference.localhost", XMPP: srv.XMPP("crier"), Dial: srv.Dial,
	})
}

func TestModeratorListsOnMiniServer(t *testing.T) {
	srv := crierproc.StartMini(t, "alice", "bob")
	crierproc.RunModeratorListsScenario(t, crierproc.ModeratorEnv{
		Domain: "localhost", MUC: "conference.localhost", XMPP: srv.XMPP("crier"), Dial: srv.Dial,
	})
}
