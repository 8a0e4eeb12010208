//go:build peers

package peers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/natstest"
	"crier/internal/peers"
	"crier/internal/xmpptest"
	"crier/test/ha"
)

// TestHAFailoverUnderLoad runs the failover scenario of test/ha against
// Prosody and ejabberd: three crier processes on one account (a resource
// each) share a JetStream relay on a 3-node NATS cluster; 10,000 events are
// pushed to user4 while the leader is SIGKILLed and a NATS node restarted,
// and alice pings the room bot before and after. Every event arrives;
// duplicates are counted, bounded and carry their first copy's origin-id;
// one answer per !ping, the first within 10 s of the kill.
func TestHAFailoverUnderLoad(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			crier := p.Account(t, "crier")
			rcv := p.Account(t, "user4")
			alice := p.Account(t, "alice")
			res := ha.FailoverUnderLoad(t, ha.LoadScenario{
				Events: 10000,
				XMPP: func(resource string) crierproc.XMPP {
					x := tcpXMPP(p, "starttls", crier.Password)
					x.Resource = resource
					return x
				},
				Receiver: rcv.JID,
				Dial: func(t *testing.T) *xmpptest.Client {
					return xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: rcv.JID, Password: rcv.Password,
						Resource: fmt.Sprintf("ha-%d", time.Now().UnixNano()), RootCAs: p.CertPool(), Timeout: 15 * time.Second})
				},
				Room: fmt.Sprintf("haload%d@conference.%s", time.Now().UnixNano()%1e9, p.Domain),
				DialPinger: func(t *testing.T) *xmpptest.Client {
					return xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: alice.JID, Password: alice.Password,
						Resource: "haload", RootCAs: p.CertPool(), Timeout: 15 * time.Second})
				},
			})
			t.Logf("%s: %d events, %d received, %d duplicates, by sender %v; the room answered %v after the kill",
				name, res.Events, res.Received, res.Duplicates, res.BySender, res.Answered.Round(time.Millisecond))
		})
	}
}

// TestHARoomFailover: two crier processes on one account and one NATS
// server share an [ha] bucket on a real server. One !ping in the room gets
// exactly one answer (the standby is in no room and says nothing); after
// the leader is SIGKILLed the standby joins the room and answers within the
// 10 s failover target, again exactly once per !ping.
func TestHARoomFailover(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			crier := p.Account(t, "crier")
			alice := p.Account(t, "alice")
			ns := natstest.Start(t)
			room := fmt.Sprintf("ha%d@conference.%s", time.Now().UnixNano()%1e9, p.Domain)
			tables := fmt.Sprintf("[nats]\nurl = %q\n\n[ha]\nbucket = \"crier-ha\"\n\n", ns.URL()) + roomsTOML(room) +
				"[[rules]]\nname = \"ping\"\nmatch = \"^!ping\"\nreply = \"pong {{.Body}}\"\n"
			start := func(resource string) *crierproc.Daemon {
				x := tcpXMPP(p, "starttls", crier.Password)
				x.Resource = resource
				d := crierproc.Run(t, x, tables)
				d.WaitReady(t, 60*time.Second)
				return d
			}
			a := start("one")
			waitHAMetric(t, a, "crier_ha_leader", 1, 20*time.Second)
			b := start("two")
			c := xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: alice.JID, Password: alice.Password,
				Resource: "ha", RootCAs: p.CertPool(), Timeout: 15 * time.Second})
			if err := c.Join(room, "alice"); err != nil {
				t.Fatal(err)
			}
			seq := 0
			ping := func(within time.Duration) int {
				seq++
				body := fmt.Sprintf("!ping %d", seq)
				_ = c.SendMessage(room, "groupchat", body)
				n := 0
				for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
					for _, s := range c.Drain() {
						if s.Name == "message" && s.Type == "groupchat" && strings.HasPrefix(s.From, room+"/") && s.Body == "pong "+body {
							n++
						}
					}
				}
				return n
			}
			for range 3 {
				if n := ping(1500 * time.Millisecond); n != 1 {
					t.Fatalf("%d answers to one !ping with a leader and a standby, want 1", n)
				}
			}
			if v, _ := b.Metric("crier_ha_leader"); v != 0 {
				t.Fatalf("the standby leads (%v)", v)
			}
			if v, _ := b.Metric("crier_rooms_joined"); v != 0 {
				t.Fatalf("the standby is in %v rooms", v)
			}
			killed := time.Now()
			a.Kill(t)
			var answered time.Duration
			for answered == 0 && time.Since(killed) < 30*time.Second {
				switch n := ping(500 * time.Millisecond); {
				case n > 1:
					t.Fatalf("%d answers to one !ping during the failover", n)
				case n == 1:
					answered = time.Since(killed)
				}
			}
			if answered == 0 {
				t.Fatalf("no answer within 30 s of the kill\n%s", b.LogTail(40))
			}
			t.Logf("%s: SIGKILL -> the standby answers in the room after %v", name, answered.Round(time.Millisecond))
			if answered > 10*time.Second {
				t.Errorf("failover took %v, want under 10 s", answered)
			}
			for range 3 {
				if n := ping(1500 * time.Millisecond); n != 1 {
					t.Fatalf("%d answers to one !ping after the failover, want 1", n)
				}
			}
		})
	}
}

func waitHAMetric(t *testing.T, d *crierproc.Daemon, name string, want float64, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v, err := d.Metric(name); err == nil && v == want {
			return
		}
	}
	t.Fatalf("%s did not reach %v within %v\n%s", name, want, within, d.LogTail(40))
}
