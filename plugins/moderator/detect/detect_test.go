package detect

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/plugins/moderator/normalize"
)

// fakeClock is a settable Clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func check(t *testing.T, d Detector, n *normalize.Normalizer, m *Message) []Verdict {
	t.Helper()
	if n == nil {
		n = normalize.New(normalize.All)
	}
	return NewSet(n, d).Check(m, nil)
}

func msg(sender, body string) *Message {
	return &Message{Room: "r@rooms.example", Sender: sender, Nick: sender, Body: body}
}

func TestAutomatonAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	word := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcab\xff"[r.IntN(6)]
		}
		return b
	}
	for round := 0; round < 200; round++ {
		var pats [][]byte
		for i := 0; i < 1+r.IntN(20); i++ {
			pats = append(pats, word(1+r.IntN(4)))
		}
		a := newAutomaton(pats)
		text := word(r.IntN(40))
		got := map[string]bool{}
		s := int32(0)
		for i, b := range text {
			s = a.delta[s*a.nclass+int32(a.class[b])]
			for o := a.outHead[s]; o >= 0; o = a.outs[o].next {
				got[fmt.Sprint(a.outs[o].pattern, i)] = true
			}
		}
		want := map[string]bool{}
		for id, p := range pats {
			for i := range text {
				if i+1 >= len(p) && bytes.Equal(text[i+1-len(p):i+1], p) {
					want[fmt.Sprint(id, i)] = true
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("patterns %q text %q: automaton found %d matches, naive %d", pats, text, len(got), len(want))
		}
		for k := range want {
			if !got[k] {
				t.Fatalf("patterns %q text %q: automaton missed %s", pats, text, k)
			}
		}
	}
}

func TestWords(t *testing.T) {
	n := normalize.New(normalize.All)
	w, err := NewWords(n,
		WordList{Name: "rude", Points: 3, Words: []string{"ass", "*cunt*", "fuck*", "*hole", "free coins", "god"}, Allow: []string{"scunthorpe"}},
		WordList{Name: "spam", Points: 1, Words: []string{"cheap gold"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text  string
		rules []string
		raw   string
	}{
		{"you ass", []string{"rude"}, "ass"},
		{"a classic", nil, ""},
		{"from Scunthorpe", nil, ""},
		{"scunthorpe cunts", []string{"rude"}, "cunts"},
		{"fucking hell", []string{"rude"}, "fucking"},
		{"motherfucking", nil, ""},
		{"a loophole", []string{"rude"}, "loophole"},
		{"holes", nil, ""},
		{"free   coins!", []string{"rude"}, "free   coins"},
		{"freecoins", []string{"rude"}, "freecoins"},
		{"f r e e c o i n s", []string{"rude"}, "f r e e c o i n s"},
		{"coins free", nil, ""},
		{"good game", nil, ""},
		{"goood", []string{"rude"}, "goood"},
		{"cheap gold and ass", []string{"rude", "spam"}, "ass"},
	}
	for _, tt := range tests {
		vs := check(t, w, n, msg("s", tt.text))
		var rules []string
		for _, v := range vs {
			rules = append(rules, v.Rule)
		}
		if strings.Join(rules, ",") != strings.Join(tt.rules, ",") {
			t.Errorf("%q: rules %v, want %v (%v)", tt.text, rules, tt.rules, vs)
			continue
		}
		if len(vs) > 0 && vs[0].Raw != tt.raw {
			t.Errorf("%q: raw excerpt %q, want %q", tt.text, vs[0].Raw, tt.raw)
		}
	}
}

func TestWordsVerdictExplains(t *testing.T) {
	n := normalize.New(normalize.All)
	w, err := NewWords(n, WordList{Name: "rude", Points: 3, Words: []string{"shit"}})
	if err != nil {
		t.Fatal(err)
	}
	vs := check(t, w, n, msg("s", "oh ѕһ\u200bіt!"))
	if len(vs) != 1 {
		t.Fatalf("verdicts %v", vs)
	}
	v := vs[0]
	if v.Detector != "words" || v.Rule != "rude" || v.Points != 3 || v.Raw != "ѕһ\u200bіt" || v.Norm != "shit" ||
		v.Steps&(normalize.Confusables|normalize.Invisible) != normalize.Confusables|normalize.Invisible {
		t.Errorf("verdict %+v", v)
	}
	s := v.String()
	for _, want := range []string{"words/rude +3", `as "shit"`, "invisible", "confusables", `entry "shit"`} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, lacks %q", s, want)
		}
	}
}

func TestWordsErrors(t *testing.T) {
	_, err := NewWords(normalize.New(normalize.All),
		WordList{Name: "a", Words: []string{"ok", "  ", "\u200b"}},
		WordList{Words: []string{"x"}})
	if !errors.Is(err, ErrEntry) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{`"  "`, `"\u200b"`, "word list 1 has no name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestPatterns(t *testing.T) {
	p, err := NewPatterns(
		Pattern{Name: "vbucks", Expr: `v\W*bucks`, Points: 2},
		Pattern{Name: "rawcaps", Expr: `[A-Z]{5}`, Raw: true, Points: 1},
	)
	if err != nil {
		t.Fatal(err)
	}
	vs := check(t, p, nil, msg("s", "FREE V-ВUCKS"))
	if len(vs) != 1 || vs[0].Rule != "vbucks" || vs[0].Raw != "V-ВUCKS" {
		t.Errorf("verdicts %v", vs)
	}
	vs = check(t, p, nil, msg("s", "HELLO there"))
	if len(vs) != 1 || vs[0].Rule != "rawcaps" || vs[0].Raw != "HELLO" {
		t.Errorf("verdicts %v", vs)
	}

	_, err = NewPatterns(Pattern{Name: "bad", Expr: `a(b`}, Pattern{Name: "backref", Expr: `(a)\1`}, Pattern{Expr: "x"},
		Pattern{Name: "long", Expr: strings.Repeat("a", MaxPatternLen+1)})
	if !errors.Is(err, ErrPattern) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"bad: error parsing regexp", "backref:", "no name", "long: expression longer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestCaps(t *testing.T) {
	occ := NewNickSet("BIGBOSS_XX")
	c := &Caps{Points: 1}
	tests := []struct {
		text string
		hit  bool
	}{
		{"WHY IS EVERYONE SO BAD AT THIS", true},
		{"GG WP", false},
		{"NASA and the FBI said so today", false},
		{"BIGBOSS_XX BIGBOSS_XX hi there all", false},
		{":KEKW: :KEKW: :KEKW: :KEKW: lol", false},
		{"ПОЧЕМУ ВСЕ ТАК ПЛОХО ИГРАЮТ", true},
		{"日本語のテキストです日本語のテキストです", false},
	}
	for _, tt := range tests {
		m := msg("s", tt.text)
		m.Occupants = occ
		vs := check(t, c, nil, m)
		if (len(vs) > 0) != tt.hit {
			t.Errorf("%q: verdicts %v, want hit %v", tt.text, vs, tt.hit)
		}
	}
}

func TestSymbolsAndZalgo(t *testing.T) {
	s := &Symbols{Points: 1}
	for text, hit := range map[string]bool{
		"▓▓▓▓▓▓▓▓░░░░░░░▓▓▓▓▓▓": true,
		"hey... what?!": false,
		"🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥":         false,
		"$$$$ ### @@@@ !!!! %%%": true,
	} {
		if vs := check(t, s, nil, msg("s", text)); (len(vs) > 0) != hit {
			t.Errorf("symbols %q: %v, want hit %v", text, vs, hit)
		}
	}
	z := &Zalgo{Points: 2}
	for text, hit := range map[string]bool{
		"t̷̢̛̗͇̮̥̬̜̀̿̈́̒his":        true,
		"Tiê\u0301ng Việt":          false,
		"بِسْمِ ٱللَّٰهِ":           false,
		"e\u0301\u0301\u0301\u0301": true,
	} {
		if vs := check(t, z, nil, msg("s", text)); (len(vs) > 0) != hit {
			t.Errorf("zalgo %q: %v, want hit %v", text, vs, hit)
		}
	}
}

func TestLinks(t *testing.T) {
	l := &Links{Allow: []string{"example.org", "ＣＲＩＥＲ.example"}, Loose: true, Points: 2, InvitePoints: 4}
	tests := []struct {
		text, rule, raw string
	}{
		{"see https://wiki.example.org/x", "", ""},
		{"at play.example.org now", "", ""},
		{"on crier.example", "", ""},
		{"evil example.org.evil.com", "link", "example.org.evil.com"},
		{"notexample.org", "link", "notexample.org"},
		{"join discord.gg/abc", "invite", "discord.gg/abc"},
		{"discord[.]gg/abc", "invite", "discord[.]gg/abc"},
		{"t.me/x", "invite", "t.me/x"},
		{"ok.so what", "", ""},
		{"it.is fine", "", ""},
		{"mail bob@evil.com", "", ""},
		{"www.evil.it", "link", "www.evil.it"},
		{"scam dot com", "link", "scam dot com"},
		{"version 1.2.3", "", ""},
	}
	for _, tt := range tests {
		vs := check(t, l, nil, msg("s", tt.text))
		switch {
		case tt.rule == "" && len(vs) > 0:
			t.Errorf("%q: unexpected %v", tt.text, vs)
		case tt.rule != "" && (len(vs) != 1 || vs[0].Rule != tt.rule || vs[0].Raw != tt.raw):
			t.Errorf("%q: verdicts %v, want %s %q", tt.text, vs, tt.rule, tt.raw)
		}
	}
	if vs := check(t, l, nil, msg("s", "discord.gg/abc")); len(vs) != 1 || vs[0].Points != 4 {
		t.Errorf("invite points: %v", vs)
	}
	strict := &Links{}
	if vs := check(t, strict, nil, msg("s", "discord[.]gg/abc")); len(vs) != 0 {
		t.Errorf("without Loose, bracketed dots are not links: %v", vs)
	}
	got := FindLinks("a ｅｘａｍｐｌｅ．ｃｏｍ/x b", false)
	if len(got) != 1 || got[0].Host != "example.com" || got[0].Path != "/x" {
		t.Errorf("FindLinks = %+v", got)
	}
}

func TestMentions(t *testing.T) {
	m := &Mentions{Max: 3, Points: 1}
	occ := NewNickSet("Alice", "bob", "carol", "dave", "erin")
	for text, hit := range map[string]bool{
		"alice bob carol dave":        true,
		"@alice, @bob: @Carol! dave?": true,
		"alice alice alice alice":     false,
		"alice bob mallory trent":     false,
	} {
		in := msg("s", text)
		in.Occupants = occ
		if vs := check(t, m, nil, in); (len(vs) > 0) != hit {
			t.Errorf("%q: %v, want hit %v", text, vs, hit)
		}
	}
	if vs := check(t, m, nil, msg("s", "alice bob carol dave")); len(vs) != 0 {
		t.Errorf("no occupants known: %v", vs)
	}
}

func TestFlood(t *testing.T) {
	clk := newFakeClock()
	f := &Flood{Messages: 3, Bytes: 100, Window: 10 * time.Second, Points: 1, Clock: clk.Now}
	set := NewSet(nil, f)
	for i := 0; i < 3; i++ {
		if vs := set.Check(msg("a", "hi"), nil); len(vs) != 0 {
			t.Fatalf("message %d: %v", i+1, vs)
		}
		clk.Advance(time.Second)
	}
	if vs := set.Check(msg("b", "hi"), nil); len(vs) != 0 {
		t.Fatalf("another sender: %v", vs)
	}
	vs := set.Check(msg("a", "hi"), nil)
	if len(vs) != 1 || vs[0].Rule != "messages" {
		t.Fatalf("4th message: %v", vs)
	}
	clk.Advance(11 * time.Second)
	if vs := set.Check(msg("a", "hi"), nil); len(vs) != 0 {
		t.Fatalf("after the window: %v", vs)
	}
	if vs := set.Check(msg("a", strings.Repeat("x", 101)), nil); len(vs) != 1 || vs[0].Rule != "bytes" {
		t.Fatalf("bytes: %v", vs)
	}
}

func TestBoundedMemory(t *testing.T) {
	clk := newFakeClock()
	f := &Flood{MaxSenders: 50, Window: time.Second, Clock: clk.Now}
	set := NewSet(nil, f)
	for i := 0; i < 1000; i++ {
		set.Check(msg(fmt.Sprint("sender", i), "hi"), nil)
	}
	if n := f.Senders(); n != 50 {
		t.Errorf("%d senders kept, want the bound 50", n)
	}
	clk.Advance(2 * time.Second)
	for i := 0; i < 10; i++ {
		set.Check(msg("late", "hi"), nil)
	}
	if n := f.Senders(); n > 50-expireBatch*5+1 {
		t.Errorf("%d senders kept after they went idle, want idle ones expired", n)
	}
}

func TestRaid(t *testing.T) {
	clk := newFakeClock()
	r := &Raid{Messages: 6, Senders: 3, Window: 5 * time.Second, Clock: clk.Now}
	set := NewSet(nil, r)
	// One sender alone is a flood, not a raid.
	for i := 0; i < 10; i++ {
		if vs := set.Check(msg("a", "x"), nil); len(vs) != 0 {
			t.Fatalf("one sender: %v", vs)
		}
	}
	clk.Advance(6 * time.Second)
	var last []Verdict
	for i := 0; i < 6; i++ {
		last = set.Check(msg(fmt.Sprint("s", i%3), "x"), nil)
	}
	if len(last) != 1 || !last[0].Room || last[0].Detector != "raid" {
		t.Fatalf("raid: %v", last)
	}
}

func TestRepeat(t *testing.T) {
	clk := newFakeClock()
	r := &Repeat{Max: 3, Window: time.Minute, Clock: clk.Now, Points: 1}
	n := normalize.New(normalize.All)
	set := NewSet(n, r)
	texts := []string{"buy cheap gold at my shop", "buy cheap gold at my shop\u200b", "buy cheap gold at my shop\U000E0041!!"}
	var vs []Verdict
	for _, s := range texts {
		vs = set.Check(msg("a", s), nil)
	}
	if len(vs) != 1 || vs[0].Detector != "repeat" {
		t.Fatalf("invisible suffixes beat the repeat check: %v", vs)
	}
	near := []string{"join my guild now people 1", "join my guild now people 22", "join my guild now people 333"}
	for _, s := range near {
		vs = set.Check(msg("b", s), nil)
	}
	if len(vs) != 1 {
		t.Fatalf("near-duplicates not caught: %v", vs)
	}
	for _, s := range []string{"gg", "nice", "gg"} {
		vs = set.Check(msg("c", s), nil)
	}
	if len(vs) != 0 {
		t.Fatalf("two gg flagged: %v", vs)
	}
	for _, s := range []string{"the boss is at the harbor", "who has the key for the gate", "anyone up for a raid tonight"} {
		vs = set.Check(msg("d", s), nil)
	}
	if len(vs) != 0 {
		t.Fatalf("different messages flagged: %v", vs)
	}
	clk.Advance(2 * time.Minute)
	if vs = set.Check(msg("a", texts[0]), nil); len(vs) != 0 {
		t.Fatalf("after the window: %v", vs)
	}
}

func TestCopypasta(t *testing.T) {
	clk := newFakeClock()
	c := &Copypasta{Senders: 3, Window: time.Minute, Clock: clk.Now}
	set := NewSet(nil, c)
	pasta := "everyone type F in chat for the fallen"
	var vs []Verdict
	for i, s := range []string{pasta, pasta + " \u200b", "EVERYONE TYPE F IN CHAT FOR THE FALLEN"} {
		vs = set.Check(msg(fmt.Sprint("u", i), s), nil)
	}
	if len(vs) != 1 || vs[0].Detector != "copypasta" {
		t.Fatalf("copypasta: %v", vs)
	}
	// One sender repeating is the repeat detector's business.
	c2 := &Copypasta{Senders: 3, Clock: clk.Now}
	set2 := NewSet(nil, c2)
	for i := 0; i < 5; i++ {
		vs = set2.Check(msg("same", pasta), nil)
	}
	if len(vs) != 0 {
		t.Fatalf("one sender: %v", vs)
	}
}

func TestJoinWave(t *testing.T) {
	clk := newFakeClock()
	j := &JoinWave{Joins: 5, Window: 10 * time.Second, Clock: clk.Now}
	set := NewSet(nil, j)
	reports := 0
	for i := 0; i < 20; i++ {
		reports += len(set.Join("r@rooms.example", fmt.Sprint("u", i), nil))
		clk.Advance(100 * time.Millisecond)
	}
	if reports != 1 {
		t.Fatalf("%d reports for one wave, want 1", reports)
	}
	clk.Advance(time.Minute)
	for i := 0; i < 4; i++ {
		reports += len(set.Join("r@rooms.example", fmt.Sprint("v", i), nil))
		clk.Advance(3 * time.Second)
	}
	if reports != 1 {
		t.Fatalf("slow joins reported as a wave")
	}
}

func TestSetConcurrent(t *testing.T) {
	set := benchSet(t, 1000)
	lines := chatLines(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				m := benchMessage(lines, i+g)
				set.Check(m, nil)
			}
		}()
	}
	wg.Wait()
	vs := set.Check(&Message{Room: "r", Sender: "z", Body: "ѕһіt"}, nil)
	if len(vs) == 0 {
		t.Fatal("no verdict after concurrent use")
	}
}

func FuzzWords(f *testing.F) {
	for _, s := range []string{"", "f r e e c o i n s", "ѕһіt", "\xff\xfe", "goood", "a  b  c"} {
		f.Add(s)
	}
	n := normalize.New(normalize.All)
	w, err := NewWords(n, WordList{Name: "x", Words: []string{"shit", "*cunt*", "free coins", "god", "ab*"}, Allow: []string{"scunthorpe"}})
	if err != nil {
		f.Fatal(err)
	}
	set := NewSet(n, w, &Links{Loose: true})
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range set.Check(msg("s", s), nil) {
			if !strings.Contains(s, v.Raw) {
				t.Fatalf("%q: excerpt %q not in the text", s, v.Raw)
			}
		}
	})
}

func TestPatternPrefilters(t *testing.T) {
	tests := []struct {
		expr, lit string
		raw       bool
		class     bool
	}{
		{`(?:sell|buy)\w* (?:cheap )?gold`, " gold", false, false},
		{`(?i)free\s+nitro`, "nitro", false, false},
		{`(?i)free\s+nitro`, "", true, true},
		{`\+?\d[\d -]{8,}\d`, "", true, true},
		{`a|b`, "", false, true}, // simplified to [ab]
		{`a*`, "", false, false},
	}
	for _, tt := range tests {
		lit := requiredLiteral(tt.expr, tt.raw)
		if lit != tt.lit && !(tt.lit == " gold" && lit == "gold") {
			t.Errorf("requiredLiteral(%q) = %q, want %q", tt.expr, lit, tt.lit)
		}
		if lit == "" && (requiredClass(tt.expr) != nil) != tt.class {
			t.Errorf("requiredClass(%q) = %v", tt.expr, requiredClass(tt.expr))
		}
	}
	// The prefilters must not hide a match.
	p, err := NewPatterns(
		Pattern{Name: "phone", Expr: `\+?\d[\d -]{8,}\d`, Raw: true},
		Pattern{Name: "gold", Expr: `(?:sell|buy)\w* (?:cheap )?gold`},
	)
	if err != nil {
		t.Fatal(err)
	}
	for text, rule := range map[string]string{"call +44 20 7946 0958": "phone", "SELLING cheap ɡоІd": "gold", "nothing here": ""} {
		vs := check(t, p, nil, msg("s", text))
		if rule == "" && len(vs) != 0 || rule != "" && (len(vs) != 1 || vs[0].Rule != rule) {
			t.Errorf("%q: %v, want %q", text, vs, rule)
		}
	}
}

func TestReusedStateStartsEmpty(t *testing.T) {
	clk := newFakeClock()
	f := &Flood{Messages: 2, MaxSenders: 1, Window: time.Minute, Clock: clk.Now}
	set := NewSet(nil, f)
	set.Check(msg("a", "x"), nil)
	set.Check(msg("a", "x"), nil)
	set.Check(msg("b", "x"), nil) // evicts a; its node is reused for b
	set.Check(msg("a", "x"), nil) // evicts b; a starts again
	if vs := set.Check(msg("a", "x"), nil); len(vs) != 0 {
		t.Fatalf("a's evicted history came back: %v", vs)
	}
	if vs := set.Check(msg("a", "x"), nil); len(vs) != 1 {
		t.Fatalf("third message in the window not flagged: %v", vs)
	}
}

func TestWordsWithAnotherNormalizer(t *testing.T) {
	w, err := NewWords(normalize.New(normalize.All), WordList{Name: "x", Words: []string{"shit"}})
	if err != nil {
		t.Fatal(err)
	}
	set := NewSet(normalize.New(normalize.Fold), w)
	if vs := set.Check(msg("s", "ѕһ1t"), nil); len(vs) != 1 {
		t.Fatalf("words compiled for another normaliser: %v", vs)
	}
}

func TestGiganticMessage(t *testing.T) {
	set := benchSet(t, 1000)
	body := strings.Repeat("ѕһіt \u200b", 200000) + strings.Repeat("a", 1<<20) + "\xff"
	vs := set.Check(&Message{Room: "r", Sender: "big", Body: body, Occupants: benchOccupants}, nil)
	found := false
	for _, v := range vs {
		if v.Detector == "words" {
			found = true
			if !strings.Contains(v.Detail, "256 matches") {
				t.Errorf("matches not bounded: %s", v.Detail)
			}
		}
	}
	if !found {
		t.Fatalf("no word verdict on a gigantic message: %v", vs)
	}
}

func TestValidate(t *testing.T) {
	for _, d := range []Detector{&Caps{}, &Flood{Messages: 3}, &Repeat{Similarity: 0.9}, &JoinWave{}, &Links{Allow: []string{"example.org"}}} {
		if err := Validate(d); err != nil {
			t.Errorf("%s: %v", d.Name(), err)
		}
	}
	err := Validate(&Repeat{Similarity: 1.5, Window: -time.Second, History: -1})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"similarity 1.5", "window -1s", "history -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := Validate(&Caps{Ratio: -0.1}); !errors.Is(err, ErrConfig) {
		t.Errorf("negative ratio: %v", err)
	}
}

func TestUnidentifiedSenderNotCounted(t *testing.T) {
	clk := newFakeClock()
	set := NewSet(nil, &Flood{Messages: 1, Clock: clk.Now}, &Repeat{Max: 2, Clock: clk.Now})
	for i := 0; i < 5; i++ {
		if vs := set.Check(&Message{Room: "r", Body: "same text again"}, nil); len(vs) != 0 {
			t.Fatalf("message %d without a sender: %v", i, vs)
		}
	}
}

func TestInfixEntriesAndOtherScripts(t *testing.T) {
	n := normalize.New(normalize.All)
	w, err := NewWords(n, WordList{Name: "x", Words: []string{"*cock*", "*penis*"}})
	if err != nil {
		t.Fatal(err)
	}
	for text, hit := range map[string]bool{
		"лісосклад":   false, // Ukrainian, its skeleton holds "cock"
		"сосksucker":  true,  // Cyrillic and Latin mixed: a disguise
		"соск":        true,  // the whole word looks like the entry
		"penisse":     true,  // a longer run at the infix edge
		"cocktail":    true,
		"Ωmega cocks": true,
	} {
		if vs := check(t, w, n, msg("s", text)); (len(vs) > 0) != hit {
			t.Errorf("%q: %v, want hit %v", text, vs, hit)
		}
	}
}

func TestLinkPrefilter(t *testing.T) {
	for s, want := range map[string]bool{
		"hello there":        false,
		"Привет всем":        false,
		"みんな、がんばって":          false,
		"see example.com":    true,
		"ｅｘａｍｐｌｅ．ｃｏｍ":        true,
		"scam d\u200bot com": true,
		"scam dot com":       true,
		"a…b":                true,
	} {
		if got := mayHoldLink(s, true); got != want {
			t.Errorf("mayHoldLink(%q) = %v, want %v", s, got, want)
		}
	}
	l := &Links{Loose: true}
	if vs := check(t, l, nil, msg("s", "scam d\u200bot com")); len(vs) != 1 {
		t.Errorf("a dot split by a zero-width space: %v", vs)
	}
}
