package bot

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// cleanText makes s safe to put into an XML document: invalid UTF-8 and
// characters that XML 1.0 forbids (most C0 controls, U+FFFE, U+FFFF,
// surrogates) are removed. Tab, newline and carriage return stay.
func cleanText(s string) string {
	ok := true
	for i, r := range s {
		if r == utf8.RuneError && !isRealReplacement(s, i) || !xmlChar(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		if r == utf8.RuneError && !isRealReplacement(s, i) {
			continue
		}
		if xmlChar(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isRealReplacement tells a U+FFFD written in the text from the one the
// decoder reports for a byte that is not UTF-8.
func isRealReplacement(s string, i int) bool {
	_, size := utf8.DecodeRuneInString(s[i:])
	return size == 3
}

func xmlChar(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return true
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// splitBody cuts s into parts of at most max bytes each, never inside a
// UTF-8 sequence and never between a character and what extends it
// (combining marks, variation selectors, zero-width joiner sequences, emoji
// modifiers). It prefers to cut after a newline, then after a space, in the
// last half (newline) or quarter (space) of each part. max <= 0 means no limit.
func splitBody(s string, max int) []string {
	if max <= 0 || len(s) <= max {
		return []string{s}
	}
	if max < 16 {
		max = 16 // room for the longest grapheme cluster we keep whole in practice
	}
	var parts []string
	for len(s) > max {
		cut := graphemeCut(s, max)
		if nl := strings.LastIndexByte(s[:cut], '\n'); nl >= cut/2 {
			cut = nl + 1
		} else if sp := strings.LastIndexByte(s[:cut], ' '); sp >= cut*3/4 {
			cut = sp + 1
		}
		part := strings.TrimRight(s[:cut], " \n")
		if part != "" {
			parts = append(parts, part)
		}
		s = s[cut:]
	}
	if strings.TrimSpace(s) != "" {
		parts = append(parts, s)
	}
	return parts
}

// graphemeCut returns the largest index <= max that starts a new character
// which does not extend the previous one. It always makes progress.
func graphemeCut(s string, max int) int {
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	for c := cut; c > 0; {
		r, _ := utf8.DecodeRuneInString(s[c:])
		prev, size := utf8.DecodeLastRuneInString(s[:c])
		if !extends(r) && prev != 0x200D {
			return c
		}
		c -= size
		if c <= 0 {
			break
		}
		cut = c
	}
	// One cluster longer than max: cut at the first rune boundary instead
	// of looping forever.
	if cut <= 0 {
		_, size := utf8.DecodeRuneInString(s)
		return size
	}
	return cut
}

// extends reports whether r attaches to the character before it.
func extends(r rune) bool {
	switch {
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Mc):
		return true
	case r == 0x200D: // zero width joiner
		return true
	case r >= 0xFE00 && r <= 0xFE0F: // variation selectors
		return true
	case r >= 0x1F3FB && r <= 0x1F3FF: // emoji skin tone modifiers
		return true
	case r >= 0xE0020 && r <= 0xE007F: // tag characters (flag sequences)
		return true
	}
	return false
}
