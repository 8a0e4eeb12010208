package detect

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"crier/plugins/moderator/normalize"
)

// WordList is one list of blocked words and phrases.
//
// An entry matches whole words by default: "ass" matches "ass" and "a s s"
// but not "class". A "*" at the start lets the match begin inside a word, one
// at the end lets it end inside one: "*coin*" matches "bitcoins". Phrases
// ("free coins") match across any separators, and with the Loose step also
// written together ("freecoins"). Allow entries use the same syntax; a
// blocked match inside an allowed one ("*cunt*" in "Scunthorpe") does not
// count. Entries and text go through the same normaliser, so an entry is
// written plainly. A match inside a word written wholly in one script other
// than Latin does not count either: "лісосклад" is Ukrainian, though its
// skeleton holds "cock"; a word that mixes scripts is a disguise and counts.
type WordList struct {
	// Name names the list in verdicts.
	Name string
	// Points is the weight of a match.
	Points int
	// Words are the blocked entries.
	Words []string
	// Allow are the entries that excuse a blocked match they contain.
	Allow []string
}

// Words matches word lists on the matching copy of messages, all lists in
// one automaton pass.
type Words struct {
	norm     *normalize.Normalizer
	lists    []WordList
	patterns []wordPattern
	auto     *automaton
	pool     sync.Pool
}

type wordPattern struct {
	list  int32
	allow bool
	// midStart and midEnd allow the match to start or end inside a word.
	midStart, midEnd bool
	// elems has one entry per element of the pattern: the run length of a
	// character, or 0 for a separator.
	elems []int32
	entry string
}

type wordMatch struct {
	pattern    int32
	start, end int32 // normalised characters
}

type wordScratch struct {
	syms    []int32
	matches []wordMatch
	text    normalize.Text
}

// NewWords compiles the lists with normaliser n. Give the Set the same
// normaliser: texts from another one are normalised again. Every bad entry
// is reported, each error wrapping ErrEntry.
func NewWords(n *normalize.Normalizer, lists ...WordList) (*Words, error) {
	w := &Words{norm: n, lists: lists}
	var (
		bytesOf [][]byte
		errs    []error
	)
	add := func(li int, entry string, allow bool) {
		core := strings.TrimSpace(entry)
		p := wordPattern{list: int32(li), allow: allow, entry: entry}
		if c, ok := strings.CutPrefix(core, "*"); ok {
			p.midStart, core = true, c
		}
		if c, ok := strings.CutSuffix(core, "*"); ok {
			p.midEnd, core = true, c
		}
		t := n.Normalize(core)
		var b []byte
		for i := 0; i < t.Len(); i++ {
			if !t.IsWordChar(i) {
				if len(b) > 0 && b[len(b)-1] != sepByte {
					b = append(b, sepByte)
					p.elems = append(p.elems, 0)
				}
				continue
			}
			b = utf8.AppendRune(b, t.Rune(i))
			p.elems = append(p.elems, int32(t.Run(i)))
		}
		if len(b) > 0 && b[len(b)-1] == sepByte {
			b = b[:len(b)-1]
			p.elems = p.elems[:len(p.elems)-1]
		}
		if len(b) == 0 {
			errs = append(errs, fmt.Errorf("%w: list %q: %q has no letters after normalisation", ErrEntry, lists[li].Name, entry))
			return
		}
		w.patterns = append(w.patterns, p)
		bytesOf = append(bytesOf, b)
		if n.Steps()&normalize.Loose == 0 || !containsByte(b, sepByte) {
			return
		}
		// The Loose step joins spaced-out letters into one word, so a phrase
		// also matches written together.
		q := p
		q.elems = nil
		var jb []byte
		var last rune = -1
		for i := 0; i < t.Len(); i++ {
			if !t.IsWordChar(i) {
				continue
			}
			r := t.Rune(i)
			if r == last && n.Steps()&normalize.Runs != 0 {
				q.elems[len(q.elems)-1] += int32(t.Run(i))
				continue
			}
			jb = utf8.AppendRune(jb, r)
			q.elems = append(q.elems, int32(t.Run(i)))
			last = r
		}
		w.patterns = append(w.patterns, q)
		bytesOf = append(bytesOf, jb)
	}
	for li, l := range lists {
		if l.Name == "" {
			errs = append(errs, fmt.Errorf("%w: word list %d has no name", ErrEntry, li))
		}
		for _, e := range l.Words {
			add(li, e, false)
		}
		for _, e := range l.Allow {
			add(li, e, true)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	w.auto = newAutomaton(bytesOf)
	w.pool.New = func() any { return new(wordScratch) }
	return w, nil
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// Name implements Detector.
func (w *Words) Name() string { return "words" }

// Patterns returns how many patterns the automaton holds (entries, allow
// entries and the joined forms of phrases).
func (w *Words) Patterns() int { return len(w.patterns) }

// Check implements Detector: one verdict per list with a match that no
// allow entry excuses.
func (w *Words) Check(in *Input, out []Verdict) []Verdict {
	sc := w.pool.Get().(*wordScratch)
	defer w.pool.Put(sc)
	t := in.Text
	if in.norm != w.norm {
		// The set normalises differently: make the copy these entries
		// were compiled for.
		w.norm.NormalizeInto(&sc.text, in.Msg.Body)
		t = &sc.text
	}
	if t.Len() == 0 {
		return out
	}
	sc.matches = w.scan(t, sc.syms[:0], sc.matches[:0], sc)
	if len(sc.matches) == 0 {
		return out
	}
	for li := range w.lists {
		first, count := -1, 0
		for mi, m := range sc.matches {
			p := &w.patterns[m.pattern]
			if int(p.list) != li || p.allow || w.excused(sc.matches, m) {
				continue
			}
			if first < 0 {
				first = mi
			}
			count++
		}
		if first < 0 {
			continue
		}
		m := sc.matches[first]
		// Show the whole word a prefix or infix entry matched in.
		start, end := int(m.start), int(m.end)
		for start > 0 && !t.WordStart(start) {
			start--
		}
		for end < t.Len() && !t.WordEnd(end) {
			end++
		}
		sp := t.Span(start, end)
		detail := fmt.Sprintf("entry %q", w.patterns[m.pattern].entry)
		if count > 1 {
			detail += fmt.Sprintf(" (%d matches)", count)
		}
		out = append(out, Verdict{
			Detector: "words", Rule: w.lists[li].Name, Points: w.lists[li].Points,
			Raw: sp.Raw, Norm: sp.Norm, Steps: sp.Steps, Detail: detail,
		})
	}
	return out
}

// excused reports whether an allow entry of m's list covers m.
func (w *Words) excused(matches []wordMatch, m wordMatch) bool {
	list := w.patterns[m.pattern].list
	for _, a := range matches {
		p := &w.patterns[a.pattern]
		if p.allow && p.list == list && a.start <= m.start && a.end >= m.end {
			return true
		}
	}
	return false
}

// scan runs the automaton over the normalised text and keeps the matches
// that pass the word-boundary and run-length checks.
func (w *Words) scan(t *normalize.Text, syms []int32, matches []wordMatch, sc *wordScratch) []wordMatch {
	a := w.auto
	nb := t.Bytes()
	nc := a.nclass
	state := int32(0)
	prevSep := true
	for u := 0; u < t.Len(); u++ {
		if !t.IsWordChar(u) {
			if prevSep {
				continue
			}
			prevSep = true
			state = a.delta[state*nc+int32(a.class[sepByte])]
			syms = append(syms, int32(u))
			if a.outHead[state] >= 0 {
				matches = w.report(t, state, syms, matches)
			}
			continue
		}
		prevSep = false
		for _, b := range nb[t.Offset(u):t.Offset(u+1)] {
			state = a.delta[state*nc+int32(a.class[b])]
			syms = append(syms, int32(u))
		}
		if a.outHead[state] >= 0 {
			matches = w.report(t, state, syms, matches)
		}
	}
	sc.syms = syms
	return matches
}

// report checks each pattern that ends at the current position.
func (w *Words) report(t *normalize.Text, state int32, syms []int32, matches []wordMatch) []wordMatch {
	a := w.auto
	for o := a.outHead[state]; o >= 0; o = a.outs[o].next {
		id := a.outs[o].pattern
		p := &w.patterns[id]
		startSym := len(syms) - int(a.lens[id])
		if startSym < 0 {
			continue
		}
		start := int(syms[startSym])
		end, ok := runsMatch(t, start, p.elems, p.midStart, p.midEnd)
		if !ok {
			continue
		}
		atStart, atEnd := t.WordStart(start), t.WordEnd(end)
		if !p.midStart && !atStart || !p.midEnd && !atEnd {
			continue
		}
		if (!atStart || !atEnd) && foreignWord(t, start, end) {
			continue
		}
		if len(matches) >= maxMatches {
			return matches
		}
		matches = append(matches, wordMatch{pattern: id, start: int32(start), end: int32(end)})
	}
	return matches
}

// maxMatches bounds the matches kept for one text, so a gigantic message
// full of matches costs no more than a long one.
const maxMatches = 256

// runsMatch walks the pattern's elements from character start and checks
// the run lengths: a run in the text matches one of the same length, and a
// run of three or more (a stretched letter) matches any shorter one, so
// "goood" matches "god" and "good" but "good" does not match "god". It
// returns the end of the match.
//
// Where the match may begin or end inside a word (midStart, midEnd), the
// run at that edge may be longer than the entry's: the rest belongs to the
// word around it ("*penis*" in "penisse").
func runsMatch(t *normalize.Text, start int, elems []int32, midStart, midEnd bool) (int, bool) {
	i := start
	for k, e := range elems {
		if e == 0 {
			for i < t.Len() && !t.IsWordChar(i) {
				i++
			}
			continue
		}
		if i >= t.Len() {
			return i, false
		}
		r := int32(t.Run(i))
		edge := k == 0 && midStart || k == len(elems)-1 && midEnd
		if r != e && (r < 3 || r < e) && !(edge && r > e) {
			return i, false
		}
		i++
	}
	return i, true
}

// foreignWord reports whether the word around the match [start, end) was
// written in one script other than Latin: a Cyrillic word whose skeleton
// happens to contain "cock" ("лісосклад") is a word of its own language,
// not a disguise, so entries matching inside words leave it alone. A word
// that mixes scripts ("сосksucker") is a disguise and still counts.
func foreignWord(t *normalize.Text, start, end int) bool {
	for start > 0 && !t.WordStart(start) {
		start--
	}
	for end < t.Len() && !t.WordEnd(end) {
		end++
	}
	var script *unicode.RangeTable
	for _, r := range t.Span(start, end).Raw {
		if !unicode.IsLetter(r) {
			continue
		}
		if r < 0x80 || unicode.In(r, unicode.Latin, unicode.Common, unicode.Inherited) {
			return false
		}
		if script == nil {
			script = scriptOf(r)
			if script == nil {
				return false
			}
		}
		if !unicode.Is(script, r) {
			return false
		}
	}
	return script != nil
}

// foreignScripts are the scripts foreignWord tells apart.
var foreignScripts = []*unicode.RangeTable{
	unicode.Cyrillic, unicode.Greek, unicode.Armenian, unicode.Georgian, unicode.Cherokee,
	unicode.Arabic, unicode.Hebrew, unicode.Devanagari, unicode.Han, unicode.Hiragana,
	unicode.Katakana, unicode.Hangul, unicode.Thai,
}

func scriptOf(r rune) *unicode.RangeTable {
	for _, s := range foreignScripts {
		if unicode.Is(s, r) {
			return s
		}
	}
	return nil
}
