package rules

import "strings"

// glob is a case-insensitive shell-style pattern: '*' matches any run of
// characters (slashes included, so "*@example.org*" matches full JIDs) and
// '?' one character.
type glob struct {
	pat     string // lowered
	literal bool
}

func newGlob(p string) glob {
	p = strings.ToLower(p)
	return glob{pat: p, literal: !strings.ContainsAny(p, "*?")}
}

// match reports whether s (any case) matches g.
func (g glob) match(s string) bool {
	if g.literal {
		return strings.EqualFold(g.pat, s)
	}
	return globMatch(g.pat, strings.ToLower(s))
}

// globMatch is the classic linear-backtracking wildcard matcher: on a
// mismatch it retries from the last '*', consuming one more rune.
func globMatch(p, s string) bool {
	pr, sr := []rune(p), []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(sr) {
		switch {
		case pi < len(pr) && (pr[pi] == '?' || pr[pi] == sr[si]):
			pi++
			si++
		case pi < len(pr) && pr[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pr) && pr[pi] == '*' {
		pi++
	}
	return pi == len(pr)
}

// globs is a list of globs of which any may match.
type globs []glob

func newGlobs(ps []string) globs {
	if len(ps) == 0 {
		return nil
	}
	g := make(globs, len(ps))
	for i, p := range ps {
		g[i] = newGlob(p)
	}
	return g
}

func (gs globs) any(values ...string) bool {
	for _, g := range gs {
		for _, v := range values {
			if v != "" && g.match(v) {
				return true
			}
		}
	}
	return false
}

// literals returns the lowered patterns when every glob is a literal.
func (gs globs) literals() ([]string, bool) {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		if !g.literal {
			return nil, false
		}
		out = append(out, g.pat)
	}
	return out, len(out) > 0
}
