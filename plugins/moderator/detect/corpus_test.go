package detect

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"crier/plugins/moderator/normalize"
)

// The regression corpus floors: every known false positive must stay quiet,
// and at least this share of the known evasions must be caught.
const (
	corpusEvasionFloor = 0.95
)

type corpusLine struct {
	line     int
	detector string
	text     string
}

// readCorpus reads a corpus file: "#" comments, blank lines skipped; with
// tagged set, each line is "detector<TAB>text". A text in double quotes is a
// Go string literal.
func readCorpus(t *testing.T, name string, tagged bool) []corpusLine {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "corpus", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cl := corpusLine{line: n, text: line}
		if tagged {
			det, text, ok := strings.Cut(line, "\t")
			if !ok {
				t.Fatalf("%s:%d: want detector<TAB>text", name, n)
			}
			cl.detector, cl.text = det, text
		}
		if strings.HasPrefix(cl.text, `"`) {
			s, err := strconv.Unquote(cl.text)
			if err != nil {
				t.Fatalf("%s:%d: %v", name, n, err)
			}
			cl.text = s
		}
		out = append(out, cl)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: empty corpus", name)
	}
	return out
}

// readWordList reads testdata/corpus/blocklist.txt ("+" lines are allow
// entries).
func readWordList(t *testing.T) WordList {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "corpus", "blocklist.txt"))
	if err != nil {
		t.Fatal(err)
	}
	wl := WordList{Name: "corpus", Points: 5}
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
	return wl
}

var corpusOccupants = NewNickSet("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")

// corpusSet builds the stateless detectors the corpus runs through.
func corpusSet(t *testing.T, steps normalize.Step) *Set {
	t.Helper()
	n := normalize.New(steps)
	words, err := NewWords(n, readWordList(t))
	if err != nil {
		t.Fatal(err)
	}
	pats, err := NewPatterns(Pattern{Name: "vbucks", Expr: `v\W*bucks`, Points: 3})
	if err != nil {
		t.Fatal(err)
	}
	return NewSet(n,
		words, pats,
		&Caps{Points: 1}, &Symbols{Points: 1}, &Zalgo{Points: 2},
		&Links{Allow: []string{"example.org", "crier.example"}, Loose: steps&normalize.Loose != 0, Points: 2},
		&Mentions{Points: 3},
	)
}

func corpusMessage(text string) *Message {
	return &Message{Room: "game@rooms.example", Sender: "s", Nick: "s", Body: text, Occupants: corpusOccupants}
}

// TestCorpus runs the regression corpus and prints its score (go test -v).
func TestCorpus(t *testing.T) {
	evasions := readCorpus(t, "evasions.txt", true)
	innocents := readCorpus(t, "innocent.txt", false)
	set := corpusSet(t, normalize.All)

	caught := 0
	for _, e := range evasions {
		vs := set.Check(corpusMessage(e.text), nil)
		hit := false
		for _, v := range vs {
			hit = hit || v.Detector == e.detector
		}
		if hit {
			caught++
			continue
		}
		t.Logf("evasions.txt:%d: missed by %s: %q (verdicts %v)", e.line, e.detector, e.text, vs)
	}
	falsePositives := 0
	for _, in := range innocents {
		vs := set.Check(corpusMessage(in.text), nil)
		if len(vs) > 0 {
			falsePositives++
			t.Errorf("innocent.txt:%d: false positive on %q: %v", in.line, in.text, vs)
		}
	}
	score := float64(caught) / float64(len(evasions))
	t.Logf("corpus: evasions caught %d/%d (%.1f%%), false positives %d/%d",
		caught, len(evasions), 100*score, falsePositives, len(innocents))
	if score < corpusEvasionFloor {
		t.Errorf("evasions caught %.1f%%, below the floor of %.0f%%", 100*score, 100*corpusEvasionFloor)
	}

	// The same word-list evasions against case folding alone, to show the
	// corpus tests the normaliser and not the list.
	plain := corpusSet(t, normalize.Fold)
	plainCaught, wordEvasions := 0, 0
	for _, e := range evasions {
		if e.detector != "words" {
			continue
		}
		wordEvasions++
		for _, v := range plain.Check(corpusMessage(e.text), nil) {
			if v.Detector == "words" {
				plainCaught++
				break
			}
		}
	}
	t.Logf("corpus: case folding alone catches %d/%d of the word-list evasions", plainCaught, wordEvasions)
	if plainCaught*2 > wordEvasions {
		t.Errorf("case folding alone catches %d/%d word-list evasions: the corpus is too easy", plainCaught, wordEvasions)
	}
}

// TestCorpusAllowListMatters checks that the innocent Scunthorpe lines pass
// because of the allow entries, not by luck.
func TestCorpusAllowListMatters(t *testing.T) {
	wl := readWordList(t)
	wl.Allow = nil
	n := normalize.New(normalize.All)
	w, err := NewWords(n, wl)
	if err != nil {
		t.Fatal(err)
	}
	set := NewSet(n, w)
	for _, text := range []string{"I grew up in Scunthorpe, near Penistone.", "who wants a cocktail after the raid?", "Dick Grayson is Nightwing"} {
		if vs := set.Check(corpusMessage(text), nil); len(vs) == 0 {
			t.Errorf("%q: no verdict without the allow entries; the corpus line tests nothing", text)
		}
	}
}
