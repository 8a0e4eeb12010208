//go:build peers

package peers_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// rulesConfig returns crier's [xmpp] table for the peer p over STARTTLS and
// the further tables of a config with one room and the given [[rules]] and
// [[cron]] tables.
func rulesConfig(t *testing.T, p *peers.Peer, room, tables string) (crierproc.XMPP, string) {
	t.Helper()
	return tcpXMPP(p, "starttls", p.Account(t, "crier").Password), roomsTOML(room) + tables
}

// startRulesCrier runs `crier run` on a config made by rulesConfig and
// waits until it is ready, which means it is in the room. The daemon is
// stopped with SIGTERM, and must exit 0, when the test ends.
func startRulesCrier(t *testing.T, p *peers.Peer, room, tables string) *crierproc.Daemon {
	t.Helper()
	x, all := rulesConfig(t, p, room, tables)
	d := crierproc.Run(t, x, all)
	d.WaitReady(t, 45*time.Second)
	return d
}

// sayUntil sends body to the room every few seconds until the bot answers
// with want, at most limit; repeating covers a rule swapped in by a reload
// that the daemon applies asynchronously.
func sayUntil(t *testing.T, c *xmpptest.Client, room, body, want string, limit time.Duration) {
	t.Helper()
	pingUntilPong(t, c, limit, func() error { return c.SendMessage(room, "groupchat", body) },
		func(s xmpptest.Stanza) bool {
			return s.Name == "message" && s.Type == "groupchat" && s.From == room+"/"+crierNick && s.Body == want
		})
}

// newRoom returns a room name no one has used, so that crier, joining it
// first, creates it and owns it.
func newRoom(p *peers.Peer, prefix string) string {
	return fmt.Sprintf("%s%d@%s", prefix, time.Now().UnixNano(), p.MUC)
}

const helloRule = `
[[rules]]
name  = "hello"
match = "(?i)^hello crier$"
reply = "%s"
`

// TestRules drives crier's rule engine and cron jobs against each real
// server: a reply, a kick by the room's owner, a cron job, and a reload by
// SIGHUP over the same session.
func TestRules(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)

			t.Run("reply", func(t *testing.T) {
				room := newRoom(p, "rreply")
				startRulesCrier(t, p, room, fmt.Sprintf(helloRule, "hi {{.Nick}}, this is {{.Room}}"))
				alice := dialAs(t, p, "alice", "rules-reply")
				if err := alice.Join(room, "alice"); err != nil {
					t.Fatalf("alice joins %s: %v", room, err)
				}
				sayUntil(t, alice, room, "Hello crier", "hi alice, this is "+room, 20*time.Second)
			})

			t.Run("kick", func(t *testing.T) {
				room := newRoom(p, "rkick")
				d := startRulesCrier(t, p, room, `
[[rules]]
name     = "language"
keywords = ["frobnicate"]
actions  = [{ do = "kick", text = "mind your language, {{.Nick}}" }]
`)
				alice := dialAs(t, p, "alice", "rules-kick")
				if err := alice.Join(room, "alice"); err != nil {
					t.Fatalf("alice joins %s: %v", room, err)
				}
				// crier created the room: the room says it is its owner.
				alice.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
					if s.Name != "presence" || s.From != room+"/"+crierNick || s.Type != "" {
						return false
					}
					it := s.Find("http://jabber.org/protocol/muc#user", "item")
					return it != nil && it.Attr("affiliation") == "owner" && it.Attr("role") == "moderator"
				})
				if err := alice.SendMessage(room, "groupchat", "let us Frobnicate the widget"); err != nil {
					t.Fatal(err)
				}
				kicked := alice.Expect(t, 15*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == room+"/alice" && s.Type == "unavailable"
				})
				if !kicked.HasStatus("307") {
					t.Fatalf("alice's unavailable presence lacks status 307: %s", kicked.Raw)
				}
				if r := kicked.Find("", "reason"); r == nil || r.Text != "mind your language, alice" {
					t.Errorf("kick reason: %s", kicked.Raw)
				}
				if v := d.ReadMetric(t, "crier_rejected_total", "reason", "not_moderator"); v != 0 {
					t.Errorf("crier_rejected_total{reason=not_moderator} = %v, want 0", v)
				}
				if v := d.ReadMetric(t, "crier_rule_hits_total", "rule", "language"); v != 1 {
					t.Errorf("crier_rule_hits_total{rule=language} = %v, want 1", v)
				}
			})

			t.Run("cron", func(t *testing.T) {
				room := newRoom(p, "rcron")
				startRulesCrier(t, p, room, fmt.Sprintf(`
[[cron]]
name     = "tick"
schedule = "@every 3s"
to       = %q
body     = '{{.Name}} {{.Time.Unix}}'
`, room))
				alice := dialAs(t, p, "alice", "rules-cron")
				if err := alice.Join(room, "alice"); err != nil {
					t.Fatalf("alice joins %s: %v", room, err)
				}
				var stamps []int64
				deadline := time.Now().Add(12 * time.Second)
				for len(stamps) < 2 {
					s, err := alice.Wait(context.Background(), 0, time.Until(deadline), func(s xmpptest.Stanza) bool {
						return s.Name == "message" && s.From == room+"/"+crierNick && strings.HasPrefix(s.Body, "tick ")
					})
					if errors.Is(err, xmpptest.ErrTimeout) {
						t.Fatalf("%d cron posts within 12s, want 2\n%s", len(stamps), alice.Recent(10))
					}
					if err != nil {
						t.Fatal(err)
					}
					if s.Type != "groupchat" {
						t.Errorf("cron post type %q, want groupchat", s.Type)
					}
					n, err := strconv.ParseInt(strings.TrimPrefix(s.Body, "tick "), 10, 64)
					if err != nil {
						t.Fatalf("cron post %q: %v", s.Body, err)
					}
					stamps = append(stamps, n)
				}
				if d := stamps[1] - stamps[0]; d != 3 {
					t.Errorf("cron posts %ds apart, want 3s", d)
				}
			})

			t.Run("reload", func(t *testing.T) {
				room := newRoom(p, "rreload")
				d := startRulesCrier(t, p, room, fmt.Sprintf(helloRule, "hi {{.Nick}}"))
				alice := dialAs(t, p, "alice", "rules-reload")
				if err := alice.Join(room, "alice"); err != nil {
					t.Fatalf("alice joins %s: %v", room, err)
				}
				sayUntil(t, alice, room, "hello crier", "hi alice", 20*time.Second)

				x, tables := rulesConfig(t, p, room, fmt.Sprintf(helloRule, "welcome back, {{.Nick | upper}}"))
				d.Rewrite(t, x, tables)
				since := alice.Seq()
				if err := d.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				sayUntil(t, alice, room, "hello crier", "welcome back, ALICE", 20*time.Second)
				d.Running(t)
				if v := d.ReadMetric(t, "crier_connects_total"); v != 1 {
					t.Errorf("crier_connects_total = %v after SIGHUP, want 1 (0 when missing)", v)
				}
				if v := d.ReadMetric(t, "crier_reloads_total", "result", "ok"); v != 1 {
					t.Errorf("crier_reloads_total{result=ok} = %v, want 1", v)
				}
				for _, s := range alice.Drain() {
					if s.Seq > since && s.Name == "presence" && s.From == room+"/"+crierNick {
						t.Errorf("crier left or rejoined the room on reload: %s", s.Raw)
					}
				}
			})
		})
	}
}
