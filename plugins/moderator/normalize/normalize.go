package normalize

import (
	"slices"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// unit is one character of the normalised text with the stretch of the
// original it came from.
type unit struct {
	r rune
	// src0 and src1 are the byte range in the original text.
	src0, src1 int32
	// run is how many equal characters the Runs step collapsed into this one.
	run int32
	// steps are the steps that changed this character or removed something
	// next to it.
	steps Step
	// flags hold per-character facts (flagLettered, flagEdge).
	flags uint8
}

const (
	// flagLettered marks a character in a word that has at least one
	// letter: only there do Leet and the digit skeletons apply.
	flagLettered uint8 = 1 << iota
	// flagEdge marks a character of a word the Loose step joined: a word
	// may start before it and end after it.
	flagEdge
	// flagDrop marks a separator the Loose step removes.
	flagDrop
	// flagWord caches isWord of the character.
	flagWord
)

// word reports whether the unit's character belongs to a word.
func (u *unit) word() bool { return u.flags&flagWord != 0 }

// wordFlag returns flagWord for a character that belongs to a word.
func wordFlag(r rune) uint8 {
	if isWord(r) {
		return flagWord
	}
	return 0
}

// expansion is what Leet-free per-character steps make of one character.
type expansion struct {
	out   string
	steps Step
	same  bool
}

// Normalizer makes matching copies of texts. It is safe for concurrent use.
type Normalizer struct {
	steps Step
	ascii [2][128]expansion
	pool  sync.Pool
}

// scratch is per-call state: the case folder is stateful, and the cache of
// non-ASCII expansions saves the decomposition and table look-ups.
type scratch struct {
	fold  cases.Caser
	cache *[cacheSize]cacheSlot
	buf   []unit
	tmp   [64]byte
	tmp2  [64]byte
	rs    []rune
	toks  []span
}

// span is a range of units.
type span struct{ start, end int }

// cacheSize is the number of slots of the per-scratch cache of non-ASCII
// characters: direct-mapped, a new character takes its slot over.
const cacheSize = 1024

// cacheSlot holds one cached expansion; key is the character (with the
// lettered bit) plus one, so the zero slot is empty.
type cacheSlot struct {
	key uint32
	e   expansion
}

// New returns a Normalizer that applies the given steps.
func New(steps Step) *Normalizer {
	n := &Normalizer{steps: steps}
	n.pool.New = func() any {
		return &scratch{fold: cases.Fold(), cache: new([cacheSize]cacheSlot)}
	}
	sc := n.pool.Get().(*scratch)
	for l := 0; l < 2; l++ {
		for r := rune(0); r < 128; r++ {
			n.ascii[l][r] = n.compute(sc, r, l == 1)
		}
	}
	n.pool.Put(sc)
	return n
}

// Steps returns the steps n applies.
func (n *Normalizer) Steps() Step { return n.steps }

// Normalize returns the matching copy of s.
func (n *Normalizer) Normalize(s string) *Text {
	t := new(Text)
	n.NormalizeInto(t, s)
	return t
}

// String returns only the normalised text of s.
func (n *Normalizer) String(s string) string {
	var t Text
	n.NormalizeInto(&t, s)
	return string(t.norm)
}

// NormalizeInto normalises s into t, reusing t's buffers; what t held before
// is gone.
func (n *Normalizer) NormalizeInto(t *Text, s string) {
	t.reset(s)
	sc := n.pool.Get().(*scratch)
	defer n.pool.Put(sc)

	units := n.decode(t, s, t.units[:0])
	if n.steps&Invisible != 0 && !t.ascii {
		units = n.dropInvisible(t, units)
	}
	if n.steps&Loose != 0 {
		// Before Leet: the joined word "F r e e c 0 i n s" has letters, so
		// its "0" is read as a letter too.
		units = sc.loosen(units)
	}
	if n.steps&(Leet|Confusables) != 0 {
		markLettered(units, n.steps&Leet != 0)
	}
	if n.steps&Leet != 0 {
		for i := range units {
			u := &units[i]
			if u.flags&flagLettered == 0 {
				continue
			}
			if (u.r == '!' || u.r == '+') && (i+1 == len(units) || !units[i+1].word()) {
				// "wow!" and "c++": punctuation, not a letter in disguise.
				continue
			}
			if r, ok := leet(u.r); ok {
				u.r = r
				u.steps |= Leet
				u.flags |= flagWord
			}
		}
	}
	var newWords bool
	sc.buf, newWords = n.expand(sc, units, sc.buf[:0])
	units, sc.buf = sc.buf, units
	if n.steps&Loose != 0 && newWords {
		// Again, for what only became letters now (enclosed letters and
		// regional indicators written "🇫 🇺 🇨 🇰").
		units = sc.loosen(units)
	}
	// Collapse runs and write the text in one pass.
	runs := n.steps&Runs != 0
	out := units[:0]
	off := int32(0)
	for _, u := range units {
		if runs && len(out) > 0 {
			last := &out[len(out)-1]
			if u.r == last.r && (u.flags&flagEdge) == (last.flags&flagEdge) {
				last.run += u.run
				last.src1 = u.src1
				last.steps |= u.steps | Runs
				t.steps |= last.steps
				continue
			}
		}
		out = append(out, u)
		t.steps |= u.steps
		t.offsets = append(t.offsets, off)
		if u.r < utf8.RuneSelf {
			t.norm = append(t.norm, byte(u.r))
			off++
		} else {
			t.norm = utf8.AppendRune(t.norm, u.r)
			off = int32(len(t.norm))
		}
	}
	t.offsets = append(t.offsets, off)
	t.units = out
}

// decode splits s into characters, applying NFKC per normalisation segment
// so each output character keeps the range of the original it came from. It
// also counts the combining marks of the original for the zalgo statistics.
func (n *Normalizer) decode(t *Text, s string, units []unit) []unit {
	t.ascii = true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			t.ascii = false
			break
		}
	}
	if t.ascii {
		// ASCII is its own NFKC and holds no marks.
		units = slices.Grow(units, len(s))
		for i := 0; i < len(s); i++ {
			units = append(units, unit{r: rune(s[i]), src0: int32(i), src1: int32(i + 1), run: 1, flags: wordFlag(rune(s[i]))})
		}
		return units
	}
	for _, r := range s {
		t.count(r)
	}
	quick := len(s)
	if n.steps&NFKC != 0 {
		quick = norm.NFKC.QuickSpanString(s)
	}
	for i := 0; i < quick; {
		r, size := utf8.DecodeRuneInString(s[i:])
		units = append(units, unit{r: r, src0: int32(i), src1: int32(i + size), run: 1, flags: wordFlag(r)})
		i += size
	}
	if quick == len(s) {
		return units
	}
	var it norm.Iter
	it.InitString(norm.NFKC, s[quick:])
	for !it.Done() {
		start := quick + it.Pos()
		seg := it.Next()
		end := quick + it.Pos()
		changed := string(seg) != s[start:end]
		for j := 0; j < len(seg); {
			r, size := utf8.DecodeRune(seg[j:])
			u := unit{r: r, src0: int32(start), src1: int32(end), run: 1, flags: wordFlag(r)}
			if changed {
				u.steps = NFKC
			}
			units = append(units, u)
			j += size
		}
	}
	return units
}

// dropInvisible removes invisible characters in place, keeping joiners
// between two letters of a script that needs them. What it removes is noted
// on the next kept character (or the previous one at the end).
func (n *Normalizer) dropInvisible(t *Text, units []unit) []unit {
	out := units[:0]
	pending := false
	for i := 0; i < len(units); i++ {
		u := units[i]
		if !invisible(u.r) {
			if pending {
				u.steps |= Invisible
				pending = false
			}
			out = append(out, u)
			continue
		}
		if joiner(u.r) && len(out) > 0 && i+1 < len(units) &&
			joinable(out[len(out)-1].r) && joinable(units[i+1].r) {
			out = append(out, u)
			continue
		}
		pending = true
		if len(out) > 0 {
			// The excerpt of the character before covers what was removed
			// after it, so a match ending there shows it.
			out[len(out)-1].src1 = u.src1
		}
	}
	if pending && len(out) > 0 {
		out[len(out)-1].steps |= Invisible
	}
	return out
}

// markLettered flags the characters of words that hold a letter. With leet
// on, the characters it replaces belong to words too ("a$$").
func markLettered(units []unit, withLeet bool) {
	inWord := func(u *unit) bool { return u.word() || withLeet && leetable(u.r) }
	for i := 0; i < len(units); {
		if !inWord(&units[i]) {
			i++
			continue
		}
		j, letter := i, false
		for j < len(units) && inWord(&units[j]) {
			letter = letter || isLetter(units[j].r)
			j++
		}
		if letter {
			for k := i; k < j; k++ {
				units[k].flags |= flagLettered
			}
		}
		i = j
	}
}

// expand applies Marks, Confusables and Fold to every character. It
// reports whether some character that was no part of a word became one.
func (n *Normalizer) expand(sc *scratch, in, out []unit) ([]unit, bool) {
	newWords := false
	for _, u := range in {
		lettered := u.flags&flagLettered != 0
		var e expansion
		if u.r < 128 {
			l := 0
			if lettered {
				l = 1
			}
			e = n.ascii[l][u.r]
		} else {
			key := uint32(u.r)
			if lettered {
				key |= 1 << 31
			}
			slot := &sc.cache[(key^key>>31)%cacheSize]
			if slot.key == key+1 {
				e = slot.e
			} else {
				e = n.compute(sc, u.r, lettered)
				slot.key, slot.e = key+1, e
			}
		}
		if e.same {
			out = append(out, u)
			continue
		}
		u.steps |= e.steps
		if e.out == "" {
			// A stripped mark: its excerpt joins the character before.
			if len(out) > 0 {
				last := &out[len(out)-1]
				last.src1 = max(last.src1, u.src1)
				last.steps |= e.steps
			}
			continue
		}
		wasWord := u.word()
		for _, r := range e.out {
			v := u
			v.r = r
			v.flags = v.flags&^flagWord | wordFlag(r)
			out = append(out, v)
			newWords = newWords || !wasWord && v.word()
		}
	}
	return out, newWords
}

// compute works out the expansion of one character.
func (n *Normalizer) compute(sc *scratch, r rune, lettered bool) expansion {
	rs := append(sc.rs[:0], r)
	var steps Step
	skeleton := n.steps&Confusables != 0 && (lettered || !unicode.IsDigit(r))
	if n.steps&(Marks|Confusables|Homoglyphs) != 0 {
		rs = decompose(rs)
	}
	if n.steps&Marks != 0 {
		before := len(rs)
		rs = stripMarks(rs)
		if len(rs) != before {
			steps |= Marks
		}
	}
	if skeleton {
		var ch bool
		if rs, ch = skeletonize(rs); ch {
			steps |= Confusables
		}
		if rs, ch = sc.foldRunes(rs); ch {
			steps |= Fold
		}
		for i, c := range rs {
			if m, ok := extraFold(c); ok {
				rs[i] = m
				steps |= Confusables
			}
		}
		if rs, ch = skeletonize(rs); ch {
			steps |= Confusables
		}
		rs = decompose(rs)
		if n.steps&Marks != 0 {
			before := len(rs)
			if rs = stripMarks(rs); len(rs) != before {
				steps |= Marks
			}
		}
		if n.steps&Fold != 0 {
			if rs, ch = sc.foldRunes(rs); ch {
				steps |= Fold
			}
		}
		for i, c := range rs {
			if c == 'l' {
				rs[i] = 'i'
				steps |= Confusables
			}
		}
	} else {
		if n.steps&Homoglyphs != 0 && r >= 0x80 && unicode.In(r, homoglyphScripts...) {
			if h, ok := sc.homoglyph(rs); ok {
				rs = h
				steps |= Homoglyphs
			}
		}
		if n.steps&Fold != 0 {
			var ch bool
			if rs, ch = sc.foldRunes(rs); ch {
				steps |= Fold
			}
		}
	}
	sc.rs = rs
	if len(rs) == 1 && rs[0] == r {
		return expansion{out: string(r), same: true}
	}
	if steps == 0 {
		// Decomposed and put back the same way (no mark stripped, nothing
		// mapped): keep the original character.
		return expansion{out: string(r), same: true}
	}
	return expansion{out: string(rs), steps: steps}
}

// homoglyphScripts are the scripts whose letters stand in for Latin ones;
// the Homoglyphs step leaves others (Arabic alef and "l") alone.
var homoglyphScripts = []*unicode.RangeTable{
	unicode.Latin, unicode.Greek, unicode.Cyrillic, unicode.Armenian, unicode.Cherokee, unicode.Common,
}

// homoglyph maps characters whose skeleton (folded, without marks) is
// plain ASCII letters and digits to that skeleton; it reports false when
// anything would be left outside ASCII.
func (sc *scratch) homoglyph(rs []rune) ([]rune, bool) {
	out, changed := skeletonize(rs)
	if changed {
		out = stripMarks(decompose(out))
		out, _ = sc.foldRunes(out)
	}
	for i, c := range out {
		if m, ok := extraFold(c); ok {
			out[i] = m
			changed = true
		}
	}
	if !changed || len(out) == 0 {
		return rs, false
	}
	for _, c := range out {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return rs, false
		}
	}
	return out, true
}

// decompose replaces each rune with its canonical decomposition (NFD).
func decompose(rs []rune) []rune {
	need := false
	for _, r := range rs {
		if r >= 0xC0 {
			need = true
			break
		}
	}
	if !need {
		return rs
	}
	var buf [4]byte
	out := make([]rune, 0, len(rs)+2)
	for _, r := range rs {
		if r < 0xC0 {
			out = append(out, r)
			continue
		}
		k := utf8.EncodeRune(buf[:], r)
		d := norm.NFD.Properties(buf[:k]).Decomposition()
		if d == nil {
			out = append(out, r)
			continue
		}
		for len(d) > 0 {
			c, size := utf8.DecodeRune(d)
			out = append(out, c)
			d = d[size:]
		}
	}
	return out
}

// stripMarks removes non-spacing and enclosing marks.
func stripMarks(rs []rune) []rune {
	out := rs[:0]
	for _, r := range rs {
		if !isMark(r) {
			out = append(out, r)
		}
	}
	return out
}

// skeletonize maps each rune to its UTS #39 prototype.
func skeletonize(rs []rune) ([]rune, bool) {
	changed := false
	var out []rune
	for i, r := range rs {
		proto, ok := skeletonOf(r)
		if !ok {
			if out != nil {
				out = append(out, r)
			}
			continue
		}
		if out == nil {
			out = append(make([]rune, 0, len(rs)+4), rs[:i]...)
		}
		out = append(out, []rune(proto)...)
		changed = true
	}
	if !changed {
		return rs, false
	}
	return out, true
}

// foldRunes applies full case folding.
func (sc *scratch) foldRunes(rs []rune) ([]rune, bool) {
	src := sc.tmp[:0]
	ascii := true
	for _, r := range rs {
		src = utf8.AppendRune(src, r)
		if r >= 0x80 {
			ascii = false
		}
	}
	if ascii {
		changed := false
		for i, r := range rs {
			if 'A' <= r && r <= 'Z' {
				rs[i] = r + 'a' - 'A'
				changed = true
			}
		}
		return rs, changed
	}
	sc.fold.Reset()
	dst := sc.tmp2[:cap(sc.tmp2)]
	nDst, _, err := sc.fold.Transform(dst, src, true)
	if err != nil {
		return rs, false
	}
	folded := dst[:nDst]
	if string(folded) == string(src) {
		return rs, false
	}
	return []rune(string(folded)), true
}

// maxLooseGap is the longest separator the Loose step sees through.
const maxLooseGap = 5

// loosen joins runs of at least three one-character words separated by
// short separators, marking each joined character as a possible word edge.
func (sc *scratch) loosen(units []unit) []unit {
	// Most texts have fewer than three one-character words: count first.
	singles := 0
	for i := 0; i < len(units); {
		if !units[i].word() {
			i++
			continue
		}
		j := i + 1
		for j < len(units) && units[j].word() {
			j++
		}
		if units[i].src0 == units[j-1].src0 {
			singles++
		}
		i = j
	}
	if singles < 3 {
		return units
	}
	toks := sc.toks[:0]
	for i := 0; i < len(units); {
		if !units[i].word() {
			i++
			continue
		}
		j := i + 1
		for j < len(units) && units[j].word() {
			j++
		}
		toks = append(toks, span{i, j})
		i = j
	}
	sc.toks = toks
	single := func(t span) bool { return units[t.start].src0 == units[t.end-1].src0 }
	gapOK := func(a, b span) bool {
		if b.start-a.end > maxLooseGap {
			return false
		}
		for k := a.end; k < b.start; k++ {
			if units[k].r == '\n' {
				return false
			}
		}
		return true
	}
	dropped := false
	for g := 0; g < len(toks); {
		if !single(toks[g]) {
			g++
			continue
		}
		h := g + 1
		for h < len(toks) && single(toks[h]) && gapOK(toks[h-1], toks[h]) {
			h++
		}
		if h-g >= 3 {
			for k := g; k < h; k++ {
				for x := toks[k].start; x < toks[k].end; x++ {
					units[x].flags |= flagEdge
					units[x].steps |= Loose
				}
				if k > g {
					for x := toks[k-1].end; x < toks[k].start; x++ {
						units[x].flags |= flagDrop
						dropped = true
					}
				}
			}
		}
		g = h
	}
	if !dropped {
		return units
	}
	out := units[:0]
	for _, u := range units {
		if u.flags&flagDrop == 0 {
			out = append(out, u)
		}
	}
	return out
}
