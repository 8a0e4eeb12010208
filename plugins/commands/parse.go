package commands

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"crier/plugins"
)

// argError is a refused argument: a clear one-line message, and the
// reason counted in crier_commands_rejected_total.
type argError struct {
	reason string // reasonBadArgs or reasonTooBig
	msg    string
}

func (e *argError) Error() string { return e.msg }

func badArgs(format string, args ...any) *argError {
	return &argError{reason: reasonBadArgs, msg: fmt.Sprintf(format, args...)}
}

// token is one word of a chat line; start is its offset in the line.
type token struct {
	text   string
	start  int
	quoted bool
}

// isOpenQuote and closeQuote: straight double quotes, and the curly ones
// phone keyboards put in.
func isOpenQuote(r rune) bool { return r == '"' || r == '“' || r == '„' }

func isCloseQuote(open, r rune) bool {
	if open == '"' {
		return r == '"'
	}
	return r == '”' || r == '“'
}

// tokenize splits a line into words; "a b" (or “a b”) is one word, and
// inside quotes \" and \\ stand for " and \.
func tokenize(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			i += n
			continue
		}
		start := i
		if !isOpenQuote(r) {
			for i < len(s) {
				r, n := utf8.DecodeRuneInString(s[i:])
				if unicode.IsSpace(r) {
					break
				}
				i += n
			}
			out = append(out, token{text: s[start:i], start: start})
			continue
		}
		open := r
		i += n
		var b strings.Builder
		closed := false
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			i += n
			if r == '\\' && i < len(s) && (s[i] == '"' || s[i] == '\\') {
				b.WriteByte(s[i])
				i++
				continue
			}
			if isCloseQuote(open, r) {
				closed = true
				break
			}
			b.WriteRune(r)
		}
		if !closed {
			return nil, badArgs("unterminated quote starting at %q", clip(s[start:], 20))
		}
		out = append(out, token{text: b.String(), start: start, quoted: true})
	}
	return out, nil
}

// clip shortens s to about n bytes for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// splitArgs returns the positional arguments (up to and including the
// first Rest argument) and the keyword-only ones: arguments declared after
// a Rest argument are written name=value in chat, before the rest of the
// line starts.
func splitArgs(args []plugins.Arg) (pos, kw []plugins.Arg) {
	for i, a := range args {
		pos = append(pos, a)
		if a.Rest {
			return pos, args[i+1:]
		}
	}
	return pos, nil
}

// parseLine reads a chat command's arguments (the line after the
// command's name) into values, defaults filled, each checked by kind.
// max bounds an argument without its own Max.
func parseLine(cmd *plugins.Command, line string, max int) (map[string]string, error) {
	toks, err := tokenize(line)
	if err != nil {
		return nil, err
	}
	pos, kw := splitArgs(cmd.Args)
	vals := make(map[string]string, len(cmd.Args))
	given := make(map[string]bool, len(cmd.Args))
	ti := 0
	for _, a := range pos {
		// Keyword arguments may come before any positional one.
		for ti < len(toks) && len(kw) > 0 {
			k, v, ok := keyword(toks[ti], kw)
			if !ok {
				break
			}
			if given[k] {
				return nil, badArgs("%s= given twice", k)
			}
			vals[k], given[k] = v, true
			ti++
		}
		if ti >= len(toks) {
			break
		}
		if a.Rest {
			rest := strings.TrimSpace(line[toks[ti].start:])
			if ti == len(toks)-1 && toks[ti].quoted {
				rest = toks[ti].text
			}
			vals[a.Name], given[a.Name] = rest, true
			ti = len(toks)
			break
		}
		vals[a.Name], given[a.Name] = toks[ti].text, true
		ti++
	}
	for ; ti < len(toks); ti++ {
		k, v, ok := keyword(toks[ti], kw)
		if !ok {
			return nil, badArgs("too many arguments: %q", clip(toks[ti].text, 40))
		}
		if given[k] {
			return nil, badArgs("%s= given twice", k)
		}
		vals[k], given[k] = v, true
	}
	return finishValues(cmd.Args, vals, given, max)
}

// keyword reads a name=value token naming a keyword-only argument.
func keyword(t token, kw []plugins.Arg) (name, value string, ok bool) {
	if t.quoted {
		return "", "", false
	}
	name, value, ok = strings.Cut(t.text, "=")
	if !ok {
		return "", "", false
	}
	for _, a := range kw {
		if a.Name == name {
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			return name, value, true
		}
	}
	return "", "", false
}

// finishValues checks the given values, reports a missing required
// argument and fills the defaults.
func finishValues(args []plugins.Arg, vals map[string]string, given map[string]bool, max int) (map[string]string, error) {
	for i := range args {
		a := &args[i]
		v, ok := vals[a.Name]
		if !ok || (v == "" && !given[a.Name]) {
			if a.Required {
				return nil, badArgs("missing %s", placeholder(a))
			}
			if a.Default != "" {
				vals[a.Name] = a.Default
			}
			continue
		}
		if v == "" && a.Required {
			return nil, badArgs("missing %s", placeholder(a))
		}
		nv, err := checkValue(a, v, max)
		if err != nil {
			return nil, err
		}
		vals[a.Name] = nv
	}
	return vals, nil
}

// checkValue checks one value against its argument's kind and size, and
// returns it in canonical form (a boolean as "true"/"false", a list option
// as declared, a JID as mellium writes it).
func checkValue(a *plugins.Arg, v string, max int) (string, error) {
	limit := max
	if a.Max > 0 {
		limit = a.Max
	}
	if len(v) > limit {
		return "", &argError{reason: reasonTooBig, msg: fmt.Sprintf("%s is %d bytes; the limit is %d", a.Name, len(v), limit)}
	}
	if !utf8.ValidString(v) {
		return "", badArgs("%s is not valid UTF-8", a.Name)
	}
	switch a.Kind {
	case plugins.ArgBool:
		switch strings.ToLower(v) {
		case "1", "true", "yes", "on":
			return "true", nil
		case "0", "false", "no", "off":
			return "false", nil
		}
		return "", badArgs("%s: %q is not yes or no", a.Name, clip(v, 40))
	case plugins.ArgList:
		for _, o := range a.Options {
			if strings.EqualFold(o, v) {
				return o, nil
			}
		}
		return "", badArgs("%s: %q is not one of %s", a.Name, clip(v, 40), strings.Join(a.Options, ", "))
	case plugins.ArgJID:
		j, err := jid.Parse(v)
		if err != nil || j.Domainpart() == "" {
			return "", badArgs("%s: %q is not a JID", a.Name, clip(v, 40))
		}
		return j.String(), nil
	case plugins.ArgDuration:
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return "", badArgs("%s: %q is not a duration such as 10m or 2h", a.Name, clip(v, 40))
		}
		return d.String(), nil
	case plugins.ArgInt:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return "", badArgs("%s: %q is not a whole number", a.Name, clip(v, 40))
		}
	}
	return v, nil
}

// placeholder is an argument as usage shows it: ROOM, or type=chat|headline
// for a keyword-only one.
func placeholder(a *plugins.Arg) string {
	p := strings.ToUpper(a.Name)
	if a.Kind == plugins.ArgList && len(a.Options) > 0 && len(a.Options) <= 6 {
		p = strings.Join(a.Options, "|")
	}
	if a.Rest {
		p += "..."
	}
	return p
}

// usage is the command's synopsis: "join ROOM [NICK]".
func usage(prefix string, cmd *plugins.Command) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString(cmd.Name)
	pos, kw := splitArgs(cmd.Args)
	for i := range kw {
		b.WriteString(" [" + kw[i].Name + "=" + placeholder(&kw[i]) + "]")
	}
	for i := range pos {
		p := placeholder(&pos[i])
		if !pos[i].Required {
			p = "[" + p + "]"
		}
		b.WriteString(" " + p)
	}
	return b.String()
}
