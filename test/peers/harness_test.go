//go:build peers

package peers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// TestPeersHarness checks the parts the acceptance tests stand on, without
// crier: each peer runs, xmpptest logs in over STARTTLS and direct TLS with the
// requested resource, joins a room, talks to another user, pings the server,
// and the peer's restart keeps accounts and ports.
func TestPeersHarness(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			alice := p.Account(t, "alice")
			bob := p.Account(t, "bob")
			dial := func(t *testing.T, a peers.Account, mode, res string) *xmpptest.Client {
				addr := p.C2S
				if mode == "direct" {
					addr = p.TLSDirect
				}
				return xmpptest.Dial(t, xmpptest.Options{Addr: addr, JID: a.JID, Password: a.Password,
					Resource: res, TLS: mode, RootCAs: p.CertPool()})
			}

			for _, mode := range []string{"starttls", "direct"} {
				t.Run("login-"+mode, func(t *testing.T) {
					c := dial(t, alice, mode, "h-"+mode)
					if got, want := c.JID().String(), alice.JID+"/h-"+mode; got != want {
						t.Errorf("bound JID = %q, want %q", got, want)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					res, err := c.IQ(ctx, p.Domain, "get", "<ping xmlns='urn:xmpp:ping'/>")
					if err != nil {
						t.Fatalf("ping %s: %v", p.Domain, err)
					}
					if res.Type != "result" || res.From != p.Domain {
						t.Errorf("ping reply = %s, want a result from %s", res.Raw, p.Domain)
					}
				})
			}

			t.Run("wrong-password", func(t *testing.T) {
				_, err := xmpptest.Connect(context.Background(), xmpptest.Options{Addr: p.C2S,
					JID: alice.JID, Password: "not-" + alice.Password, RootCAs: p.CertPool(),
					Timeout: 10 * time.Second})
				if err == nil {
					t.Fatal("log-in with a wrong password succeeded")
				}
				t.Logf("wrong password refused as expected: %v", err)
			})

			t.Run("room-and-chat", func(t *testing.T) {
				a := dial(t, alice, "starttls", "room")
				b := dial(t, bob, "starttls", "room")
				room := fmt.Sprintf("harness-%d@%s", time.Now().UnixNano(), p.MUC)
				if err := a.Join(room, "alice"); err != nil {
					t.Fatalf("alice joins %s: %v", room, err)
				}
				if err := b.Join(room, "bob"); err != nil {
					t.Fatalf("bob joins %s: %v", room, err)
				}
				a.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == room+"/bob" && s.Type == ""
				})
				if err := b.SendMessage(room, "groupchat", "hello <room> & all"); err != nil {
					t.Fatal(err)
				}
				got := a.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "message" && s.Type == "groupchat" && s.From == room+"/bob"
				})
				if got.Body != "hello <room> & all" {
					t.Errorf("groupchat body = %q (raw %s)", got.Body, got.Raw)
				}
				if err := a.SendMessage(b.JID().String(), "chat", "direct hi"); err != nil {
					t.Fatal(err)
				}
				got = b.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "message" && s.Type == "chat" && s.Body == "direct hi"
				})
				if got.From != a.JID().String() {
					t.Errorf("chat from = %q, want %q", got.From, a.JID())
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				res, err := a.IQ(ctx, b.JID().String(), "get", "<ping xmlns='urn:xmpp:ping'/>")
				if err != nil || res.Type != "result" {
					t.Errorf("alice pings bob (answered by xmpptest): %v %s", err, res.Raw)
				}
				res, err = a.IQ(ctx, p.Domain, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
				if err != nil {
					t.Fatalf("disco#info of %s: %v", p.Domain, err)
				}
				if !strings.Contains(res.Raw, "urn:xmpp:ping") {
					t.Errorf("server disco#info lacks urn:xmpp:ping: %s", res.Raw)
				}
				if err := b.Leave(room); err != nil {
					t.Errorf("bob leaves: %v", err)
				}
				a.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == room+"/bob" && s.Type == "unavailable"
				})
			})

			t.Run("owner-kicks", func(t *testing.T) {
				a := dial(t, alice, "starttls", "owner")
				b := dial(t, bob, "starttls", "kicked")
				room := fmt.Sprintf("harness-kick-%d@%s", time.Now().UnixNano(), p.MUC)
				if err := a.Join(room, "alice"); err != nil {
					t.Fatalf("alice creates %s: %v", room, err)
				}
				if err := b.Join(room, "bob"); err != nil {
					t.Fatalf("bob joins %s: %v", room, err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := a.IQ(ctx, room, "set", "<query xmlns='http://jabber.org/protocol/muc#admin'>"+
					"<item nick='bob' role='none'><reason>harness</reason></item></query>")
				if err != nil {
					t.Fatalf("alice (owner) kicks bob: %v", err)
				}
				got := b.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == room+"/bob" && s.Type == "unavailable"
				})
				if !got.HasStatus("307") || !got.HasStatus("110") {
					t.Errorf("bob's kick presence codes = %v, want 307 and 110: %s", got.StatusCodes(), got.Raw)
				}
				if err := b.Join(room, "bob"); err != nil {
					t.Errorf("bob rejoins after the kick: %v", err)
				}
			})

			t.Run("restart", func(t *testing.T) {
				c := dial(t, alice, "starttls", "before")
				start := time.Now()
				p.Restart(t)
				t.Logf("%s restarted in %v", name, time.Since(start).Round(time.Millisecond))
				select {
				case <-c.Done():
				case <-time.After(15 * time.Second):
					t.Errorf("the old session did not end within 15s of the restart")
				}
				again, err := peers.Load(p.Dir)
				if err != nil {
					t.Fatal(err)
				}
				if again.C2S != p.C2S || again.TLSDirect != p.TLSDirect || again.BOSHURL != p.BOSHURL {
					t.Errorf("restart moved the ports: %+v, was %+v", again, p)
				}
				c2 := dial(t, alice, "starttls", "after")
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := c2.IQ(ctx, p.Domain, "get", "<ping xmlns='urn:xmpp:ping'/>"); err != nil {
					t.Errorf("ping after restart: %v", err)
				}
			})
		})
	}
}
