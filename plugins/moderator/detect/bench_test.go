package detect

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"crier/plugins/moderator/normalize"
)

// benchWordList returns the corpus list padded with made-up words and
// phrases to n entries, the same on every run.
func benchWordList(t testing.TB, n int) WordList {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "corpus", "blocklist.txt"))
	if err != nil {
		t.Fatal(err)
	}
	wl := WordList{Name: "bench", Points: 5}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "+"):
			wl.Allow = append(wl.Allow, line[1:])
		default:
			wl.Words = append(wl.Words, line)
		}
	}
	r := rand.New(rand.NewPCG(11, 12))
	onsets := []string{"b", "br", "c", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "kr", "l", "m", "n", "p", "pl", "qu", "r", "s", "sh", "sk", "sl", "st", "t", "th", "tr", "v", "w", "z"}
	vowels := []string{"a", "e", "i", "o", "u", "ai", "ea", "oo", "ou", "y"}
	codas := []string{"", "", "n", "r", "s", "t", "ck", "ng", "x", "mp", "rd", "sh"}
	word := func() string {
		var b strings.Builder
		for range 2 + r.IntN(2) {
			b.WriteString(onsets[r.IntN(len(onsets))])
			b.WriteString(vowels[r.IntN(len(vowels))])
		}
		b.WriteString(codas[r.IntN(len(codas))])
		return b.String()
	}
	seen := map[string]bool{}
	for len(wl.Words) < n {
		var e string
		switch k := r.IntN(20); {
		case k == 0:
			e = word() + " " + word()
		case k == 1:
			e = "*" + word() + "*"
		case k == 2:
			e = word() + "*"
		default:
			e = word()
		}
		if !seen[e] {
			seen[e] = true
			wl.Words = append(wl.Words, e)
		}
	}
	return wl
}

var benchNicks = func() []string {
	nicks := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	for i := len(nicks); i < 200; i++ {
		nicks = append(nicks, fmt.Sprintf("player%d", i))
	}
	return nicks
}()

var benchOccupants = NewNickSet(benchNicks...)

// benchSet is every message detector on, with an n-entry word list and a
// clock that moves 300ms a call.
func benchSet(t testing.TB, n int) *Set {
	t.Helper()
	var tick atomic.Int64
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return start.Add(time.Duration(tick.Add(1)) * 300 * time.Millisecond) }
	norm := normalize.New(normalize.All)
	words, err := NewWords(norm, benchWordList(t, n))
	if err != nil {
		t.Fatal(err)
	}
	pats, err := NewPatterns(
		Pattern{Name: "vbucks", Expr: `v\W*bucks`, Points: 3},
		Pattern{Name: "phone", Expr: `\+?\d[\d -]{8,}\d`, Raw: true, Points: 2},
		Pattern{Name: "sellgold", Expr: `(?:sell|buy)\w* (?:cheap )?gold`, Points: 1},
	)
	if err != nil {
		t.Fatal(err)
	}
	return NewSet(norm,
		words, pats,
		&Caps{Points: 1}, &Symbols{Points: 1}, &Zalgo{Points: 2},
		&Links{Allow: []string{"example.org"}, Loose: true, Points: 2},
		&Mentions{Points: 3},
		&Flood{Points: 2, Clock: clock}, &Raid{Clock: clock},
		&Repeat{Points: 1, Clock: clock}, &Copypasta{Points: 1, Clock: clock},
	)
}

// chatLines reads the benchmark chat corpus.
func chatLines(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "chat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// benchMessages are the corpus lines as messages from 40 senders.
func benchMessage(lines []string, i int) *Message {
	nick := benchNicks[i%40]
	return &Message{Room: "game@rooms.example", Sender: nick, Nick: nick, Body: lines[i%len(lines)], Occupants: benchOccupants}
}

func benchMessages(lines []string) []*Message {
	out := make([]*Message, len(lines))
	for i := range lines {
		out[i] = benchMessage(lines, i)
	}
	return out
}

// BenchmarkSet is the cost of one message through every detector with a
// 10,000-entry word list, over the chat corpus.
func BenchmarkSet(b *testing.B) {
	set := benchSet(b, 10000)
	msgs := benchMessages(chatLines(b))
	out := make([]Verdict, 0, 16)
	b.ReportAllocs()
	i := 0
	cpu0 := cpuTime()
	for b.Loop() {
		out = set.Check(msgs[i%len(msgs)], out[:0])
		i++
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(i), "cpu-ns/op")
}

// BenchmarkSetPercentiles times each message of the corpus on its own and
// reports the median and the 99th percentile (the timer's own cost, some
// tens of nanoseconds, is included).
func BenchmarkSetPercentiles(b *testing.B) {
	set := benchSet(b, 10000)
	msgs := benchMessages(chatLines(b))
	out := make([]Verdict, 0, 16)
	var durs []time.Duration
	i := 0
	for b.Loop() {
		m := msgs[i%len(msgs)]
		t0 := time.Now()
		out = set.Check(m, out[:0])
		durs = append(durs, time.Since(t0))
		i++
	}
	slices.Sort(durs)
	if len(durs) > 0 {
		b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(durs[len(durs)*99/100].Nanoseconds()), "p99-ns")
	}
}

// BenchmarkWords is the word list alone, normalisation included.
func BenchmarkWords(b *testing.B) {
	norm := normalize.New(normalize.All)
	w, err := NewWords(norm, benchWordList(b, 10000))
	if err != nil {
		b.Fatal(err)
	}
	set := NewSet(norm, w)
	msgs := benchMessages(chatLines(b))
	out := make([]Verdict, 0, 16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		out = set.Check(msgs[i%len(msgs)], out[:0])
		i++
	}
}

// BenchmarkNormalize is the matching copy alone.
func BenchmarkNormalize(b *testing.B) {
	norm := normalize.New(normalize.All)
	lines := chatLines(b)
	var t normalize.Text
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		norm.NormalizeInto(&t, lines[i%len(lines)])
		i++
	}
}

// TestBenchWordList checks the benchmark's list has the size it claims and
// compiles to one automaton.
func TestBenchWordList(t *testing.T) {
	wl := benchWordList(t, 10000)
	if len(wl.Words) != 10000 {
		t.Fatalf("%d entries", len(wl.Words))
	}
	w, err := NewWords(normalize.New(normalize.All), wl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000 entries: %d patterns, %d automaton states, %d byte classes, table %d KiB",
		w.Patterns(), w.auto.states(), w.auto.nclass, len(w.auto.delta)*4/1024)
	set := benchSet(t, 10000)
	hits := 0
	for _, m := range benchMessages(chatLines(t)) {
		hits += len(set.Check(m, nil))
	}
	t.Logf("chat corpus: %d verdicts over %d messages", hits, len(chatLines(t)))
}

// BenchmarkSetLarge is one 64 KiB message, half of it blocked words and
// evasions, through every detector.
func BenchmarkSetLarge(b *testing.B) {
	set := benchSet(b, 10000)
	var sb strings.Builder
	for sb.Len() < 64<<10 {
		sb.WriteString("shit ѕһіt f r e e c o i n s a.b.c.d.e.f.g discord.gg/x ")
		sb.WriteString(strings.Join(chatLines(b)[:20], " "))
	}
	m := &Message{Room: "game@rooms.example", Sender: "big", Nick: "big", Body: sb.String(), Occupants: benchOccupants}
	out := make([]Verdict, 0, 16)
	b.SetBytes(int64(len(m.Body)))
	b.ReportAllocs()
	for b.Loop() {
		out = set.Check(m, out[:0])
	}
}

// BenchmarkSetPerMessage runs the corpus over and over (each pass in a room
// of its own, so no pass sees another's history) and keeps each message's
// fastest time: the percentiles of those minima are the messages' own cost,
// free of the pauses other work on a shared machine adds to single timings.
func BenchmarkSetPerMessage(b *testing.B) {
	set := benchSet(b, 10000)
	lines := chatLines(b)
	rooms := make([][]*Message, 64)
	for r := range rooms {
		rooms[r] = benchMessages(lines)
		for _, m := range rooms[r] {
			m.Room = fmt.Sprintf("game%d@rooms.example", r)
		}
	}
	mins := make([]time.Duration, len(lines))
	for i := range mins {
		mins[i] = time.Hour
	}
	out := make([]Verdict, 0, 16)
	n := 0
	for b.Loop() {
		pass, i := n/len(lines), n%len(lines)
		m := rooms[pass%len(rooms)][i]
		t0 := time.Now()
		out = set.Check(m, out[:0])
		mins[i] = min(mins[i], time.Since(t0))
		n++
	}
	if n < len(lines) {
		return
	}
	sorted := slices.Clone(mins)
	slices.Sort(sorted)
	b.ReportMetric(float64(sorted[len(sorted)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(sorted[len(sorted)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(sorted[len(sorted)-1].Nanoseconds()), "max-ns")
}
