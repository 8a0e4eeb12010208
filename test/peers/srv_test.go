//go:build peers

package peers_test

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"crier/internal/dnstest"
	"crier/internal/peers"
	"crier/transport"
)

// TestSRV finds each real server through SRV records (no address given),
// as a deployment that relies on its domain's DNS does: _xmpp-client for
// STARTTLS and _xmpps-client for direct TLS (XEP-0368), served by a DNS
// server on loopback that Go's resolver asks.
func TestSRV(t *testing.T) {
	portOf := func(t *testing.T, addr string) uint16 {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			t.Fatal(err)
		}
		return uint16(n)
	}
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			a := p.Account(t, "user3")
			d := dnstest.Start(t, map[string][]dnstest.SRV{
				"_xmpp-client._tcp." + p.Domain:  {{Target: "c2s.peer.test", Port: portOf(t, p.C2S)}},
				"_xmpps-client._tcp." + p.Domain: {{Target: "tls.peer.test", Port: portOf(t, p.TLSDirect)}},
			}, map[string]string{"c2s.peer.test": "127.0.0.1", "tls.peer.test": "127.0.0.1"})
			for _, mode := range []string{transport.TLSStartTLS, transport.TLSDirect} {
				t.Run(mode, func(t *testing.T) {
					c, err := transport.Connect(context.Background(), transport.Options{
						JID:       jid.MustParse(a.JID),
						Password:  a.Password,
						Resource:  "srv-" + mode,
						TLS:       mode,
						TLSConfig: &tls.Config{RootCAs: p.CertPool()},
						Timeout:   20 * time.Second,
						Resolver:  d.Resolver(),
					})
					if err != nil {
						t.Fatalf("Connect by SRV: %v (DNS questions: %v)", err, d.Questions())
					}
					defer c.Close()
					target := "c2s.peer.test"
					if mode == transport.TLSDirect {
						target = "tls.peer.test"
					}
					if !d.Asked("A", target) {
						t.Errorf("connected without looking up the SRV target %s; asked: %v", target, d.Questions())
					}
					if got, want := c.JID.String(), a.JID+"/srv-"+mode; got != want {
						t.Errorf("bound %s, want %s", got, want)
					}
				})
			}
		})
	}
}
