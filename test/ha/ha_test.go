package ha

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/natstest"
)

const room = "lobby@conference.localhost"

// TestFailover runs two crier processes on one account and one NATS server
// with the same [ha] bucket: one leads (joins the room, answers), the other
// stands by; after the leader is SIGKILLed the standby leads within about
// the lease time and answers.
func TestFailover(t *testing.T) {
	srv := crierproc.StartMini(t, "alice")
	ns := natstest.Start(t)
	tables := fmt.Sprintf("[nats]\nurl = %q\n\n[ha]\nbucket = \"crier-ha\"\n\n[commands]\nadmins = [\"alice@localhost\"]\n\n[[rooms]]\njid = %q\nnick = \"crier\"\n\n"+
		"[[rules]]\nname = \"ping\"\nmatch = \"^!ping$\"\nreply = \"pong {{.Nick}}\"\n", ns.URL(), room)
	start := func(resource string) *crierproc.Daemon {
		d := crierproc.Run(t, srv.XMPP(resource), tables)
		d.WaitReady(t, 30*time.Second)
		return d
	}
	a := start("one")
	waitMetric(t, a, "crier_ha_leader", 1, 15*time.Second)
	b := start("two")
	alice := srv.Dial(t, "alice")
	if err := alice.Join(room, "alice"); err != nil {
		t.Fatal(err)
	}
	pongs := func(within time.Duration) int {
		n := 0
		deadline := time.After(within)
		for {
			select {
			case <-deadline:
				return n
			default:
			}
			for _, s := range alice.Drain() {
				if s.Name == "message" && strings.HasPrefix(s.From, room+"/crier") && s.Body == "pong alice" {
					n++
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := alice.SendMessage(room, "groupchat", "!ping"); err != nil {
		t.Fatal(err)
	}
	if n := pongs(2 * time.Second); n != 1 {
		t.Fatalf("%d answers to one !ping with a leader and a standby, want 1", n)
	}
	if v := metric(t, b, "crier_ha_leader"); v != 0 {
		t.Fatalf("the standby says it leads (%v)", v)
	}
	if occ := srv.Occupants(room); countPrefix(occ, "crier") != 1 {
		t.Fatalf("room occupants %v: want exactly one crier (the standby joins no room)", occ)
	}
	// /-/ready says who leads, since when, and who stands by.
	waitReadyLine(t, a, "ha: leading as crier@localhost/one@", "leader crier@localhost/one@", "standing by: crier@localhost/two@")
	waitReadyLine(t, b, "ha: standing by as crier@localhost/two@", "leader crier@localhost/one@", " since ", "standing by: crier@localhost/two@")
	if code := leaderStatus(t, a); code != http.StatusOK {
		t.Errorf("GET /-/leader on the leader: %d, want 200", code)
	}
	if code := leaderStatus(t, b); code != http.StatusServiceUnavailable {
		t.Errorf("GET /-/leader on the standby: %d, want 503", code)
	}
	if v := metric(t, a, "crier_ha_instances"); v != 2 {
		t.Errorf("crier_ha_instances = %v on the leader, want 2", v)
	}
	// A room joined by command on the leader is in the shared state: the
	// next leader joins it too.
	const extra = "extra@conference.localhost"
	if err := alice.SendMessage("crier@localhost/one", "chat", "!join "+extra); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, a, "crier_rooms_joined", 2, 15*time.Second)

	killed := time.Now()
	a.Kill(t)
	waitMetric(t, b, "crier_ha_leader", 1, 30*time.Second)
	led := time.Since(killed)
	// The standby joins the room and answers.
	var answered time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for answered == 0 && time.Now().Before(deadline) {
		_ = alice.SendMessage(room, "groupchat", "!ping")
		if pongs(500*time.Millisecond) > 0 {
			answered = time.Since(killed)
		}
	}
	if answered == 0 {
		t.Fatalf("the standby never answered after the leader was killed (it led after %v)\n%s", led, b.LogTail(40))
	}
	t.Logf("failover: SIGKILL -> standby leads %v, -> answers in the room %v (default lease, 5s)", led.Round(time.Millisecond), answered.Round(time.Millisecond))
	if answered > 10*time.Second {
		t.Errorf("failover took %v, want under 10s with the default lease", answered)
	}
	waitMetric(t, b, "crier_rooms_joined", 2, 15*time.Second)
	waitReadyLine(t, b, "ha: leading as crier@localhost/two@", "leader crier@localhost/two@", "standing by: none")
	if code := leaderStatus(t, b); code != http.StatusOK {
		t.Errorf("GET /-/leader on the new leader: %d, want 200", code)
	}
	renewed := false
	for deadline := time.Now().Add(5 * time.Second); !renewed && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		renewed = metric(t, b, "crier_ha_lease_renew_seconds_count") >= 1
	}
	if !renewed {
		t.Error("no lease renewal observed on the new leader within a lease")
	}
}

// leaderStatus is the status code of d's GET /-/leader.
func leaderStatus(t *testing.T, d *crierproc.Daemon) int {
	t.Helper()
	resp, err := http.Get("http://" + d.HTTPAddr() + "/-/leader")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReadyLine waits until the "ha:" line of d's /-/ready holds every
// part (the view is refreshed every third of a lease).
func waitReadyLine(t *testing.T, d *crierproc.Daemon, parts ...string) {
	t.Helper()
	line := ""
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + d.HTTPAddr() + "/-/ready")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		line = ""
		for l := range strings.SplitSeq(string(body), "\n") {
			if strings.HasPrefix(l, "ha: ") {
				line = l
			}
		}
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return
		}
	}
	t.Fatalf("/-/ready's ha line is %q, want it to hold %q", line, parts)
}

func countPrefix(list []string, p string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, p) {
			n++
		}
	}
	return n
}

func metric(t *testing.T, d *crierproc.Daemon, name string) float64 {
	t.Helper()
	v, err := d.Metric(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}
