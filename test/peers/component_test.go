//go:build peers

package peers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
	"crier/test/zeroloss"
)

// componentXMPP is crier's [xmpp] table as the XEP-0114 component of p
// (alerts.localhost on its loopback component port), speaking as from.
func componentXMPP(t testing.TB, p *peers.Peer, from string) crierproc.XMPP {
	t.Helper()
	if p.Component == "" || p.ComponentDomain == "" {
		t.Fatalf("peers: %s has no component listener in %s/env (restart it with the current scripts/peers/%s.sh)", p.Name, p.Dir, p.Name)
	}
	return crierproc.XMPP{JID: p.ComponentDomain, Password: p.ComponentSecret, Resource: crierNick,
		Transport: "component", Address: p.Component, TLS: "none", From: from + "@" + p.ComponentDomain}
}

// TestComponentPeers runs crier as an XEP-0114 component of Prosody
// (Component with component_secret) and ejabberd (ejabberd_service): a user
// chats with bot@ the component and gets the answer from that address and
// from any other address on the domain; the bot answers in a room it
// joined from its own address on the domain; a NATS event relayed with a
// per-source from arrives from that address; a wrong secret is refused
// with one clear log line and crier keeps running.
func TestComponentPeers(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			dom := componentXMPP(t, p, "bot").JID
			alice := dialAs(t, p, "alice", "component")
			// The room exists before the bot comes: neither server lets an
			// address of another domain create rooms in this setup.
			room := fmt.Sprintf("comp-%d@%s", time.Now().UnixNano(), p.MUC)
			if err := alice.Join(room, "alice"); err != nil {
				t.Fatalf("alice creates %s: %v", room, err)
			}
			ns, nc, _ := zeroloss.StartNATS(context.Background(), t)
			tables := roomsTOML(room) + pingRule + fmt.Sprintf(`
[nats]
url = %q

[[nats.relay]]
subject = "disk.>"
to = [%q]
type = "chat"
from = "disk@%s"
`, ns.ClientURL(), alice.JID().Bare().String(), dom)
			d := crierproc.Run(t, componentXMPP(t, p, "bot"), tables)
			d.WaitReady(t, 45*time.Second)

			for _, addr := range []string{"bot@" + dom, "ci@" + dom} {
				got := pingUntilPong(t, alice, 20*time.Second,
					func() error { return alice.SendMessage(addr, "chat", "!ping") },
					func(s xmpptest.Stanza) bool {
						return s.Name == "message" && s.Type == "chat" && s.Body == "pong alice" && s.From == addr
					})
				t.Logf("%s answered from %s", addr, got.From)
			}
			pingUntilPong(t, alice, 20*time.Second,
				func() error { return alice.SendMessage(room, "groupchat", "!ping") },
				isGroupPong(room, "alice"))

			if err := nc.Publish("disk.full", []byte("disk /var is 97% full")); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			alice.Expect(t, 20*time.Second, func(s xmpptest.Stanza) bool {
				return s.Name == "message" && s.From == "disk@"+dom && strings.Contains(s.Body, "97% full")
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v, err := alice.IQ(ctx, "bot@"+dom, "get", "<query xmlns='jabber:iq:version'/>")
			if err != nil || !strings.Contains(v.Raw, "crier") {
				t.Errorf("version of bot@%s: %v %s", dom, err, v.Raw)
			}
			// An ad-hoc command (the plugin iq path) and an iq nothing
			// handles, each at an address of the domain: answered from it,
			// and the component stays connected (an answer without a from
			// would end its stream on ejabberd).
			res, err := alice.IQ(ctx, "ops@"+dom, "set", "<command xmlns='http://jabber.org/protocol/commands' node='version' action='execute'/>")
			if err != nil || res.From != "ops@"+dom || !strings.Contains(res.Raw, "crier") {
				t.Errorf("ad-hoc version at ops@%s: %v %s", dom, err, res.Raw)
			}
			_, err = alice.IQ(ctx, "bot@"+dom, "get", "<query xmlns='urn:example:nothing'/>")
			var se *xmpptest.StanzaError
			if !errors.As(err, &se) || se.Condition != "service-unavailable" || se.Stanza.From != "bot@"+dom {
				t.Errorf("unknown iq at bot@%s: %v", dom, err)
			}
			if strings.Contains(d.Logs(), "session lost") {
				t.Errorf("the component connection was lost:\n%s", d.LogTail(20))
			}
			for _, s := range alice.Drain() {
				if s.Name == "presence" && strings.HasSuffix(s.From, dom) {
					t.Errorf("the component sent presence outside the room: %s", s.Raw)
				}
			}
		})
	}
}

// TestComponentWrongSecretPeers: a wrong component secret is refused by
// the server; crier says so in one line per attempt, waits the longest
// interval between attempts (never a spin) and keeps running.
func TestComponentWrongSecretPeers(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			x := componentXMPP(t, p, "bot")
			x.Password = "not-" + x.Password
			d := crierproc.Run(t, x, pingRule)
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(d.Logs(), "refused the component secret") && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(3 * time.Second)
			logs := d.Logs()
			if n := strings.Count(logs, "refused the component secret"); n != 1 {
				t.Fatalf("%d lines about the secret within ~3s, want exactly 1 (the next attempt waits the longest interval)\n%s", n, d.LogTail(20))
			}
			if strings.Contains(logs, x.Password) {
				t.Error("the secret is in the log")
			}
		})
	}
}
