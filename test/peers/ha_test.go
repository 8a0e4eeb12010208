//go:build peers

package peers_test

import (
	"fmt"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
	"crier/test/ha"
)

// TestHAFailoverUnderLoad runs the failover scenario of test/ha against
// Prosody and ejabberd: three crier processes on one account (a resource
// each) share a JetStream relay on a 3-node NATS cluster; 10,000 events are
// pushed to user4 while the leader is SIGKILLed and a NATS node restarted.
// Every event arrives; duplicates are counted, bounded and carry their
// first copy's origin-id.
func TestHAFailoverUnderLoad(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			crier := p.Account(t, "crier")
			rcv := p.Account(t, "user4")
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
			})
			t.Logf("%s: %d events, %d received, %d duplicates, by sender %v", name, res.Events, res.Received, res.Duplicates, res.BySender)
		})
	}
}
