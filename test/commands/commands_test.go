// Package commands runs crier's commands acceptance scenario (chat and
// XEP-0050 ad-hoc commands, rights, rooms joined by command kept across a
// SIGKILL) against the embedded mini server, as the peers suite runs it
// against Prosody and ejabberd.
package commands

import (
	"testing"

	"crier/internal/crierproc"
)

func TestCommandsOnMiniServer(t *testing.T) {
	srv := crierproc.StartMini(t, "alice", "bob")
	crierproc.RunCommandsScenario(t, crierproc.CommandsEnv{
		Domain: "localhost", MUC: "conference.localhost", XMPP: srv.XMPP("crier"), Dial: srv.Dial,
	})
}
