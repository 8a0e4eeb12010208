package ha

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/natstest"
	"crier/internal/state"
)

// TestFirstStartMigrates: a single instance's state file (a room joined by
// command) is copied into the empty [ha] bucket at the first start with
// [ha], so the room is joined; a second instance with an empty state_dir
// of its own does not copy anything over it.
func TestFirstStartMigrates(t *testing.T) {
	srv := crierproc.StartMini(t, "alice")
	ns := natstest.Start(t)
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "crier.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	core, err := st.Namespace("core", 1)
	if err != nil {
		t.Fatal(err)
	}
	const extra = "kept@conference.localhost"
	if err := core.Update(func(tx state.Tx) error {
		return tx.Put("rooms/"+extra, []byte(`{"JID":"`+extra+`","Nick":"crier"}`))
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	tables := func(stateDir string) string {
		return fmt.Sprintf("[bot]\nstate_dir = %q\n\n[nats]\nurl = %q\n\n[ha]\nbucket = \"crier-ha\"\n", stateDir, ns.URL())
	}
	a := crierproc.Run(t, srv.XMPP("one"), tables(dir))
	a.WaitReady(t, 30*time.Second)
	waitMetric(t, a, "crier_ha_leader", 1, 15*time.Second)
	waitMetric(t, a, "crier_rooms_joined", 1, 15*time.Second)
	if occ := srv.Occupants(extra); countPrefix(occ, "crier") != 1 {
		t.Fatalf("occupants of the room from the state file: %v", occ)
	}
	// Its own file is left as it was; a restart does not copy again
	// (the bucket has state now), and the room is still joined.
	if err := a.Stop(crierproc.StopLimit); err != nil {
		t.Fatal(err)
	}
	b := crierproc.Run(t, srv.XMPP("two"), tables(dir))
	b.WaitReady(t, 30*time.Second)
	waitMetric(t, b, "crier_rooms_joined", 1, 15*time.Second)
	if !strings.Contains(b.Logs(), "the state file in bot.state_dir is not used") {
		t.Fatalf("the second start did not say the bucket is the state:\n%s", b.LogTail(30))
	}
}

// TestReplicasNeedACluster: ha.replicas = 3 against one NATS server stops
// the start with an error that says why (exit 2: the config does not fit
// the servers).
func TestReplicasNeedACluster(t *testing.T) {
	srv := crierproc.StartMini(t)
	ns := natstest.Start(t)
	path, _ := crierproc.WriteConfig(t, srv.XMPP("one"), fmt.Sprintf("[nats]\nurl = %q\n\n[ha]\nbucket = \"crier-ha\"\nreplicas = 3\n", ns.URL()))
	cmd := exec.Command(crierproc.Binary(t), "run", "-c", path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("crier run = %v, want exit 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "ha.replicas = 3 needs a NATS cluster of at least 3 JetStream servers") {
		t.Fatalf("no hint about ha.replicas:\n%s", out)
	}
}
