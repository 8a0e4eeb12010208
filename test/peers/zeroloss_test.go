//go:build peers

package peers_test

import (
	"testing"
	"time"

	"crier/internal/peers"
	"crier/internal/xmpptest"
	"crier/test/zeroloss"
)

// zeroLossEvents is how many events the zero-loss scenario publishes
// against a real server.
const zeroLossEvents = 10000

// TestZeroLossPeers runs the zero-loss scenario of test/zeroloss against
// Prosody (XEP-0198 through mod_smacks) and ejabberd (mod_stream_mgmt)
// over TCP: JetStream events are published while the server is restarted
// twice by its script (a real stop and start, keeping accounts and stored
// offline messages) and crier is killed with SIGKILL and started again
// once; the receiver, user5, must get every event, with duplicates within
// zeroloss.DuplicateBound.
func TestZeroLossPeers(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			crier := p.Account(t, "crier")
			rcv := p.Account(t, "user5")
			start := time.Now()
			res := zeroloss.Run(t, zeroloss.Scenario{
				Events: zeroLossEvents,
				XMPP: zeroloss.XMPP{JID: crier.JID, Password: crier.Password, Transport: "tcp",
					Address: p.C2S, TLS: "starttls", CAFile: p.CAFile},
				Receiver: xmpptest.Options{Addr: p.C2S, JID: rcv.JID, Password: rcv.Password,
					Resource: "zeroloss", RootCAs: p.CertPool()},
				RestartServer: func(t testing.TB) { p.Restart(t) },
				Settle:        90 * time.Second,
			})
			if len(res.Disruptions) != 3 {
				t.Errorf("disruptions = %q, want 2 restarts and 1 kill", res.Disruptions)
			}
			t.Logf("%s: %d events, %d duplicates, whole run %v", name, res.Events, res.Duplicates,
				time.Since(start).Round(time.Second))
		})
	}
}

// TestZeroLossComponentPeers is the zero-loss scenario with crier
// connected as an XEP-0114 component (alerts.localhost) instead of a
// client: no stream management there (neither server offers it to
// components), so every delivery is confirmed by a ping to the server
// after it. The events come from crier@alerts.localhost.
func TestZeroLossComponentPeers(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			rcv := p.Account(t, "user5")
			start := time.Now()
			res := zeroloss.Run(t, zeroloss.Scenario{
				Events: zeroLossEvents,
				XMPP:   componentXMPP(t, p, "crier"),
				Receiver: xmpptest.Options{Addr: p.C2S, JID: rcv.JID, Password: rcv.Password,
					Resource: "zeroloss", RootCAs: p.CertPool()},
				RestartServer: func(t testing.TB) { p.Restart(t) },
				Settle:        90 * time.Second,
			})
			if len(res.Disruptions) != 3 {
				t.Errorf("disruptions = %q, want 2 restarts and 1 kill", res.Disruptions)
			}
			t.Logf("%s (component): %d events, %d duplicates, whole run %v", name, res.Events, res.Duplicates,
				time.Since(start).Round(time.Second))
		})
	}
}
