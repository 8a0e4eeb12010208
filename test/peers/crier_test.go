//go:build peers

package peers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// Room and nick that the acceptance configs use.
const (
	lobbyLocal = "lobby"
	crierNick  = "crier"
)

// crierConfig is what a test varies in crier's config file.
type crierConfig struct {
	peer     *peers.Peer
	tls      string // "starttls" or "direct"
	password string
	rooms    []string
}

// pingRule answers "!ping" with "pong NICK".
const pingRule = "[[rules]]\nname = \"ping\"\nmatch = \"^!ping$\"\nreply = \"pong {{.Nick}}\"\n"

// tcpXMPP returns crier's [xmpp] table for the peer p over TCP, with the TLS
// mode tls ("starttls" or "direct").
func tcpXMPP(p *peers.Peer, tls, password string) crierproc.XMPP {
	addr := p.C2S
	if tls == "direct" {
		addr = p.TLSDirect
	}
	return crierproc.XMPP{JID: "crier@" + p.Domain, Password: password, Resource: crierNick,
		Address: addr, TLS: tls, CAFile: p.CAFile}
}

// roomsTOML returns a [[rooms]] table for each room, with crier's nick.
func roomsTOML(rooms ...string) string {
	var b strings.Builder
	for _, r := range rooms {
		fmt.Fprintf(&b, "[[rooms]]\njid = %q\nnick = %q\n\n", r, crierNick)
	}
	return b.String()
}

// startCrier runs `crier run` over TCP on a config with cfg's rooms and the
// ping rule. When the test ends it stops crier with SIGTERM and checks that
// it exits 0 within 10 seconds; crier's output goes to the test log when the
// test fails.
func startCrier(t *testing.T, cfg crierConfig) *crierproc.Daemon {
	t.Helper()
	return crierproc.Run(t, tcpXMPP(cfg.peer, cfg.tls, cfg.password), roomsTOML(cfg.rooms...)+pingRule)
}

// dialAs logs in the account local ("alice", "bob") over STARTTLS.
func dialAs(t *testing.T, p *peers.Peer, local, resource string) *xmpptest.Client {
	t.Helper()
	a := p.Account(t, local)
	return xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: a.JID, Password: a.Password,
		Resource: resource, RootCAs: p.CertPool()})
}

// pingUntilPong sends "!ping" with send every few seconds until a stanza that
// want accepts arrives, at most limit; it fails the test otherwise. Repeating
// covers the time crier needs to (re)join after a restart or a kick.
func pingUntilPong(t *testing.T, c *xmpptest.Client, limit time.Duration, send func() error, want func(xmpptest.Stanza) bool) xmpptest.Stanza {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if err := send(); err != nil {
			t.Fatalf("send !ping: %v", err)
		}
		wait := min(4*time.Second, time.Until(deadline))
		s, err := c.Wait(context.Background(), 0, wait, want)
		if err == nil {
			return s
		}
		if !errors.Is(err, xmpptest.ErrTimeout) {
			t.Fatalf("waiting for pong: %v", err)
		}
	}
	t.Fatalf("no pong within %v; last stanzas:\n%s", limit, c.Recent(15))
	return xmpptest.Stanza{}
}

func isGroupPong(room, nick string) func(xmpptest.Stanza) bool {
	return func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.Type == "groupchat" && s.From == room+"/"+crierNick &&
			s.Body == "pong "+nick
	}
}

func isChatPong(from, nick string) func(xmpptest.Stanza) bool {
	return func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.Type == "chat" && strings.HasPrefix(s.From, from) &&
			s.Body == "pong "+nick
	}
}

// TestCrier drives the crier binary against each real server through its
// outside contract: config file, command line, HTTP readiness, XMPP.
func TestCrier(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			lobby := lobbyLocal + "@" + p.MUC
			crierFull := "crier@" + p.Domain + "/" + crierNick
			crierPW := p.Account(t, "crier").Password

			for _, mode := range []string{"starttls", "direct"} {
				t.Run("ping-"+mode, func(t *testing.T) {
					d := startCrier(t, crierConfig{peer: p, tls: mode, password: crierPW, rooms: []string{lobby}})
					d.WaitReady(t, 45*time.Second)
					alice := dialAs(t, p, "alice", "ping-"+mode)
					if err := alice.Join(lobby, "alice"); err != nil {
						t.Fatalf("alice joins %s: %v", lobby, err)
					}
					pingUntilPong(t, alice, 20*time.Second,
						func() error { return alice.SendMessage(lobby, "groupchat", "!ping") },
						isGroupPong(lobby, "alice"))
					pingUntilPong(t, alice, 20*time.Second,
						func() error { return alice.SendMessage(crierFull, "chat", "!ping") },
						isChatPong("crier@"+p.Domain, "alice"))
				})
			}

			// stream_management = false: no XEP-0198 element on the
			// stream under traffic (with it on, the <r/>/<a/> pairs
			// count as sm_r/sm_a, others as "other"), replies still come.
			t.Run("no-stream-management", func(t *testing.T) {
				x := tcpXMPP(p, "starttls", crierPW)
				x.NoSM = true
				d := crierproc.Run(t, x, roomsTOML(lobby)+pingRule)
				d.WaitReady(t, 45*time.Second)
				alice := dialAs(t, p, "alice", "nosm")
				if err := alice.Join(lobby, "alice"); err != nil {
					t.Fatalf("alice joins %s: %v", lobby, err)
				}
				// Negotiation elements (features, starttls, auth) count
				// as "other" too: only the growth under traffic tells.
				nonStanza := func(dir string) float64 {
					n := 0.0
					for _, k := range []string{"other", "sm_r", "sm_a"} {
						n += d.ReadMetric(t, "crier_stanzas_total", "direction", dir, "kind", k)
					}
					return n
				}
				in0, out0 := nonStanza("in"), nonStanza("out")
				// 40 replies: with stream management crier would ask for
				// an acknowledgement (<r/>) at least twice.
				for range 40 {
					pingUntilPong(t, alice, 20*time.Second,
						func() error { return alice.SendMessage(crierFull, "chat", "!ping") },
						isChatPong("crier@"+p.Domain, "alice"))
				}
				pingUntilPong(t, alice, 20*time.Second,
					func() error { return alice.SendMessage(lobby, "groupchat", "!ping") },
					isGroupPong(lobby, "alice"))
				in, out := nonStanza("in"), nonStanza("out")
				if in != in0 || out != out0 {
					t.Fatalf("stream management elements on the stream although it is off: %v in, %v out\n%s", in-in0, out-out0, d.LogTail(20))
				}
				if !strings.Contains(d.Logs(), "stream management is off") {
					t.Errorf("crier did not log that stream management is off")
				}
			})

			t.Run("iq", func(t *testing.T) {
				d := startCrier(t, crierConfig{peer: p, tls: "starttls", password: crierPW, rooms: []string{lobby}})
				d.WaitReady(t, 45*time.Second)
				alice := dialAs(t, p, "alice", "iq")
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()

				res, err := alice.IQ(ctx, crierFull, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
				if err != nil {
					t.Errorf("disco#info: %v", err)
				} else if res.Find("http://jabber.org/protocol/disco#info", "query") == nil {
					t.Errorf("disco#info reply has no query: %s", res.Raw)
				} else {
					for _, f := range []string{"urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time"} {
						if !strings.Contains(res.Raw, "'"+f+"'") {
							t.Errorf("disco#info does not advertise %s: %s", f, res.Raw)
						}
					}
				}

				res, err = alice.IQ(ctx, crierFull, "get", "<ping xmlns='urn:xmpp:ping'/>")
				if err != nil || res.Type != "result" || res.From != crierFull {
					t.Errorf("ping: %v %s", err, res.Raw)
				}

				res, err = alice.IQ(ctx, crierFull, "get", "<query xmlns='jabber:iq:version'/>")
				if err != nil {
					t.Errorf("version: %v", err)
				} else if n := res.Find("jabber:iq:version", "name"); n == nil || n.Text != "crier" {
					t.Errorf("version name is not \"crier\": %s", res.Raw)
				}

				res, err = alice.IQ(ctx, crierFull, "get", "<time xmlns='urn:xmpp:time'/>")
				if err != nil {
					t.Errorf("time: %v", err)
				} else if tm := res.Find("urn:xmpp:time", "time"); tm == nil || tm.Child("", "utc") == nil {
					t.Errorf("time reply has no <utc/>: %s", res.Raw)
				} else if _, perr := time.Parse(time.RFC3339, strings.TrimSpace(tm.Child("", "utc").Text)); perr != nil {
					t.Errorf("time reply utc %q: %v", tm.Child("", "utc").Text, perr)
				}
			})

			t.Run("wrong-password", func(t *testing.T) {
				d := startCrier(t, crierConfig{peer: p, tls: "starttls", password: "wrong-" + crierPW, rooms: []string{lobby}})
				deadline := time.Now().Add(20 * time.Second)
				for !strings.Contains(strings.ToLower(d.Logs()), "authentication") {
					d.Running(t)
					if time.Now().After(deadline) {
						t.Fatalf("no log line mentions \"authentication\" within 20s:\n%s", d.Logs())
					}
					time.Sleep(200 * time.Millisecond)
				}
				// crier keeps retrying rather than exiting, and is not ready.
				time.Sleep(5 * time.Second)
				d.Running(t)
				if st := d.ReadyStatus(); st == http.StatusOK {
					t.Errorf("GET /-/ready = 200 with a wrong password")
				}
				var lines []string
				for _, l := range strings.Split(d.Logs(), "\n") {
					if strings.Contains(strings.ToLower(l), "authentication") {
						lines = append(lines, l)
					}
				}
				t.Logf("authentication lines: %d, first: %s", len(lines), lines[0])
			})

			t.Run("kick-rejoin", func(t *testing.T) {
				room := fmt.Sprintf("kick%d@%s", time.Now().UnixNano(), p.MUC)
				alice := dialAs(t, p, "alice", "owner")
				// alice creates the room, so she owns it and may kick.
				if err := alice.Join(room, "alice"); err != nil {
					t.Fatalf("alice creates %s: %v", room, err)
				}
				d := startCrier(t, crierConfig{peer: p, tls: "starttls", password: crierPW, rooms: []string{room}})
				d.WaitReady(t, 45*time.Second)
				crierIn := func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == room+"/"+crierNick && s.Type == ""
				}
				alice.Expect(t, 30*time.Second, crierIn)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err := alice.IQ(ctx, room, "set", "<query xmlns='http://jabber.org/protocol/muc#admin'>"+
					"<item nick='"+crierNick+"' role='none'><reason>test kick</reason></item></query>")
				if err != nil {
					t.Fatalf("alice kicks crier: %v", err)
				}
				kicked := alice.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == room+"/"+crierNick && s.Type == "unavailable"
				})
				if !kicked.HasStatus("307") {
					t.Errorf("kick presence lacks status 307: %s", kicked.Raw)
				}
				back := alice.Expect(t, 60*time.Second, crierIn)
				t.Logf("crier rejoined: %s", back.Raw)
				pingUntilPong(t, alice, 20*time.Second,
					func() error { return alice.SendMessage(room, "groupchat", "!ping") },
					isGroupPong(room, "alice"))
			})

			// Last: it restarts the server under everything else.
			t.Run("server-restart", func(t *testing.T) {
				d := startCrier(t, crierConfig{peer: p, tls: "starttls", password: crierPW, rooms: []string{lobby}})
				d.WaitReady(t, 45*time.Second)
				p.Restart(t)
				d.Running(t)
				d.WaitReady(t, 90*time.Second)
				alice := dialAs(t, p, "alice", "after-restart")
				if err := alice.Join(lobby, "alice"); err != nil {
					t.Fatalf("alice joins %s after the restart: %v", lobby, err)
				}
				pingUntilPong(t, alice, 90*time.Second,
					func() error { return alice.SendMessage(lobby, "groupchat", "!ping") },
					isGroupPong(lobby, "alice"))
			})
		})
	}
}
