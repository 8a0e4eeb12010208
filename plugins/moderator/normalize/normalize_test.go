package normalize

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestSteps(t *testing.T) {
	tests := []struct {
		steps     Step
		in, want  string
		wantSteps Step
	}{
		{NFKC, "ＦＲＥＥ", "FREE", NFKC},
		{NFKC, "𝐟𝐫𝐞𝐞 ⓒⓞⓘⓝⓢ", "free coins", NFKC},
		{NFKC, "plain", "plain", 0},
		{Invisible, "sh\u200bit", "shit", Invisible},
		{Invisible, "shit\U000E0020\U000E0041", "shit", Invisible},
		{Invisible, "fu\u3164ck \u2800", "fuck ", Invisible},
		{Invisible, "f\u200cu\u200dck", "fuck", Invisible},
		{Invisible, "می\u200cخواهم", "می\u200cخواهم", 0},
		{Invisible, "क्\u200dष", "क्\u200dष", 0},
		{Marks, "fúck šhít", "fuck shit", Marks},
		{Marks, "z̸̢̛a̶", "za", Marks},
		{Confusables, "ѕһіt", "shit", Confusables},
		{Confusables, "ΒΙΤCΗ", "bitch", Confusables | Fold},
		{Confusables, "man", "rnan", Confusables},
		{Confusables, "Ill", "iii", Confusables},
		{Confusables, "2024", "2024", 0},
		{Confusables, "k1ll", "kiii", Confusables},
		{Confusables, "ꜰᴜᴄᴋ", "fuck", Confusables},
		{Confusables, "100%", "100%", 0},
		{Fold, "HeLLo ß", "hello ss", Fold},
		{Leet, "sh1t a$$ $100 wow!", "shit ass $100 wow!", Leet},
		{Leet, "2024", "2024", 0},
		{Runs, "fuuuuuck", "fuck", Runs},
		{Loose, "f r e e c o i n s", "freecoins", Loose},
		{Loose, "f.r.e.e", "free", Loose},
		{Loose, "it's hit", "it's hit", 0},
		{Loose, "a b\nc d", "a b\nc d", 0},
		{0, "ＦＲＥＥ", "ＦＲＥＥ", 0},
	}
	for _, tt := range tests {
		got := New(tt.steps).Normalize(tt.in)
		if got.String() != tt.want || got.Steps() != tt.wantSteps {
			t.Errorf("New(%v).Normalize(%q) = %q (%v), want %q (%v)", tt.steps, tt.in, got.String(), got.Steps(), tt.want, tt.wantSteps)
		}
	}
}

func TestRunsKeepCounts(t *testing.T) {
	x := New(Runs).Normalize("gooood good god")
	if x.String() != "god god god" {
		t.Fatalf("got %q", x.String())
	}
	var runs []int
	for i := 0; i < x.Len(); i++ {
		runs = append(runs, x.Run(i))
	}
	want := []int{1, 4, 1, 1, 1, 2, 1, 1, 1, 1, 1}
	if len(runs) != len(want) {
		t.Fatalf("runs %v, want %v", runs, want)
	}
	for i := range want {
		if runs[i] != want[i] {
			t.Fatalf("runs %v, want %v", runs, want)
		}
	}
}

func TestSpanMapsBack(t *testing.T) {
	n := New(All)
	tests := []struct {
		in, norm, raw string
		steps         Step
	}{
		{"oh ѕһіt happens", "shit", "ѕһіt", Confusables},
		{"ok sh\u200bit", "shit", "sh\u200bit", Invisible},
		{"ＦＵＣＫ you", "fuck", "ＦＵＣＫ", NFKC | Fold},
		{"so f r e e c o i n s", "frecoins", "f r e e c o i n s", Loose | Runs},
		{"fuuuuck!", "fuck", "fuuuuck", Runs},
		{"a f̸̢̛u̶c̷k̴ b", "fuck", "f̸̢̛u̶c̷k̴", Marks},
	}
	for _, tt := range tests {
		x := n.Normalize(tt.in)
		i := strings.Index(x.String(), tt.norm)
		if i < 0 {
			t.Errorf("%q: normalised %q has no %q", tt.in, x.String(), tt.norm)
			continue
		}
		sp := x.ByteSpan(i, i+len(tt.norm))
		if sp.Raw != tt.raw || sp.Norm != tt.norm || sp.Steps&tt.steps != tt.steps {
			t.Errorf("%q: span %+v, want raw %q, steps including %v", tt.in, sp, tt.raw, tt.steps)
		}
		if tt.in[sp.Start:sp.End] != sp.Raw {
			t.Errorf("%q: Start/End %d/%d do not give Raw %q", tt.in, sp.Start, sp.End, sp.Raw)
		}
	}
}

func TestWordEdges(t *testing.T) {
	x := New(All).Normalize("x f r e e y")
	// "f r e e" and its neighbours are joined: "xfrey" with every letter an
	// edge, since each was a word of its own.
	if x.String() != "xfrey" {
		t.Fatalf("got %q", x.String())
	}
	for i := 0; i < x.Len(); i++ {
		if !x.WordStart(i) || !x.WordEnd(i+1) {
			t.Errorf("character %d of %q is not a word edge", i, x.String())
		}
	}
	y := New(All).Normalize("classic")
	if y.WordStart(2) || y.WordEnd(4) || !y.WordStart(0) || !y.WordEnd(y.Len()) {
		t.Errorf("word edges inside %q are wrong", y.String())
	}
}

func TestZalgoStatistics(t *testing.T) {
	tests := []struct {
		in       string
		max, all int
	}{
		{"plain text", 0, 0},
		{"é", 0, 0}, // precomposed
		{"e\u0301", 1, 1},
		{"Tie\u0302\u0301ng", 2, 2}, // Vietnamese, decomposed
		{"x\u0338\u0322\u031b\u0317\u0347", 5, 5},
		{"بِسْمِ ٱللَّٰهِ", 3, 7},
	}
	for _, tt := range tests {
		x := New(Default).Normalize(tt.in)
		if x.MaxMarks != tt.max || x.Marks != tt.all {
			t.Errorf("%q: MaxMarks %d, Marks %d, want %d, %d", tt.in, x.MaxMarks, x.Marks, tt.max, tt.all)
		}
	}
}

func TestParseSteps(t *testing.T) {
	s, err := ParseSteps([]string{"nfkc", " Fold ", "leet"})
	if err != nil || s != NFKC|Fold|Leet {
		t.Fatalf("ParseSteps = %v, %v", s, err)
	}
	if s.String() != "nfkc+leet+fold" {
		t.Errorf("String = %q", s.String())
	}
	if d, _ := ParseSteps([]string{"default"}); d != Default {
		t.Errorf("default = %v", d)
	}
	if _, err := ParseSteps([]string{"nfkc", "soundex"}); !errors.Is(err, ErrUnknownStep) || !strings.Contains(err.Error(), "soundex") {
		t.Errorf("unknown step error = %v", err)
	}
	if Step(0).String() != "none" {
		t.Errorf("empty set prints %q", Step(0).String())
	}
}

func TestInvalidUTF8(t *testing.T) {
	x := New(All).Normalize("ok \xff\xfe sh\xc3it")
	if !utf8.Valid(x.Bytes()) {
		t.Fatalf("normalised text is not UTF-8: %q", x.Bytes())
	}
	if !strings.Contains(x.String(), "\ufffd") {
		t.Errorf("invalid bytes vanished: %q", x.String())
	}
}

// TestTableMatchesData re-reads confusables.txt and checks the generated
// table: every mapping is there in NFD, so a stale table fails.
func TestTableMatchesData(t *testing.T) {
	f, err := os.Open("data/confusables.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	entries := 0
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Split(line, ";")
		if len(fields) < 3 {
			continue
		}
		src := parseHex(t, fields[0])
		dst := norm.NFD.String(string(parseHexes(t, fields[1])))
		entries++
		got, ok := skeletonOf(src[0])
		if src[0] < 0x80 && src[0] != '|' && !isWord(src[0]) {
			if ok {
				t.Errorf("U+%04X: ASCII punctuation mapping should be left out", src[0])
			}
			continue
		}
		if !ok || got != dst {
			t.Errorf("U+%04X: table gives %q (%v), data %q", src[0], got, ok, dst)
		}
	}
	if entries != len(confusableKeys) {
		t.Errorf("data has %d entries, table %d", entries, len(confusableKeys))
	}
	if ConfusablesVersion != "15.0.0" {
		t.Errorf("ConfusablesVersion = %q", ConfusablesVersion)
	}
}

func parseHex(t *testing.T, s string) []rune { t.Helper(); return parseHexes(t, s) }

func parseHexes(t *testing.T, s string) []rune {
	t.Helper()
	var out []rune
	for _, f := range strings.Fields(s) {
		v, err := strconv.ParseUint(f, 16, 32)
		if err != nil {
			t.Fatalf("bad code point %q", f)
		}
		out = append(out, rune(v))
	}
	return out
}

func TestConcurrentUse(t *testing.T) {
	n := New(All)
	done := make(chan string, 8)
	for g := 0; g < 8; g++ {
		go func() {
			var x Text
			s := ""
			for i := 0; i < 200; i++ {
				n.NormalizeInto(&x, "ѕһіt ＦＲＥＥ fúck Привет")
				s = x.String()
			}
			done <- s
		}()
	}
	for g := 0; g < 8; g++ {
		if s := <-done; s != "shit fre fuck πpnbet" {
			t.Errorf("got %q", s)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"", "ѕһіt", "f r e e", "\xff", "z̸̢̛a̶", "می\u200cخواهم", "ß İ ﬀ", "a$$ 1000 !!!"} {
		f.Add(s)
	}
	n := New(All)
	f.Fuzz(func(t *testing.T, s string) {
		x := n.Normalize(s)
		if !utf8.Valid(x.Bytes()) {
			t.Fatalf("%q: output not UTF-8", s)
		}
		if x.Offset(x.Len()) != len(x.Bytes()) {
			t.Fatalf("%q: offsets end at %d, text is %d bytes", s, x.Offset(x.Len()), len(x.Bytes()))
		}
		for i := 0; i < x.Len(); i++ {
			sp := x.Span(i, i+1)
			if sp.Start < 0 || sp.End > len(s) || sp.Start > sp.End || s[sp.Start:sp.End] != sp.Raw {
				t.Fatalf("%q: bad span %+v for character %d", s, sp, i)
			}
			if x.Char(x.Offset(i)) != i {
				t.Fatalf("%q: Char(Offset(%d)) = %d", s, i, x.Char(x.Offset(i)))
			}
		}
	})
}

func TestHomoglyphs(t *testing.T) {
	n := New(NFKC | Invisible | Marks | Homoglyphs | Fold)
	tests := map[string]string{
		"gold":          "gold", // ASCII stays as written
		"mill":          "mill",
		"ɡоІd":          "gold", // Latin script g, Cyrillic o and capital I
		"ᴋᴇʏ":           "key",
		"Привет":        "пpnbet", // п has no ASCII look-alike
		"日本":            "日本",
		"می\u200cخواهم": "می\u200cخواهم",
	}
	for in, want := range tests {
		if got := n.String(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}
