package bot

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/config"
	"crier/internal/miniserver"
)

// manyRooms returns n room JIDs on the mini server's chat service.
func manyRooms(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("r%04d@conference.localhost", i)
	}
	return out
}

// roomsBot starts a bot on srv in the lobby and the rooms of jids.
func roomsBot(t testing.TB, srv *miniserver.Server, jids []string, extra string, opts Options) *harness {
	t.Helper()
	cfg := botConfig(t, srv, extra)
	for _, j := range jids {
		cfg.Rooms = append(cfg.Rooms, config.Room{JID: j, Nick: "crier"})
	}
	return startBot(t, srv, cfg, opts)
}

// joinedCount is how many rooms the bot is in.
func joinedCount(t *testing.T, b *Bot) int { return int(gauge(t, b, "crier_rooms_joined")) }

// TestJoinWindowRespected: with a server that answers every join after
// 200 ms, the bot starts with 8 joins outstanding and widens the window
// as answers come in; it never has all 100 joins out at once, and all are
// joined. It fails when joins are sent without the window.
func TestJoinWindowRespected(t *testing.T) {
	srv := startMini(t, miniserver.Config{JoinDelay: 200 * time.Millisecond})
	h := roomsBot(t, srv, manyRooms(100), "", Options{SelfPing: -1})
	deadline := time.Now().Add(10 * time.Second)
	for srv.MUCStats().PendingPeak == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the first round of joins is out, none answered
	if st := srv.MUCStats(); st.PendingPeak > joinWindowStart {
		t.Fatalf("%d joins outstanding before the first answer, want at most %d", st.PendingPeak, joinWindowStart)
	}
	h.waitReady(20 * time.Second)
	st := srv.MUCStats()
	if st.PendingPeak > 64 || st.PendingPeak < joinWindowStart {
		t.Errorf("server saw at most %d joins outstanding, want %d..64 (a window doubling per round trip)", st.PendingPeak, joinWindowStart)
	}
	if st.Joins != 101 || st.JoinsRefused != 0 {
		t.Errorf("server answered %d joins and refused %d, want 101 and 0", st.Joins, st.JoinsRefused)
	}
	if js := h.bot.rooms.joinStats(); js.Outstanding != 0 || js.Queued != 0 || js.Window <= joinWindowStart {
		t.Errorf("after all joined: %+v, want nothing outstanding or queued and a window above %d", js, joinWindowStart)
	}
}

// TestJoinSlowDownLearned: a server that refuses joins with
// resource-constraint while 5 wait for their answer makes the bot halve its
// window, hold back and stay below 5 outstanding; every room is joined, and
// after a server restart all are joined again without a single refusal.
func TestJoinSlowDownLearned(t *testing.T) {
	srv := startMini(t, miniserver.Config{JoinDelay: 30 * time.Millisecond, MaxPendingJoins: 5})
	h := roomsBot(t, srv, manyRooms(60), "", Options{SelfPing: -1})
	h.waitReady(30 * time.Second)
	st := srv.MUCStats()
	if st.JoinsRefused == 0 {
		t.Fatalf("the server refused no join: the limit was not reached (peak %d)", st.PendingPeak)
	}
	if got := labelled(t, h.bot, "crier_room_join_failures_total", "reason", "slow_down"); got != float64(st.JoinsRefused) {
		t.Errorf("crier_room_join_failures_total{slow_down} = %v, server refused %d", got, st.JoinsRefused)
	}
	if js := h.bot.rooms.joinStats(); js.Ceiling > 5 {
		t.Errorf("ceiling %d after refusals at 5 outstanding, want at most 5", js.Ceiling)
	}
	first := st.JoinsRefused
	srv.ResetMUCStats()
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitNotReady(5*time.Second, "")
	h.waitReady(30 * time.Second)
	if st := srv.MUCStats(); st.JoinsRefused != 0 || st.Joins != 61 {
		t.Errorf("after the restart: %d joins answered, %d refused (first session: %d refused), want 61 and 0", st.Joins, st.JoinsRefused, first)
	}
}

// TestRejoinThousandRoomsAfterRestart: a bot in 1,000 rooms is back in all
// of them after the server restarts (forgetting every room), with the join
// window bounding what is outstanding.
func TestRejoinThousandRoomsAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Log("1,000 rooms also in -short mode: the case is the point")
	}
	srv := startMini(t, miniserver.Config{JoinDelay: time.Millisecond})
	h := roomsBot(t, srv, manyRooms(1000), "", Options{SelfPing: -1})
	h.waitReady(60 * time.Second)
	if n := joinedCount(t, h.bot); n != 1001 {
		t.Fatalf("joined %d rooms, want 1001", n)
	}
	srv.ResetMUCStats()
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitNotReady(5*time.Second, "")
	h.waitReady(60 * time.Second)
	st := srv.MUCStats()
	if st.Joins != 1001 || st.JoinsRefused != 0 {
		t.Errorf("after the restart the server answered %d joins (refused %d), want 1001", st.Joins, st.JoinsRefused)
	}
	if st.PendingPeak > joinWindowMax {
		t.Errorf("%d joins outstanding at once, over the window's maximum %d", st.PendingPeak, joinWindowMax)
	}
	for _, r := range []string{"r0000", "r0500", "r0999"} {
		if occ := srv.Occupants(r); !contains(occ, "crier") {
			t.Errorf("%s occupants after the restart: %v", r, occ)
		}
	}
}

// TestRoomLimitNoSpin: a server that takes the account into 20 rooms and
// refuses every further join (resource-constraint, as ejabberd's
// max_user_conferences) gets those 20 joined, the refusals counted, and a
// slow trickle of retries, not a spin; the bot keeps answering.
func TestRoomLimitNoSpin(t *testing.T) {
	srv := startMini(t, miniserver.Config{MaxRoomsPerUser: 20})
	h := roomsBot(t, srv, manyRooms(39), "", Options{SelfPing: -1, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for joinedCount(t, h.bot) < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := joinedCount(t, h.bot); n != 20 {
		t.Fatalf("joined %d rooms, want the server's limit of 20", n)
	}
	time.Sleep(time.Second) // the backoff reaches its maximum
	before := srv.MUCStats().JoinsRefused
	time.Sleep(3 * time.Second)
	refused := srv.MUCStats().JoinsRefused - before
	// With a hold of up to 500 ms after each refusal and every room's own
	// backoff, at most a few joins a second go out; a spin would be
	// thousands.
	if refused > 30 || refused < 1 {
		t.Errorf("%d joins refused in 3 s, want a few (retried with backoff, no spin)", refused)
	}
	if got := labelled(t, h.bot, "crier_room_join_failures_total", "reason", "slow_down"); got < float64(before) {
		t.Errorf("crier_room_join_failures_total{slow_down} = %v, server refused %d", got, before)
	}
	_, lines := h.bot.Ready()
	if !strings.Contains(strings.Join(lines, "\n"), "resource-constraint") {
		t.Errorf("readiness does not say why rooms are not joined: %v", lines)
	}
	// The bot still answers in a room it is in.
	alice := joinRoom(t, h, "alice")
	if err := alice.SendMessage(room, "groupchat", "!ping"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
}

// TestStuckRoomOthersUnaffected: a room whose joins are never answered is
// retried after each join timeout, with backoff, and counted; the other
// rooms are joined and their messages go out at once; messages to the
// stuck room wait behind its gate, at most limits.room_queue of them (the
// rest dropped and counted), and go out once it is joined.
func TestStuckRoomOthersUnaffected(t *testing.T) {
	srv := startMini(t, miniserver.Config{})
	const stuck = "stuck@conference.localhost"
	srv.IgnoreJoins("stuck", true)
	h := roomsBot(t, srv, append(manyRooms(20), stuck), "[limits]\nroom_queue = 3\n", Options{SelfPing: -1, JoinTimeout: 300 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for joinedCount(t, h.bot) < 21 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := joinedCount(t, h.bot); n != 21 {
		t.Fatalf("joined %d rooms, want the 21 that answer", n)
	}
	alice := joinRoom(t, h, "alice")
	for i := range 5 {
		h.bot.sendText(stuck, "groupchat", fmt.Sprintf("held %d", i), "", time.Time{})
	}
	if err := alice.SendMessage(room, "groupchat", "!ping"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	time.Sleep(2 * time.Second)
	if got := labelled(t, h.bot, "crier_room_join_failures_total", "reason", "timeout"); got < 2 || got > 12 {
		t.Errorf("%v join timeouts in about 2.5 s with a 300 ms timeout and backoff, want a few", got)
	}
	if got := labelled(t, h.bot, "crier_outbox_dropped_total", "reason", "room_queue_full"); got != 2 {
		t.Errorf("dropped %v messages to the stuck room, want 2 (5 sent, room_queue = 3)", got)
	}
	ignored := srv.MUCStats().JoinsIgnored
	if ignored < 2 || ignored > 12 {
		t.Errorf("%d joins of the stuck room in about 2.5 s, want a few", ignored)
	}

	// The room comes back: the bot gets in at its next try and the held
	// messages follow, in order.
	bob := h.user("bob")
	srv.IgnoreJoins("stuck", false)
	if err := bob.Join(stuck, "bob"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		bob.Expect(t, 10*time.Second, isBody(stuck+"/crier", fmt.Sprintf("held %d", i)))
	}
	h.waitReady(5 * time.Second)
}

// TestRoomRateLearnedNoLoss: a room that bounces messages sent less than
// 100 ms apart (policy-violation, as mod_muc_limits) gets all of a burst of
// 30, in order: the bounced ones are sent again after a backoff and the
// room's messages are spaced by a learned gap. It fails without the gap
// (each resend burst bounces again until the messages are given up).
func TestRoomRateLearnedNoLoss(t *testing.T) {
	srv := startMini(t, miniserver.Config{RoomMessageInterval: 100 * time.Millisecond})
	h := roomsBot(t, srv, nil, "", Options{SelfPing: -1})
	h.waitReady(5 * time.Second)
	alice := joinRoom(t, h, "alice")
	const n = 30
	for i := range n {
		h.bot.sendText(room, "groupchat", fmt.Sprintf("burst %02d", i), "", time.Time{})
	}
	for i := range n {
		alice.Expect(t, 30*time.Second, isBody(room+"/crier", fmt.Sprintf("burst %02d", i)))
	}
	limited := srv.MUCStats().MessagesLimited
	if limited == 0 {
		t.Fatal("the room bounced nothing: the limit was not reached")
	}
	// The first burst bounces all but one; after that the learned gap
	// keeps bounces to a few.
	if limited > n-1+6 {
		t.Errorf("%d messages bounced, want at most %d (the first burst and a few while learning)", limited, n-1+6)
	}
	if g := h.bot.out.Gap(room); g < 100*time.Millisecond {
		t.Errorf("learned gap %v, want at least the room's 100 ms", g)
	}
	if got := labelled(t, h.bot, "crier_outbox_dropped_total", "reason", "refused"); got != 0 {
		t.Errorf("%v messages given up", got)
	}
}

// TestSelfPingsSpread: the self-pings of 40 rooms at a 1 s interval arrive
// spread over the interval, not as one burst.
func TestSelfPingsSpread(t *testing.T) {
	srv := startMini(t, miniserver.Config{})
	h := roomsBot(t, srv, manyRooms(40), "", Options{SelfPing: time.Second})
	h.waitReady(10 * time.Second)
	srv.ResetMUCStats()
	time.Sleep(2600 * time.Millisecond)
	pings := srv.MUCStats().SelfPings
	if len(pings) < 41 {
		t.Fatalf("%d self-pings in 2.6 s, want a round of 41", len(pings))
	}
	most := 0
	for i := range pings {
		j := i
		for j < len(pings) && pings[j].Sub(pings[i]) < 100*time.Millisecond {
			j++
		}
		most = max(most, j-i)
	}
	// 41 pings spread over 1 s are about 4 per 100 ms.
	if most > 15 {
		t.Errorf("%d self-pings within 100 ms (of %d): a burst, not spread", most, len(pings))
	}
}
