//go:build peers

package peers_test

import (
	"fmt"
	"testing"
	"time"

	"crier/internal/peers"
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
