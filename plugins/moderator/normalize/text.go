package normalize

import "sort"

// Text is the matching copy of one text: the normalised bytes, and for each
// normalised character the stretch of the original it came from, the steps
// that changed it and how many equal characters it stands for. A Text is
// not safe for concurrent use; NormalizeInto reuses its buffers.
type Text struct {
	orig    string
	norm    []byte
	units   []unit
	offsets []int32
	steps   Step

	// Marks counts the combining marks of the original.
	Marks int
	// MaxMarks is the longest run of combining marks on one character:
	// accents need one or two, "zalgo" text stacks many.
	MaxMarks int
	curMarks int
	ascii    bool
}

func (t *Text) reset(s string) {
	t.orig = s
	t.norm = t.norm[:0]
	t.units = t.units[:0]
	t.offsets = t.offsets[:0]
	t.steps = 0
	t.Marks, t.MaxMarks, t.curMarks = 0, 0, 0
}

// count keeps the zalgo statistics for one decoded character.
func (t *Text) count(r rune) {
	if isMark(r) {
		t.Marks++
		t.curMarks++
		if t.curMarks > t.MaxMarks {
			t.MaxMarks = t.curMarks
		}
		return
	}
	t.curMarks = 0
}

// Original returns the text as it was given.
func (t *Text) Original() string { return t.orig }

// Bytes returns the normalised text. It is valid until t is reused.
func (t *Text) Bytes() []byte { return t.norm }

// String returns the normalised text.
func (t *Text) String() string { return string(t.norm) }

// Steps returns the steps that changed anything in the text.
func (t *Text) Steps() Step { return t.steps }

// Len returns the number of normalised characters.
func (t *Text) Len() int { return len(t.units) }

// Char returns the index of the normalised character that holds byte off of
// the normalised text (len(Bytes()) gives Len()).
func (t *Text) Char(off int) int {
	i := sort.Search(len(t.offsets), func(i int) bool { return t.offsets[i] > int32(off) })
	return i - 1
}

// Offset returns the byte offset of normalised character i (Len() gives the
// length of the normalised text).
func (t *Text) Offset(i int) int { return int(t.offsets[i]) }

// Rune returns normalised character i.
func (t *Text) Rune(i int) rune { return t.units[i].r }

// Run returns how many equal characters normalised character i stands for
// (1 unless the Runs step collapsed a run).
func (t *Text) Run(i int) int { return int(t.units[i].run) }

// CharSteps returns the steps that changed normalised character i.
func (t *Text) CharSteps(i int) Step { return t.units[i].steps }

// WordStart reports whether a whole word may start at normalised character
// i: the character is part of a word, and either nothing of a word comes
// before it or the Loose step joined it from one-letter words.
func (t *Text) WordStart(i int) bool {
	if i >= len(t.units) || !t.units[i].word() {
		return false
	}
	if i == 0 || t.units[i].flags&flagEdge != 0 {
		return true
	}
	return !t.units[i-1].word()
}

// WordEnd reports whether a whole word may end just before normalised
// character i (i == Len() is the end of the text).
func (t *Text) WordEnd(i int) bool {
	if i == 0 || !t.units[i-1].word() {
		return false
	}
	if i == len(t.units) || t.units[i-1].flags&flagEdge != 0 {
		return true
	}
	return !t.units[i].word()
}

// IsWordChar reports whether normalised character i belongs to a word.
func (t *Text) IsWordChar(i int) bool { return t.units[i].word() }

// Span describes a stretch of a Text: what it was, what the matcher saw,
// and which steps made the difference.
type Span struct {
	// Raw is the excerpt of the original text.
	Raw string
	// Norm is the excerpt of the normalised text.
	Norm string
	// Steps are the steps that changed something in the stretch.
	Steps Step
	// Start and End are the byte range of Raw in the original text.
	Start, End int
}

// Span returns the stretch of normalised characters [i, j).
func (t *Text) Span(i, j int) Span {
	if i < 0 {
		i = 0
	}
	if j > len(t.units) {
		j = len(t.units)
	}
	if i >= j {
		return Span{}
	}
	sp := Span{Norm: string(t.norm[t.offsets[i]:t.offsets[j]])}
	start, end := t.units[i].src0, t.units[i].src1
	for k := i; k < j; k++ {
		u := &t.units[k]
		sp.Steps |= u.steps
		start = min(start, u.src0)
		end = max(end, u.src1)
	}
	sp.Start, sp.End = int(start), int(end)
	sp.Raw = t.orig[start:end]
	return sp
}

// ByteSpan is Span for the byte range [start, end) of the normalised text.
func (t *Text) ByteSpan(start, end int) Span {
	if end <= start {
		return Span{}
	}
	return t.Span(t.Char(start), t.Char(end-1)+1)
}
