package rules

import (
	"regexp/syntax"
	"strings"
	"unicode"
)

// maxLiteralSet bounds the alternatives a prefilter may hold; a regex with
// more alternatives is checked for every message instead.
const maxLiteralSet = 16

// requiredLiterals returns lowered strings of which at least one occurs in
// the lowered text of every match of the expression, or nil when no such set
// was found. The engine uses them to skip regexes that cannot match.
//
// Lowering makes one set serve both case-sensitive and (?i) expressions:
// "Foo" in a text means "foo" in the lowered text. A case-folded literal is
// cut down to its parts where lowering is exactly its fold (not so for 's'
// and 'ſ').
func requiredLiterals(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	set := literalSet(re.Simplify())
	if len(set) == 0 {
		return nil
	}
	for _, s := range set {
		if s == "" {
			return nil
		}
	}
	return set
}

// literalSet computes the required set of re; nil means "none known".
func literalSet(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		rs := re.Rune
		if re.Flags&syntax.FoldCase != 0 {
			rs = longestFoldSafe(rs)
			if len(rs) == 0 {
				return nil
			}
		}
		return []string{strings.ToLower(string(rs))}
	case syntax.OpCapture:
		return literalSet(re.Sub[0])
	case syntax.OpPlus:
		return literalSet(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literalSet(re.Sub[0])
		}
		return nil
	case syntax.OpConcat:
		var best []string
		for _, sub := range re.Sub {
			if s := literalSet(sub); s != nil && better(s, best) {
				best = s
			}
		}
		return best
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			s := literalSet(sub)
			if s == nil {
				return nil
			}
			all = append(all, s...)
			if len(all) > maxLiteralSet {
				return nil
			}
		}
		return all
	}
	return nil
}

// better prefers the set whose shortest member is longest: it is the rarest
// in ordinary text.
func better(a, b []string) bool {
	if b == nil {
		return true
	}
	return minLen(a) > minLen(b) || (minLen(a) == minLen(b) && len(a) < len(b))
}

func minLen(set []string) int {
	m := -1
	for _, s := range set {
		if m < 0 || len(s) < m {
			m = len(s)
		}
	}
	return m
}

// longestFoldSafe returns the longest run of rs made of fold-safe runes: a
// case-insensitive match of such a run is a substring match in the lowered
// text. Any part of a required literal is required too, so "(?i)tests"
// still gives "te".
func longestFoldSafe(rs []rune) []rune {
	var best []rune
	start := 0
	for i := 0; i <= len(rs); i++ {
		if i == len(rs) || !foldSafe(rs[i]) {
			if i-start > len(best) {
				best = rs[start:i]
			}
			start = i + 1
		}
	}
	return best
}

// foldSafe reports whether every rune of r's case-fold orbit lowers to the
// same rune (not so for 's' and 'ſ': ToLower('ſ') is 'ſ').
func foldSafe(r rune) bool {
	low := unicode.ToLower(r)
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if unicode.ToLower(f) != low {
			return false
		}
	}
	return true
}
