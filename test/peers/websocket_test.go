//go:build peers

package peers_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// TestWebSocket drives the crier binary over WebSocket (transport =
// "websocket", RFC 7395) against each real server's endpoint, through a
// loopback proxy that can cut the connection: log-in, room, !ping in the
// room and in chat; a cut connection after which crier resumes its session
// (it never leaves the room, and answers what was sent meanwhile, once);
// and a server restart after which crier is back in the room.
func TestWebSocket(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			if p.WSURL == "" {
				t.Fatalf("%s has no WS_URL in %s", p.Name, p.Dir)
			}
			u, err := url.Parse(p.WSURL)
			if err != nil {
				t.Fatalf("WS_URL %q: %v", p.WSURL, err)
			}
			proxy := startCutProxy(t, u.Host)
			u.Host = proxy.addr()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("%s log tail:\n%s", p.Name, p.LogTail(40))
				}
			})
			lobby := newRoom(p, "ws")
			crierFull := "crier@" + p.Domain + "/" + crierNick
			d := crierproc.Run(t, crierproc.XMPP{JID: "crier@" + p.Domain, Password: p.Account(t, "crier").Password,
				Resource: crierNick, Transport: "websocket", WebSocketURL: u.String(), CAFile: p.CAFile,
				Keepalive: "5s", KeepaliveTimeout: "10s"}, roomsTOML(lobby)+pingRule)
			d.WaitReady(t, 45*time.Second)
			if out := d.Logs(); !strings.Contains(out, "transport=websocket") {
				t.Fatalf("crier did not connect over WebSocket:\n%s", out)
			}
			alice := dialAs(t, p, "alice", fmt.Sprintf("ws-%d", time.Now().UnixNano()))
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
			if t.Failed() {
				return
			}

			t.Run("resume-after-cut", func(t *testing.T) {
				alice.Drain()
				proxy.cut()
				time.Sleep(200 * time.Millisecond)
				if err := alice.SendMessage(lobby, "groupchat", "!ping"); err != nil {
					t.Fatal(err)
				}
				if err := alice.SendMessage(crierFull, "chat", "!ping"); err != nil {
					t.Fatal(err)
				}
				alice.Expect(t, 30*time.Second, isGroupPong(lobby, "alice"))
				alice.Expect(t, 30*time.Second, isChatPong("crier@"+p.Domain, "alice"))
				d.WaitReady(t, 10*time.Second)
				time.Sleep(500 * time.Millisecond)
				for _, s := range alice.Drain() {
					if s.Name == "presence" && s.From == lobby+"/"+crierNick {
						t.Errorf("crier's presence in the room changed although its session was resumed: type %q", s.Type)
					}
					if s.Name == "message" && strings.HasPrefix(s.Body, "pong") {
						t.Errorf("a reply came again after the resumption: %s", s.Raw)
					}
				}
				if v := d.ReadMetric(t, "crier_sessions_resumed_total"); v != 1 {
					t.Errorf("crier_sessions_resumed_total = %v, want 1\n%s", v, d.LogTail(40))
				}
			})

			// Last: the restart ends every session on the server.
			t.Run("server-restart", func(t *testing.T) {
				p.Restart(t)
				d.Running(t)
				alice2 := dialAs(t, p, "alice", fmt.Sprintf("ws-after-restart-%d", time.Now().UnixNano()))
				if err := alice2.Join(lobby, "alice"); err != nil {
					t.Fatalf("alice joins %s after the restart: %v", lobby, err)
				}
				alice2.Expect(t, 90*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == lobby+"/"+crierNick && s.Type == ""
				})
				d.WaitReady(t, 30*time.Second)
				pingUntilPong(t, alice2, 30*time.Second,
					func() error { return alice2.SendMessage(lobby, "groupchat", "!ping") },
					isGroupPong(lobby, "alice"))
			})
		})
	}
}
