//go:build peers

package peers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
)

// TestHTTPSTransports: WebSocket over wss:// and BOSH over https:// to each
// real server's own TLS listener, the certificate checked against the
// server's name (localhost) with ca_file: crier signs in, joins and answers
// in the room and in chat. Without ca_file the certificate is not trusted:
// crier never gets ready and says why (reason=tls, x509).
func TestHTTPSTransports(t *testing.T) {
	for _, name := range peers.Names {
		for _, tr := range []struct{ transport, key string }{{"websocket", "WSS_URL"}, {"bosh", "BOSH_TLS_URL"}} {
			t.Run(name+"/"+tr.transport, func(t *testing.T) {
				p := peers.Get(t, name)
				u := p.Env[tr.key]
				if !strings.HasPrefix(u, "wss://") && !strings.HasPrefix(u, "https://") {
					t.Fatalf("%s has no %s (a TLS URL) in %s/env: %q", p.Name, tr.key, p.Dir, u)
				}
				x := crierproc.XMPP{JID: "crier@" + p.Domain, Password: p.Account(t, "crier").Password,
					Resource: crierNick, Transport: tr.transport, CAFile: p.CAFile}
				if tr.transport == "websocket" {
					x.WebSocketURL = u
				} else {
					x.BOSHURL = u
				}
				lobby := newRoom(p, "tls"+tr.transport)
				d := crierproc.Run(t, x, roomsTOML(lobby)+pingRule)
				d.WaitReady(t, 45*time.Second)
				if out := d.Logs(); !strings.Contains(out, "transport="+tr.transport) {
					t.Fatalf("crier did not connect over %s:\n%s", tr.transport, out)
				}
				alice := dialAs(t, p, "alice", fmt.Sprintf("https-%d", time.Now().UnixNano()))
				if err := alice.Join(lobby, "alice"); err != nil {
					t.Fatalf("alice joins %s: %v", lobby, err)
				}
				pingUntilPong(t, alice, 20*time.Second,
					func() error { return alice.SendMessage(lobby, "groupchat", "!ping") },
					isGroupPong(lobby, "alice"))
				pingUntilPong(t, alice, 20*time.Second,
					func() error { return alice.SendMessage("crier@"+p.Domain+"/"+crierNick, "chat", "!ping") },
					isChatPong("crier@"+p.Domain, "alice"))

				// The same endpoint, the system's roots only.
				x.CAFile = ""
				x.Resource = crierNick + "-untrusted"
				u2 := crierproc.Run(t, x, "")
				deadline := time.Now().Add(20 * time.Second)
				for !strings.Contains(u2.Logs(), "reason=tls") {
					if time.Now().After(deadline) {
						t.Fatalf("no TLS failure logged with an untrusted certificate:\n%s", u2.Logs())
					}
					time.Sleep(100 * time.Millisecond)
				}
				if !strings.Contains(u2.Logs(), "x509") {
					t.Errorf("the TLS failure does not name the certificate problem:\n%s", u2.Logs())
				}
				if code := u2.ReadyStatus(); code == 200 {
					t.Errorf("/-/ready is 200 without a trusted certificate")
				}
			})
		}
	}
}
