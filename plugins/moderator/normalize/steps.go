package normalize

import (
	"fmt"
	"strings"
)

// Step is one normalisation step, or a set of them as a bit mask. Steps run in
// a fixed order whatever the order of the bits: NFKC, Invisible, Leet, Marks,
// Confusables, Fold, Loose, Runs.
type Step uint16

// The normalisation steps.
const (
	// NFKC applies Unicode compatibility normalisation: fullwidth and
	// mathematical letters, ligatures, circled and superscript forms become
	// the plain letters they stand for.
	NFKC Step = 1 << iota
	// Invisible removes format and invisible characters (zero-width space
	// and joiners, bidi controls, tag characters, variation selectors, soft
	// hyphen, blank look-alikes such as U+3164 and U+2800), but keeps a
	// zero-width (non-)joiner between two letters of a script that needs it
	// (Arabic, Persian, Indic scripts and a few others).
	Invisible
	// Loose sees through separators between letters: a run of at least
	// three one-character words ("f r e e", "f.r.e.e", "f-r-e-e"), apart
	// by up to five separators and on one line, is joined into one, and
	// every letter of it may start or end a word match.
	Loose
	// Leet maps digits and symbols that stand for letters (4→a, 3→e, 0→o,
	// 1→i, $→s, @→a, 7→t, ...) inside a word that has at least one letter,
	// so "$100" and "2024" are left alone.
	Leet
	// Marks decomposes (NFD) and strips combining marks: "é" → "e", and the
	// stacks of "zalgo" text disappear. Zalgo statistics are kept in Text
	// whether the step is on or not.
	Marks
	// Confusables folds each character to its prototype as UTS #39 defines
	// the skeleton (Cyrillic "а" → Latin "a", "m" → "rn", "0" → "O"), with
	// case folding in between so capitals and small letters meet, and with
	// "i" and "l" made one letter (capital I, small l, digit 1 and "|" look
	// the same in many fonts).
	Confusables
	// Fold applies Unicode full case folding (golang.org/x/text/cases).
	Fold
	// Runs collapses runs of one character into one ("fooooo" → "fo"),
	// keeping the run length so a matcher can still tell "good" from "god"
	// (see Text.Run).
	Runs
	// Homoglyphs is a light Confusables for texts that regular expressions
	// read: a Latin, Greek, Cyrillic, Armenian, Cherokee or common
	// character outside ASCII whose UTS #39 prototype is plain ASCII
	// letters or digits becomes them (Cyrillic "а" → "a", "ᴋ" → "k"),
	// and ASCII itself is left as written, so "gold" stays "gold" and
	// "m" stays "m". Confusables, when also set, takes precedence.
	Homoglyphs
)

// Default is the set of steps used when nothing is configured: every step
// but Leet.
const Default = NFKC | Invisible | Marks | Confusables | Fold | Loose | Runs

// All is every step of the word matcher: Default and Leet (Homoglyphs is
// left out, as Confusables covers it).
const All = Default | Leet

var stepNames = [...]struct {
	step Step
	name string
}{
	{NFKC, "nfkc"},
	{Invisible, "invisible"},
	{Loose, "loose"},
	{Leet, "leet"},
	{Marks, "marks"},
	{Confusables, "confusables"},
	{Fold, "fold"},
	{Runs, "runs"},
	{Homoglyphs, "homoglyphs"},
}

// String names the steps in s, in the order they run, joined by "+"; the
// empty set is "none".
func (s Step) String() string {
	if s == 0 {
		return "none"
	}
	var b strings.Builder
	for _, n := range stepNames {
		if s&n.step != 0 {
			if b.Len() > 0 {
				b.WriteByte('+')
			}
			b.WriteString(n.name)
		}
	}
	return b.String()
}

// Names lists the names of the steps in s, in the order they run.
func (s Step) Names() []string {
	var out []string
	for _, n := range stepNames {
		if s&n.step != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// ParseSteps turns step names (as Step.String prints them; "default" and
// "all" stand for Default and All) into a set. An unknown name is an error
// wrapping ErrUnknownStep.
func ParseSteps(names []string) (Step, error) {
	var s Step
	for _, name := range names {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "default":
			s |= Default
			continue
		case "all":
			s |= All
			continue
		}
		found := false
		for _, n := range stepNames {
			if n.name == name {
				s |= n.step
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("%w: %q", ErrUnknownStep, name)
		}
	}
	return s, nil
}
