//go:build peers

package peers_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// writeBOSHConfig writes a config file that makes crier connect over BOSH
// to the peer's BOSH_URL and returns its path and the HTTP listen address.
func writeBOSHConfig(t *testing.T, p *peers.Peer, password string, rooms []string) (string, string) {
	t.Helper()
	if p.BOSHURL == "" {
		t.Fatalf("%s has no BOSH_URL in %s", p.Name, p.Dir)
	}
	httpAddr := freePort(t)
	var b strings.Builder
	fmt.Fprintf(&b, "[xmpp]\njid = %q\npassword = %q\nresource = %q\n", "crier@"+p.Domain, password, crierNick)
	fmt.Fprintf(&b, "transport = \"bosh\"\nbosh_url = %q\nca_file = %q\n", p.BOSHURL, p.CAFile)
	b.WriteString("keepalive = \"5s\"\nkeepalive_timeout = \"10s\"\n\n")
	fmt.Fprintf(&b, "[http]\nlisten = %q\n\n", httpAddr)
	for _, r := range rooms {
		fmt.Fprintf(&b, "[[rooms]]\njid = %q\nnick = %q\n\n", r, crierNick)
	}
	b.WriteString("[[rules]]\nname = \"ping\"\nmatch = \"^!ping$\"\nreply = \"pong {{.Nick}}\"\n")
	path := filepath.Join(t.TempDir(), "crier-bosh.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, httpAddr
}

// startBOSHCrier runs `crier run -c FILE` with a BOSH config and stops it
// with SIGTERM when the test ends, like startCrier does for TCP.
func startBOSHCrier(t *testing.T, p *peers.Peer, password string, rooms []string) *daemon {
	t.Helper()
	bin := crierBinary(t)
	path, httpAddr := writeBOSHConfig(t, p, password, rooms)
	d := &daemon{stderr: &syncBuffer{}, http: httpAddr, exited: make(chan struct{})}
	d.cmd = exec.Command(bin, "run", "-c", path)
	d.cmd.Stdout = d.stderr
	d.cmd.Stderr = d.stderr
	d.cmd.Env = filterEnv(os.Environ(), "CRIER_XMPP_PASSWORD")
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start crier: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		stopped := d.stop(10 * time.Second)
		if t.Failed() || stopped != nil {
			t.Logf("crier output:\n%s", d.stderr.String())
			t.Logf("%s log tail:\n%s", p.Name, p.LogTail(40))
		}
		if stopped != nil {
			t.Errorf("crier shutdown: %v", stopped)
		}
	})
	return d
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
			d.waitReady(t, 45*time.Second)
			if out := d.stderr.String(); !strings.Contains(out, "transport=bosh") {
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
				d.running(t)
				alice2 := dialAs(t, p, "alice", "bosh-after-restart")
				if err := alice2.Join(lobby, "alice"); err != nil {
					t.Fatalf("alice joins %s after the restart: %v", lobby, err)
				}
				// crier is back in the room when its presence shows there.
				alice2.Expect(t, 90*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == lobby+"/"+crierNick && s.Type == ""
				})
				d.waitReady(t, 30*time.Second)
				pingUntilPong(t, alice2, 30*time.Second,
					func() error { return alice2.SendMessage(lobby, "groupchat", "!ping") },
					isGroupPong(lobby, "alice"))
				if out := d.stderr.String(); !strings.Contains(out, "session lost") {
					t.Errorf("crier did not report the lost BOSH session:\n%s", out)
				}
			})
		})
	}
}
