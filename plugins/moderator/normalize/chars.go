package normalize

import "unicode"

// invisible reports whether r is removed by the Invisible step (before the
// joiner rule in keepJoiner is applied).
func invisible(r rune) bool {
	switch {
	case r < 0x00AD:
		return false
	case r == 0x00AD, // soft hyphen
		r == 0x034F,              // combining grapheme joiner
		r == 0x061C,              // Arabic letter mark
		r == 0x115F, r == 0x1160, // Hangul choseong and jungseong fillers
		r == 0x17B4, r == 0x17B5, // Khmer inherent vowels
		r >= 0x180B && r <= 0x180F,   // Mongolian free variation selectors, vowel separator
		r >= 0x200B && r <= 0x200F,   // zero-width space, joiners, direction marks
		r >= 0x202A && r <= 0x202E,   // bidi embeddings and overrides
		r >= 0x2060 && r <= 0x206F,   // word joiner, invisible operators, bidi isolates
		r == 0x2800,                  // braille pattern blank
		r == 0x3164,                  // Hangul filler
		r >= 0xFE00 && r <= 0xFE0F,   // variation selectors
		r == 0xFEFF,                  // zero-width no-break space
		r == 0xFFA0,                  // halfwidth Hangul filler
		r >= 0xFFF0 && r <= 0xFFFB,   // interlinear annotation controls
		r >= 0x1BCA0 && r <= 0x1BCA3, // shorthand format controls
		r >= 0x1D173 && r <= 0x1D17A, // musical symbol format controls
		r >= 0xE0000 && r <= 0xE0FFF: // tags, variation selectors supplement
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// joiner reports whether r is a zero-width non-joiner or joiner.
func joiner(r rune) bool { return r == 0x200C || r == 0x200D }

// joiningScripts are the scripts whose spelling uses ZWNJ or ZWJ between
// letters: Persian and other Arabic-script languages, the Indic scripts and
// a few others whose shaping depends on them.
var joiningScripts = []*unicode.RangeTable{
	unicode.Arabic, unicode.Syriac, unicode.Nko, unicode.Mongolian,
	unicode.Devanagari, unicode.Bengali, unicode.Gurmukhi, unicode.Gujarati,
	unicode.Oriya, unicode.Tamil, unicode.Telugu, unicode.Kannada,
	unicode.Malayalam, unicode.Sinhala, unicode.Myanmar, unicode.Khmer,
	unicode.Tibetan, unicode.Thaana, unicode.Hebrew,
}

// joinable reports whether r is a letter or mark of a script that needs a
// joiner.
func joinable(r rune) bool {
	if r < 0x0590 {
		return false
	}
	if !unicode.IsLetter(r) && !unicode.IsMark(r) {
		return false
	}
	return unicode.In(r, joiningScripts...)
}

// isWord reports whether r belongs to a word: letters, digits, marks, and
// the joiners kept inside words.
func isWord(r rune) bool {
	if r < 0x80 {
		return asciiWord[r]
	}
	return isWordSlow(r)
}

func isWordSlow(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || joiner(r)
}

// asciiWord marks ASCII letters and digits.
var asciiWord = func() (t [128]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	return t
}()

// isLetter is unicode.IsLetter with an ASCII fast path.
func isLetter(r rune) bool {
	if r < 0x80 {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r)
}

// isMark reports a non-spacing or enclosing combining mark, the kind "zalgo"
// text stacks; spacing marks (Mc) are vowel signs of Indic scripts.
func isMark(r rune) bool {
	if r < 0x0300 {
		return false
	}
	if r <= 0x036F {
		return true // combining diacritical marks, zalgo's usual stock
	}
	return unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r)
}

// leet maps the characters the Leet step replaces inside a word.
func leet(r rune) (rune, bool) {
	switch r {
	case '4', '@':
		return 'a', true
	case '8':
		return 'b', true
	case '3', '€':
		return 'e', true
	case '9':
		return 'g', true
	case '1', '!', '|':
		return 'i', true
	case '0':
		return 'o', true
	case '5', '$':
		return 's', true
	case '7', '+':
		return 't', true
	}
	return r, false
}

// leetable reports whether r may be changed by leet; such characters join a
// word when the Leet step is on.
func leetable(r rune) bool {
	switch r {
	case '4', '@', '8', '3', '€', '9', '1', '!', '|', '0', '5', '$', '7', '+':
		return true
	}
	return false
}

// skeletonOf returns the UTS #39 prototype of r (in NFD) and whether r has
// one. Mappings of ASCII punctuation to several characters ("%" → "º/₀")
// are left out: they only add noise to a matching copy.
func skeletonOf(r rune) (string, bool) {
	lo, hi := 0, len(confusableKeys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if confusableKeys[m] < r {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(confusableKeys) || confusableKeys[lo] != r {
		return "", false
	}
	if r < 0x80 && r != '|' && !isWord(r) {
		return "", false
	}
	return confusableTargets[confusableOffsets[lo]:confusableOffsets[lo+1]], true
}

// extraFold maps letters that UTS #39 keeps as their own prototypes but that
// chat users put in place of Latin letters: small capitals, the kra (the
// prototype of Greek kappa and Cyrillic ka), and the enclosed and squared
// capitals and regional indicators that NFKC leaves alone.
func extraFold(r rune) (rune, bool) {
	switch {
	case r < 0x0138:
		return r, false
	case r >= 0x1F130 && r <= 0x1F149: // squared Latin capitals
		return 'a' + r - 0x1F130, true
	case r >= 0x1F150 && r <= 0x1F169: // negative circled
		return 'a' + r - 0x1F150, true
	case r >= 0x1F170 && r <= 0x1F189: // negative squared
		return 'a' + r - 0x1F170, true
	case r >= 0x1F1E6 && r <= 0x1F1FF: // regional indicators
		return 'a' + r - 0x1F1E6, true
	}
	if m, ok := smallCaps[r]; ok {
		return m, true
	}
	return r, false
}

var smallCaps = map[rune]rune{
	0x0138: 'k', // ĸ kra
	0x1D00: 'a', 0x0299: 'b', 0x1D04: 'c', 0x1D05: 'd', 0x1D07: 'e', 0xA730: 'f',
	0x0262: 'g', 0x029C: 'h', 0x026A: 'i', 0x1D0A: 'j', 0x1D0B: 'k', 0x029F: 'l',
	0x1D0D: 'm', 0x0274: 'n', 0x1D0F: 'o', 0x1D18: 'p', 0xA7AF: 'q', 0x0280: 'r',
	0xA731: 's', 0x1D1B: 't', 0x1D1C: 'u', 0x1D20: 'v', 0x1D21: 'w', 0x028F: 'y',
	0x1D22: 'z',
	0x1D0E: 'n', // ᴎ reversed N, the prototype of Cyrillic и
	0x028D: 'm', // ʍ turned w, the prototype of Cyrillic м
}
