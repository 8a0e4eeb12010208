package detect

import (
	"errors"
	"fmt"
	"regexp"
	"unicode/utf8"
)

// Pattern is one RE2 regular expression rule.
type Pattern struct {
	// Name names the rule in verdicts.
	Name string
	// Expr is the expression, in RE2 syntax (Go's regexp).
	Expr string
	// Points is the weight of a match.
	Points int
	// Raw matches the message as received instead of its matching copy.
	Raw bool
}

// MaxPatternLen bounds the length of one expression.
const MaxPatternLen = 4096

// Patterns matches regular expressions on messages. RE2 runs in time linear
// in the text, so no expression can stall the moderator.
type Patterns struct {
	rules []Pattern
	res   []*regexp.Regexp
}

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
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Name implements Detector.
func (p *Patterns) Name() string { return "regex" }

// Check implements Detector: one verdict per matching rule.
func (p *Patterns) Check(in *Input, out []Verdict) []Verdict {
	for i, re := range p.res {
		r := &p.rules[i]
		if r.Raw {
			loc := re.FindStringIndex(in.Msg.Body)
			if loc == nil {
				continue
			}
			ex := in.Msg.Body[loc[0]:loc[1]]
			out = append(out, Verdict{Detector: "regex", Rule: r.Name, Points: r.Points, Raw: ex, Norm: ex,
				Detail: fmt.Sprintf("pattern %q on the raw text", r.Expr)})
			continue
		}
		loc := re.FindIndex(in.Text.Bytes())
		if loc == nil {
			continue
		}
		sp := in.Text.ByteSpan(loc[0], loc[1])
		if loc[0] == loc[1] {
			sp.Norm, sp.Raw = "", ""
		}
		out = append(out, Verdict{Detector: "regex", Rule: r.Name, Points: r.Points,
			Raw: sp.Raw, Norm: sp.Norm, Steps: sp.Steps, Detail: fmt.Sprintf("pattern %q", r.Expr)})
	}
	return out
}
