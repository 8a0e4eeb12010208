//go:build peers

package peers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// startBOSHCrier runs `crier run` with a config that makes crier connect
// over BOSH to the peer's BOSH_URL, with the given rooms and the ping rule,
// and stops it with SIGTERM when the test ends, like startCrier does for
// TCP. When the test fails, the end of the peer's log goes to the test log
// too.
func startBOSHCrier(t *testing.T, p *peers.Peer, password string, rooms []string) *crierproc.Daemon {
	t.Helper()
	if p.BOSHURL == "" {
		t.Fatalf("%s has no BOSH_URL in %s", p.Name, p.Dir)
	}
	// Registered first, so that it runs after crier has been stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log tail:\n%s", p.Name, p.LogTail(40))
		}
	})
	return crierproc.Run(t, crierproc.XMPP{JID: "crier@" + p.Domain, Password: password, Resource: crierNick,
		Transport: "bosh", BOSHURL: p.BOSHURL, CAFile: p.CAFile, Keepalive: "5s", KeepaliveTimeout: "10s"},
		roomsTOML(rooms...)+pingRule)
}

// TestBOSH drives the crier binary over BOSH (transport = "bosh") against
// each real server's BOSH endpoint: log-in, room, !ping in the room and in
// chat, an iq answered through the BOSH session, and a server restart after
// which crier is back in the room.
func TestBOSH(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			lobby := fmt.Sprintf("bosh%d@%s", time.Now().UnixNano(), p.MUC)
			crierFull := "crier@" + p.Domain + "/" + crierNick
			crierPW := p.Account(t, "crier").Password

			d := startBOSHCrier(t, p, crierPW, []string{lobby})
			d.WaitReady(t, 45*time.Second)
			if out := d.Logs(); !strings.Contains(out, "transport=bosh") {
				t.Fatalf("crier did not connect over BOSH:\n%s", out)
			}
			alice := dialAs(t, p, "alice", "bosh")
			if err := alice.Join(lobby, "alice"); err != nil {
				t.Fatalf("alice joins %s: %v", lobby, err)
			}

			t.Run("ping-room", func(t *testing.T) {
				pingUntilPong(t, alice, 20*time.Second,
					func() error { return alice.SendMessage(lobby, "groupchat", "!ping") },
					isGroupPong(lobby, "alice"))
			})
			t.Run("ping-chat", func(t *testing.T) {
				pingUntilPong(t, alice, 20*time.Second,
					func() error { return alice.SendMessage(crierFull, "chat", "!ping") },
					isChatPong("crier@"+p.Domain, "alice"))
			})
			t.Run("burst", func(t *testing.T) {
				// Twenty pings at once: the answers come back through few
				// BOSH requests, in order and each exactly once.
				const n = 20
				for range n {
					if err := alice.SendMessage(crierFull, "chat", "!ping"); err != nil {
						t.Fatal(err)
					}
				}
				for i := range n {
					if _, err := alice.Wait(context.Background(), 0, 20*time.Second, isChatPong("crier@"+p.Domain, "alice")); err != nil {
						t.Fatalf("pong %d of %d: %v\n%s", i+1, n, err, alice.Recent(10))
					}
				}
			})
			t.Run("iq-version", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				res, err := alice.IQ(ctx, crierFull, "get", "<query xmlns='jabber:iq:version'/>")
				if err != nil {
					t.Fatalf("version: %v", err)
				}
				if n := res.Find("jabber:iq:version", "name"); n == nil || n.Text != "crier" {
					t.Errorf("version name is not \"crier\": %s", res.Raw)
				}
				res, err = alice.IQ(ctx, crierFull, "get", "<ping xmlns='urn:xmpp:ping'/>")
				if err != nil || res.Type != "result" || res.From != crierFull {
					t.Errorf("ping: %v %s", err, res.Raw)
				}
			})
			if t.Failed() {
				return
			}

			// Last: the restart ends every BOSH session on the server.
			t.Run("server-restart", func(t *testing.T) {
				p.Restart(t)
				d.Running(t)
				alice2 := dialAs(t, p, "alice", "bosh-after-restart")
				if err := alice2.Join(lobby, "alice"); err != nil {
					t.Fatalf("alice joins %s after the restart: %v", lobby, err)
				}
				// crier is back in the room when its presence shows there.
				alice2.Expect(t, 90*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == lobby+"/"+crierNick && s.Type == ""
				})
				d.WaitReady(t, 30*time.Second)
				pingUntilPong(t, alice2, 30*time.Second,
					func() error { return alice2.SendMessage(lobby, "groupchat", "!ping") },
					isGroupPong(lobby, "alice"))
				if out := d.Logs(); !strings.Contains(out, "session lost") {
					t.Errorf("crier did not report the lost BOSH session:\n%s", out)
				}
			})
		})
	}
}
