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

// TestThousandRooms runs the crier binary in 1,000 rooms on each real
// server: every room is joined, answers come from the last room as from the
// first, and after a restart of the server (which forgets every room) all
// are joined again, with no join refused as too much and none timed out.
// The servers' limits for this: ejabberd's max_user_conferences and
// Prosody's muc_room_cache_size, both 2000 in scripts/peers.
func TestThousandRooms(t *testing.T) {
	const n = 1000
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			prefix := fmt.Sprintf("many%d", time.Now().UnixNano()%1e9)
			rooms := make([]string, n)
			for i := range rooms {
				rooms[i] = fmt.Sprintf("%s-%04d@%s", prefix, i, p.MUC)
			}
			d := startCrier(t, crierConfig{peer: p, tls: "starttls", password: p.Account(t, "crier").Password, rooms: rooms})
			start := time.Now()
			d.WaitReady(t, 60*time.Second)
			t.Logf("%s: %d rooms joined %v after start", name, n, time.Since(start).Round(time.Millisecond))
			if got := d.ReadMetric(t, "crier_rooms_joined"); got != n {
				t.Fatalf("crier_rooms_joined = %v, want %d", got, n)
			}
			ping := func(resource, room string) {
				t.Helper()
				alice := dialAs(t, p, "alice", resource)
				if err := alice.Join(room, "alice"); err != nil {
					t.Fatalf("alice joins %s: %v", room, err)
				}
				pingUntilPong(t, alice, 30*time.Second,
					func() error { return alice.SendMessage(room, "groupchat", "!ping") },
					isGroupPong(room, "alice"))
			}
			ping("first", rooms[0])
			ping("last", rooms[n-1])

			p.Restart(t)
			restarted := time.Now()
			// Not ready while the server is away, then ready again.
			deadline := time.Now().Add(30 * time.Second)
			for d.ReadyStatus() == 200 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			d.WaitReady(t, 90*time.Second)
			t.Logf("%s: %d rooms joined again %v after the server was back", name, n, time.Since(restarted).Round(time.Millisecond))
			if got := d.ReadMetric(t, "crier_rooms_joined"); got != n {
				t.Fatalf("after the restart crier_rooms_joined = %v, want %d", got, n)
			}
			for _, reason := range []string{"slow_down", "timeout"} {
				if got := d.ReadMetric(t, "crier_room_join_failures_total", "reason", reason); got != 0 {
					t.Errorf("crier_room_join_failures_total{reason=%q} = %v, want 0 (the server's limits were tripped)\n%s", reason, got, d.LogTail(20))
				}
			}
			ping("after", rooms[n/2])
		})
	}
}

// TestRoomRateLimit: a room of the peer's rate-limited chat service
// (scripts/peers: a message less than 200 ms after the same occupant's
// previous one bounces; Prosody answers policy-violation, ejabberd
// resource-constraint) gets every part of a 20-part reply, in order: the
// bounced parts are sent again and the room's rate is learned; nothing is
// given up.
func TestRoomRateLimit(t *testing.T) {
	const parts = 20
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			service := p.Env["MUC_LIMITED"]
			if service == "" {
				t.Fatalf("%s/env has no MUC_LIMITED: restart the peer with the current scripts/peers/%s.sh", p.Dir, name)
			}
			room := fmt.Sprintf("rate%d@%s", time.Now().UnixNano()%1e9, service)
			var reply []string
			for i := range parts {
				reply = append(reply, fmt.Sprintf("burst %02d %s", i, strings.Repeat("x", 40)))
			}
			tables := roomsTOML(room) + fmt.Sprintf("[limits]\nmax_body_bytes = 64\n\n[[rules]]\nname = \"burst\"\nmatch = \"^!burst$\"\nreply = %q\n", strings.Join(reply, "\n"))
			d := crierproc.Run(t, tcpXMPP(p, "starttls", p.Account(t, "crier").Password), tables)
			d.WaitReady(t, 45*time.Second)
			alice := dialAs(t, p, "alice", "rate")
			if err := alice.Join(room, "alice"); err != nil {
				t.Fatalf("alice joins %s: %v", room, err)
			}
			since := alice.Seq()
			if err := alice.SendMessage(room, "groupchat", "!burst"); err != nil {
				t.Fatal(err)
			}
			var got []string
			for len(got) < parts {
				st, err := alice.Wait(context.Background(), since, 60*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "message" && s.From == room+"/"+crierNick && strings.HasPrefix(s.Body, "burst ")
				})
				if err != nil {
					t.Fatalf("%d of %d parts came: %v\n%s\ncrier:\n%s", len(got), parts, err, alice.Recent(10), d.LogTail(20))
				}
				got = append(got, st.Body)
			}
			if strings.Join(got, "\n") != strings.Join(reply, "\n") {
				t.Errorf("parts out of order or changed:\n%s", strings.Join(got, "\n"))
			}
			limited := d.ReadMetric(t, "crier_rate_limited_total")
			if limited == 0 {
				t.Errorf("the room bounced nothing: its limit was not reached")
			}
			if got := d.ReadMetric(t, "crier_outbox_dropped_total", "reason", "refused"); got != 0 {
				t.Errorf("%v parts given up after bounces", got)
			}
			t.Logf("%s: %d parts delivered in order, %v bounced and sent again", name, parts, limited)
		})
	}
}
