package rules

import (
	"strings"
	"sync"
	"testing"
	"time"

	"crier/internal/diag"
)

func TestCronNext(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 3, 29, 12, 0, 0, 0, time.UTC) // a Friday
	tests := []struct {
		schedule, tz string
		want         time.Time
	}{
		{"0 9 * * *", "UTC", time.Date(2024, 3, 30, 9, 0, 0, 0, time.UTC)},
		{"0 9 * * *", "Europe/Paris", time.Date(2024, 3, 30, 9, 0, 0, 0, paris)},
		{"30 0 9 * * *", "UTC", time.Date(2024, 3, 30, 9, 0, 30, 0, time.UTC)},
		{"*/15 * * * *", "UTC", time.Date(2024, 3, 29, 12, 15, 0, 0, time.UTC)},
		{"0 9 * * mon-fri", "UTC", time.Date(2024, 4, 1, 9, 0, 0, 0, time.UTC)},
		{"0 0 1 jan *", "UTC", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0 0 13 * 5", "UTC", time.Date(2024, 4, 5, 0, 0, 0, 0, time.UTC)}, // day 13 or a Friday
		{"@daily", "UTC", time.Date(2024, 3, 30, 0, 0, 0, 0, time.UTC)},
		{"@hourly", "UTC", time.Date(2024, 3, 29, 13, 0, 0, 0, time.UTC)},
		{"@weekly", "UTC", time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)},
		{"@every 90s", "UTC", base.Add(90 * time.Second)},
		{"30 2 * * *", "Europe/Paris", time.Date(2024, 3, 30, 2, 30, 0, 0, paris)},
		{"*/2 * * * * *", "UTC", base.Add(2 * time.Second)},
		{"0 0 12 * * ?", "UTC", time.Date(2024, 3, 30, 12, 0, 0, 0, time.UTC)},
		{"@monthly", "UTC", time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"@yearly", "Europe/Paris", time.Date(2025, 1, 1, 0, 0, 0, 0, paris)},
		{"@midnight", "Europe/Paris", time.Date(2024, 3, 30, 0, 0, 0, 0, paris)},
		{"@every 1m30s", "UTC", base.Add(90 * time.Second)},
		{"0 18 * * sun", "Asia/Tokyo", time.Date(2024, 3, 31, 18, 0, 0, 0, time.FixedZone("JST", 9*3600))},
		// 02:30 does not exist in Paris on 31 March 2024: that run is skipped.
		{"30 2 31 3 *", "Europe/Paris", time.Date(2025, 3, 31, 2, 30, 0, 0, paris)},
	}
	for _, tt := range tests {
		t.Run(tt.schedule+"/"+tt.tz, func(t *testing.T) {
			jobs, errs := CompileCron([]CronSpec{{Name: "j", Schedule: tt.schedule, Timezone: tt.tz, To: "x@example.org", Body: "hi"}})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			got := jobs[0].Next(base)
			if !got.Equal(tt.want) {
				t.Errorf("Next = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompileCronErrors(t *testing.T) {
	pos := diag.Pos{File: "c.toml", Line: 1, Keys: map[string]int{"schedule": 3, "timezone": 4, "body": 5, "jitter": 6, "missed": 7, "to": 8, "type": 9}}
	specs := []CronSpec{
		{Name: "a", Schedule: "61 * * * *", To: "x", Body: "b", Pos: pos},
		{Name: "b", Schedule: "@daily", Timezone: "Mars/Olympus", To: "x", Body: "b", Pos: pos},
		{Name: "c", Schedule: "@daily", To: "x", Body: "{{.Nmae}}", Pos: pos},
		{Name: "d", Schedule: "@daily", To: "x", Body: "b", Jitter: "soon", Missed: "twice", Pos: pos},
		{Name: "e", Schedule: "0 0 30 2 *", Body: "b", Type: "fax", Pos: pos},
		{Name: "f", Schedule: "CRON_TZ=UTC 0 9 * * *", To: "x", Body: "b", Pos: pos},
	}
	want := []string{
		`c.toml:3: cron "a": schedule "61 * * * *": end of range (61) above maximum (59)`,
		`c.toml:4: cron "b": unknown time zone "Mars/Olympus"`,
		`c.toml:5: cron "c": body template`,
		`c.toml:6: cron "d": jitter "soon"`,
		`c.toml:7: cron "d": unknown missed "twice"`,
		`c.toml:3: cron "e": schedule "0 0 30 2 *" never fires`,
		`c.toml:8: cron "e": to is required`,
		`c.toml:9: cron "e": unknown type "fax"`,
		`c.toml:3: cron "f": schedule "CRON_TZ=UTC 0 9 * * *": set the zone with the timezone key`,
	}
	jobs, errs := CompileCron(specs)
	if jobs != nil {
		t.Error("jobs returned despite errors")
	}
	text := errs.Error()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("missing %q in:\n%s", w, text)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(errs), len(want), text)
	}
}

// TestCronScheduleErrors checks that each kind of bad schedule is refused at
// the line of the schedule key, with robfig/cron's reason or ours.
func TestCronScheduleErrors(t *testing.T) {
	tests := []struct{ schedule, want string }{
		{"", `cron "j": schedule is required`},
		{"   ", `cron "j": schedule is required`},
		{"* * * *", `schedule "* * * *": expected 5 to 6 fields, found 4`},
		{"0 0 0 1 1 1 1", `expected 5 to 6 fields, found 7`},
		{"60 * * * * *", `end of range (60) above maximum (59)`},
		{"0 25 * * *", `end of range (25) above maximum (23)`},
		{"0 0 0 * *", `beginning of range (0) below minimum (1)`},
		{"5-1 * * * *", `beginning of range (5) beyond end of range (1)`},
		{"*/0 * * * *", `step of range should be a positive number`},
		{"0 9 * * mon-fry", `failed to parse int from fry`},
		{"@fortnightly", `unrecognized descriptor: @fortnightly`},
		{"@every", `@every wants a positive duration`},
		{"@every -5s", `@every wants a positive duration`},
		{"@every 0s", `@every wants a positive duration`},
		{"@every soon", `@every wants a positive duration`},
		{"TZ=UTC", `set the zone with the timezone key`},
		{"CRON_TZ=Europe/Paris @daily", `set the zone with the timezone key`},
		{"0 0 31 2 *", `schedule "0 0 31 2 *" never fires`},
	}
	for _, tt := range tests {
		t.Run(tt.schedule, func(t *testing.T) {
			pos := diag.Pos{File: "c.toml", Line: 10, Keys: map[string]int{"schedule": 12}}
			jobs, errs := CompileCron([]CronSpec{{Name: "j", Schedule: tt.schedule, To: "x@example.org", Body: "b", Pos: pos}})
			if jobs != nil || len(errs) != 1 {
				t.Fatalf("got jobs %v and %d errors, want one error: %v", jobs, len(errs), errs)
			}
			text := errs.Error()
			if !strings.HasPrefix(text, `c.toml:12: cron "j": `) || !strings.Contains(text, tt.want) {
				t.Errorf("error = %q, want it at c.toml:12 and containing %q", text, tt.want)
			}
		})
	}
}

// TestCronNextKeepsZone checks that Next reads the spec on the job's wall
// clock whatever the zone of the time it is given, and answers in that zone.
func TestCronNextKeepsZone(t *testing.T) {
	jobs, errs := CompileCron([]CronSpec{{Name: "j", Schedule: "0 9 * * *", Timezone: "America/New_York", To: "x@example.org", Body: "b"}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tokyo := time.FixedZone("JST", 9*3600)
	from := time.Date(2024, 7, 1, 12, 0, 0, 0, tokyo) // 23:00 on 30 June in New York
	got := jobs[0].Next(from)
	want := time.Date(2024, 7, 1, 13, 0, 0, 0, time.UTC) // 09:00 EDT on 1 July
	if !got.Equal(want) {
		t.Errorf("Next = %v, want %v", got, want)
	}
	if got.Location() != tokyo {
		t.Errorf("Next is in %v, want the caller's zone %v", got.Location(), tokyo)
	}
}

// TestCronDaylightSaving pins what a wall-clock schedule does when the
// clocks change, as docs/RULES.md tells it: a time that does not exist that
// day is skipped, and a time that happens twice runs twice.
func TestCronDaylightSaving(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	jobs, errs := CompileCron([]CronSpec{{Name: "j", Schedule: "30 2 * * *", Timezone: "Europe/Paris", To: "x@example.org", Body: "b"}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	runs := func(from time.Time, n int) []time.Time {
		var out []time.Time
		for range n {
			from = jobs[0].Next(from)
			out = append(out, from.UTC())
		}
		return out
	}
	spring := runs(time.Date(2024, 3, 30, 12, 0, 0, 0, paris), 1)
	if want := time.Date(2024, 4, 1, 0, 30, 0, 0, time.UTC); !spring[0].Equal(want) {
		t.Errorf("spring: next run %v, want %v (31 March has no 02:30)", spring[0], want)
	}
	autumn := runs(time.Date(2024, 10, 27, 0, 0, 0, 0, paris), 3)
	want := []time.Time{
		time.Date(2024, 10, 27, 0, 30, 0, 0, time.UTC), // 02:30 CEST
		time.Date(2024, 10, 27, 1, 30, 0, 0, time.UTC), // 02:30 CET
		time.Date(2024, 10, 28, 1, 30, 0, 0, time.UTC),
	}
	for i := range want {
		if !autumn[i].Equal(want[i]) {
			t.Errorf("autumn run %d: %v, want %v", i, autumn[i], want[i])
		}
	}
}

// FuzzParseSchedule checks that any schedule text is either refused with an
// error or gives activations that move strictly forward, on whole seconds.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"0 9 * * *", "*/2 * * * * *", "@every 90s", "@daily", "0 0 13 * 5", "TZ=UTC", "1-5/2,7 * * jan-mar mon", "@every", "? ? ? ? ? ?"} {
		f.Add(s)
	}
	from := time.Date(2024, 3, 29, 12, 0, 0, 500, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := parseSchedule(spec, time.UTC)
		if err != nil {
			return
		}
		n := s.next(from)
		if n.IsZero() {
			return
		}
		if !n.After(from) || n.Nanosecond() != 0 {
			t.Fatalf("%q: next(%v) = %v, want a later whole second", spec, from, n)
		}
		if n2 := s.next(n); !n2.IsZero() && !n2.After(n) {
			t.Fatalf("%q: next(%v) = %v does not move forward", spec, n, n2)
		}
	})
}

// fakeClock fires its timers when advanced.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeTimer
	changed chan struct{}
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, changed: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeTimer{c.now.Add(d), ch})
	c.changed <- struct{}{}
	return ch
}

// waitTimers blocks until n timers are pending.
func (c *fakeClock) waitTimers(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.waiters)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %d timers (have %d)", n, got)
		}
	}
}

// advance moves the clock and fires the timers that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

func TestSchedulerFakeClock(t *testing.T) {
	start := time.Date(2024, 5, 6, 8, 59, 0, 0, time.UTC)
	clk := newFakeClock(start)
	jobs, errs := CompileCron([]CronSpec{
		{Name: "greeting", Schedule: "0 9 * * *", Timezone: "UTC", To: lobby, Body: "Good morning ({{.Time.Format \"15:04\"}})"},
		{Name: "catchup", Schedule: "*/10 * * * *", Timezone: "UTC", To: "ops@example.org", Body: "tick", Missed: "once", Type: "headline"},
		{Name: "skipper", Schedule: "*/10 * * * *", Timezone: "UTC", To: "ops@example.org", Body: "skip"},
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := make(chan Action, 10)
	s := NewScheduler(jobs, func(a Action) { got <- a }, WithClock(clk), WithRooms(lobby))
	s.Start()
	defer s.Stop()

	expect := func(want ...string) {
		t.Helper()
		seen := map[string]bool{}
		for range want {
			select {
			case a := <-got:
				seen[a.Rule+": "+a.Type+": "+a.Text] = true
			case <-time.After(5 * time.Second):
				t.Fatalf("timed out; saw %v, want %v", seen, want)
			}
		}
		for _, w := range want {
			if !seen[w] {
				t.Errorf("missing %q in %v", w, seen)
			}
		}
		select {
		case a := <-got:
			t.Errorf("unexpected extra action %+v", a)
		default:
		}
	}

	clk.waitTimers(t, 3)
	clk.advance(time.Minute) // 09:00
	expect("greeting: groupchat: Good morning (09:00)", "catchup: headline: tick", "skipper: chat: skip")

	clk.waitTimers(t, 3)
	s.Disconnected()
	clk.advance(10 * time.Minute) // 09:10, missed by both 10-minute jobs
	clk.waitTimers(t, 3)
	clk.advance(10 * time.Minute) // 09:20, missed again
	clk.waitTimers(t, 3)
	expect()
	s.Reconnected()
	expect("catchup: headline: tick") // once, not twice; skipper stays quiet
	clk.waitTimers(t, 3)
}

func TestSchedulerRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about two seconds")
	}
	jobs, errs := CompileCron([]CronSpec{{Name: "tick", Schedule: "@every 1s", To: "x@example.org", Body: "tick {{.Name}}"}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var mu sync.Mutex
	var n int
	s := NewScheduler(jobs, func(a Action) {
		mu.Lock()
		n++
		mu.Unlock()
		if a.Text != "tick tick" || a.Type != TypeChat {
			t.Errorf("action %+v", a)
		}
	})
	s.Start()
	time.Sleep(2500 * time.Millisecond)
	s.Stop()
	s.Stop() // safe twice
	mu.Lock()
	defer mu.Unlock()
	if n < 1 || n > 3 {
		t.Errorf("ran %d times in 2.5s, want 2 (1 to 3)", n)
	}
}

// memHistory is a History in memory, shared by two schedulers as the
// state store is shared by two runs of crier.
type memHistory struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (h *memHistory) Last(job string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.last[job]
	return t, ok
}

func (h *memHistory) Ran(job string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last[job] = at
}

// TestSchedulerHistoryAcrossRestart: a missed = "once" job whose run fell
// while crier was stopped runs once at the next start, and not again at
// the start after; a skip job does not; a run that already happened is
// not repeated by a restart.
func TestSchedulerHistoryAcrossRestart(t *testing.T) {
	start := time.Date(2024, 5, 6, 8, 59, 0, 0, time.UTC)
	clk := newFakeClock(start)
	specs := []CronSpec{
		{Name: "catchup", Schedule: "0 9 * * *", Timezone: "UTC", To: "ops@example.org", Body: "daily", Missed: "once"},
		{Name: "skipper", Schedule: "0 9 * * *", Timezone: "UTC", To: "ops@example.org", Body: "skip"},
	}
	jobs, errs := CompileCron(specs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	h := &memHistory{last: map[string]time.Time{}}
	got := make(chan Action, 10)
	run := func() *Scheduler {
		s := NewScheduler(jobs, func(a Action) { got <- a }, WithClock(clk), WithHistory(h))
		s.Start()
		return s
	}
	count := func(wait time.Duration) map[string]int {
		seen := map[string]int{}
		deadline := time.After(wait)
		for {
			select {
			case a := <-got:
				seen[a.Rule]++
			case <-deadline:
				return seen
			}
		}
	}
	s := run()
	clk.waitTimers(t, 2)
	clk.advance(time.Minute) // 09:00: both run
	if c := count(300 * time.Millisecond); c["catchup"] != 1 || c["skipper"] != 1 {
		t.Fatalf("at 09:00: %v", c)
	}
	clk.waitTimers(t, 2)
	s.Stop()

	// A restart the same morning repeats nothing.
	s = run()
	if c := count(300 * time.Millisecond); len(c) != 0 {
		t.Fatalf("a restart after the run repeated it: %v", c)
	}
	s.Stop()

	// Stopped over the next 09:00: the once job runs once at the start.
	clk.advance(30 * time.Hour)
	s = run()
	if c := count(300 * time.Millisecond); c["catchup"] != 1 || c["skipper"] != 0 {
		t.Fatalf("start after a missed run: %v, want catchup once and skipper not", c)
	}
	s.Stop()
	s = run()
	if c := count(300 * time.Millisecond); len(c) != 0 {
		t.Fatalf("the catch-up ran again at the next start: %v", c)
	}
	s.Stop()
}

// claimHistory claims each tick once across the schedulers sharing it.
type claimHistory struct {
	memHistory
	claimed map[string]bool
}

func (h *claimHistory) Claim(job string, at time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := job + at.String()
	if h.claimed[k] {
		return false
	}
	h.claimed[k] = true
	return true
}

// TestSchedulerClaim: two schedulers whose history is a Claimer run each
// tick once between them.
func TestSchedulerClaim(t *testing.T) {
	start := time.Date(2024, 5, 6, 8, 59, 0, 0, time.UTC)
	clk := newFakeClock(start)
	jobs, errs := CompileCron([]CronSpec{{Name: "tick", Schedule: "0 9 * * *", Timezone: "UTC", To: "ops@example.org", Body: "daily"}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	h := &claimHistory{memHistory: memHistory{last: map[string]time.Time{}}, claimed: map[string]bool{}}
	got := make(chan Action, 10)
	for range 2 {
		s := NewScheduler(jobs, func(a Action) { got <- a }, WithClock(clk), WithHistory(h))
		s.Start()
		defer s.Stop()
	}
	clk.waitTimers(t, 2)
	clk.advance(time.Minute)
	n := 0
	for deadline := time.After(300 * time.Millisecond); ; {
		select {
		case <-got:
			n++
			continue
		case <-deadline:
		}
		break
	}
	if n != 1 {
		t.Fatalf("two schedulers ran one claimed tick %d times, want 1", n)
	}
}
