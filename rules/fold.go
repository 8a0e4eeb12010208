package rules

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// lowerText lowers s, allocating only when s has an upper-case letter or
// is not ASCII.
func lowerText(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return strings.ToLower(s)
		}
		if 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// fold lowers s, strips its diacritics and turns each run of white space
// into one space ("Café  au lait" -> "cafe au lait"): the form in which
// keywords and mentions are compared.
func fold(s string) string {
	simple := true
	for i := 0; i < len(s) && simple; i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf, c == '\t', c == '\n', c == '\r', c == '\v', c == '\f':
			simple = false
		case c == ' ' && i+1 < len(s) && s[i+1] == ' ':
			simple = false
		}
	}
	if simple {
		return lowerText(s)
	}
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	space := false
	for _, r := range d {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(unicode.ToLower(r))
	}
	return norm.NFC.String(b.String())
}

// isWordRune reports whether r is part of a word for keyword and mention
// boundaries.
func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// atWordBoundary reports whether text[start:end] stands alone as a word: the
// runes just outside it are not word runes, where the edge of the pattern is
// itself a word rune ("c++" needs a boundary only before it).
func atWordBoundary(text string, start, end int) bool {
	if start > 0 {
		first, _ := utf8.DecodeRuneInString(text[start:end])
		if isWordRune(first) {
			prev, _ := utf8.DecodeLastRuneInString(text[:start])
			if isWordRune(prev) {
				return false
			}
		}
	}
	if end < len(text) {
		last, _ := utf8.DecodeLastRuneInString(text[start:end])
		if isWordRune(last) {
			next, _ := utf8.DecodeRuneInString(text[end:])
			if isWordRune(next) {
				return false
			}
		}
	}
	return true
}

// containsWord reports whether word occurs in text as a whole word. Both are
// expected folded.
func containsWord(text, word string) bool {
	if word == "" {
		return false
	}
	off := 0
	for {
		i := strings.Index(text[off:], word)
		if i < 0 {
			return false
		}
		start := off + i
		if atWordBoundary(text, start, start+len(word)) {
			return true
		}
		_, size := utf8.DecodeRuneInString(text[start:])
		off = start + size
	}
}
