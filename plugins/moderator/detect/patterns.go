package detect

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"unicode/utf8"

	"crier/plugins/moderator/normalize"
)

// Pattern is one RE2 regular expression rule.
type Pattern struct {
	// Name names the rule in verdicts.
	Name string
	// Expr is the expression, in RE2 syntax (Go's regexp).
	Expr string
	// Points is the weight of a match.
	Points int
	// Raw matches the message as received instead of its pattern text.
	Raw bool
}

// MaxPatternLen bounds the length of one expression.
const MaxPatternLen = 4096

// Patterns matches regular expressions on messages. RE2 runs in time linear
// in the text, so no expression can stall the moderator.
//
// Expressions read the pattern text of a message, not the skeleton the word
// lists use, so that letters stay the letters an expression names: NFKC,
// invisible characters removed, marks stripped, look-alikes outside ASCII
// mapped to the ASCII letters they imitate (normalize.Homoglyphs), case
// folded and spaced letters joined. Write expressions in lower case. A Raw
// rule reads the message as received.
type Patterns struct {
	rules []Pattern
	res   []*regexp.Regexp
	// lits[i] is a literal every match of rule i contains, or "".
	lits  []string
	litsB [][]byte
	// classes[i] are rune ranges (pairs) one of which every match of rule
	// i contains, when it has no literal; nil when unknown.
	classes [][]rune
	norm    *normalize.Normalizer
	pool    sync.Pool
	// needText is set when some rule reads the pattern text.
	needText bool
}

// PatternSteps are the normalisation steps of the text patterns read.
const PatternSteps = normalize.NFKC | normalize.Invisible | normalize.Marks |
	normalize.Homoglyphs | normalize.Fold | normalize.Loose

// NewPatterns compiles the rules; every bad one is reported, each error
// wrapping ErrPattern and naming the rule.
func NewPatterns(rules ...Pattern) (*Patterns, error) {
	p := &Patterns{rules: rules}
	var errs []error
	for _, r := range rules {
		switch {
		case r.Name == "":
			errs = append(errs, fmt.Errorf("%w: a pattern has no name (expression %q)", ErrPattern, r.Expr))
			continue
		case r.Expr == "":
			errs = append(errs, fmt.Errorf("%w: %s: empty expression", ErrPattern, r.Name))
			continue
		case len(r.Expr) > MaxPatternLen:
			errs = append(errs, fmt.Errorf("%w: %s: expression longer than %d bytes", ErrPattern, r.Name, MaxPatternLen))
			continue
		case !utf8.ValidString(r.Expr):
			errs = append(errs, fmt.Errorf("%w: %s: expression is not valid UTF-8", ErrPattern, r.Name))
			continue
		}
		re, err := regexp.Compile(r.Expr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrPattern, r.Name, err))
			continue
		}
		p.res = append(p.res, re)
		lit := requiredLiteral(r.Expr, r.Raw)
		p.lits = append(p.lits, lit)
		p.litsB = append(p.litsB, []byte(lit))
		var class []rune
		if lit == "" {
			class = requiredClass(r.Expr)
		}
		p.classes = append(p.classes, class)
		p.needText = p.needText || !r.Raw
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.norm = normalize.New(PatternSteps)
	p.pool.New = func() any { return new(normalize.Text) }
	return p, nil
}

// Name implements Detector.
func (p *Patterns) Name() string { return "regex" }

// Check implements Detector: one verdict per matching rule.
func (p *Patterns) Check(in *Input, out []Verdict) []Verdict {
	var t *normalize.Text
	if p.needText {
		t = p.pool.Get().(*normalize.Text)
		defer p.pool.Put(t)
		p.norm.NormalizeInto(t, in.Msg.Body)
	}
	for i, re := range p.res {
		r := &p.rules[i]
		if r.Raw {
			if p.lits[i] != "" && !strings.Contains(in.Msg.Body, p.lits[i]) ||
				p.classes[i] != nil && !hasClassRune(in.Msg.Body, p.classes[i]) {
				continue
			}
			loc := re.FindStringIndex(in.Msg.Body)
			if loc == nil {
				continue
			}
			ex := in.Msg.Body[loc[0]:loc[1]]
			out = append(out, Verdict{Detector: "regex", Rule: r.Name, Points: r.Points, Raw: ex, Norm: ex,
				Detail: fmt.Sprintf("pattern %q on the raw text", r.Expr)})
			continue
		}
		if p.lits[i] != "" && !bytes.Contains(t.Bytes(), p.litsB[i]) ||
			p.classes[i] != nil && !hasClassRune(string(t.Bytes()), p.classes[i]) {
			continue
		}
		loc := re.FindIndex(t.Bytes())
		if loc == nil {
			continue
		}
		sp := t.ByteSpan(loc[0], loc[1])
		out = append(out, Verdict{Detector: "regex", Rule: r.Name, Points: r.Points,
			Raw: sp.Raw, Norm: sp.Norm, Steps: sp.Steps, Detail: fmt.Sprintf("pattern %q", r.Expr)})
	}
	return out
}

// requiredLiteral returns the longest literal that every match of expr
// must contain, or "" when there is none it can tell. On the pattern text
// (folded) a case-insensitive literal is searched in lower case; on the raw
// text it is not used.
func requiredLiteral(expr string, raw bool) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	lit, _ := literalOf(re.Simplify(), raw)
	return lit
}

func literalOf(re *syntax.Regexp, raw bool) (string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		if re.Flags&syntax.FoldCase != 0 {
			if raw {
				return "", false
			}
			s = strings.ToLower(s)
		}
		return s, true
	case syntax.OpCapture:
		return literalOf(re.Sub[0], raw)
	case syntax.OpPlus:
		return literalOf(re.Sub[0], raw)
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literalOf(re.Sub[0], raw)
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l, ok := literalOf(sub, raw); ok && len(l) > len(best) {
				best = l
			}
		}
		return best, best != ""
	}
	return "", false
}

// requiredClass returns the ranges of a character class that every match
// of expr must contain a character of, or nil.
func requiredClass(expr string) []rune {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	return classOf(re.Simplify())
}

func classOf(re *syntax.Regexp) []rune {
	switch re.Op {
	case syntax.OpCharClass:
		return re.Rune
	case syntax.OpCapture, syntax.OpPlus:
		return classOf(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return classOf(re.Sub[0])
		}
	case syntax.OpConcat:
		// The narrowest required class filters best.
		var best []rune
		bestSize := -1
		for _, sub := range re.Sub {
			c := classOf(sub)
			if c == nil {
				continue
			}
			size := 0
			for k := 0; k+1 < len(c); k += 2 {
				size += int(c[k+1]-c[k]) + 1
			}
			if bestSize < 0 || size < bestSize {
				best, bestSize = c, size
			}
		}
		return best
	}
	return nil
}

// hasClassRune reports whether s holds a rune in the ranges.
func hasClassRune(s string, ranges []rune) bool {
	for _, r := range s {
		for k := 0; k+1 < len(ranges); k += 2 {
			if ranges[k] <= r && r <= ranges[k+1] {
				return true
			}
		}
	}
	return false
}
