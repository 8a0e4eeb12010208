package config

import (
	"sort"
	"strconv"
	"strings"
)

// lineIndex maps the key paths of a TOML document to the 1-based line where
// each is first written. The TOML decoder keeps positions to itself, so this
// small scanner recovers them.
//
// Paths join key parts with dots and add a 0-based index to each element of
// an array: "xmpp.jid", "rules[2]" (the line of the third [[rules]] header),
// "rules[2].match", "embedded.accounts[0].jid". Elements of an inline array
// are indexed the same way ("to[1]", "rooms[0].nick").
//
// The scanner is best-effort: on text it does not understand it skips to the
// end of the line, and it never fails. The decoder reports syntax errors.
type lineIndex struct {
	lines map[string]int
	// elems holds, for each array element path ("rules[2]"), the lines of
	// the paths below it, keyed relative to it.
	elems map[string]map[string]int
}

// line returns the line of path, or 0 when it was not seen.
func (x lineIndex) line(path string) int { return x.lines[path] }

// under returns the lines of every path below prefix, keyed relative to it:
// under("rules[0]") gives {"match": 7, "actions[0].reply": 9}.
func (x lineIndex) under(prefix string) map[string]int {
	out := make(map[string]int)
	if strings.HasSuffix(prefix, "]") {
		// The common case, precomputed: a scan per element would make a
		// file with many [[rules]] quadratic.
		for k, l := range x.elems[prefix] {
			out[k] = l
		}
		return out
	}
	p := prefix + "."
	for k, l := range x.lines {
		if rel, ok := strings.CutPrefix(k, p); ok {
			out[rel] = l
		}
	}
	return out
}

// groupElems fills x.elems from x.lines.
func (x *lineIndex) groupElems() {
	x.elems = make(map[string]map[string]int)
	for path, l := range x.lines {
		for i := 0; i+2 < len(path); i++ {
			if path[i] != ']' || path[i+1] != '.' {
				continue
			}
			elem := path[:i+1]
			m := x.elems[elem]
			if m == nil {
				m = make(map[string]int)
				x.elems[elem] = m
			}
			m[path[i+2:]] = l
		}
	}
}

// indexLines scans src and returns its line index.
func indexLines(src []byte) lineIndex {
	s := &lineScanner{
		src:   src,
		lines: make(map[string]int),
		aot:   make(map[string]int),
	}
	for i, c := range src {
		if c == '\n' {
			s.nl = append(s.nl, i)
		}
	}
	s.run()
	x := lineIndex{lines: s.lines}
	x.groupElems()
	return x
}

// lineScanner walks a TOML document once, recording where keys stand.
type lineScanner struct {
	src   []byte
	i     int
	nl    []int          // offsets of every '\n', to turn an offset into a line
	lines map[string]int // path -> first line
	aot   map[string]int // indexed path of an array of tables -> elements so far
	table string         // indexed path of the current [table]
}

// lineAt returns the 1-based line of byte offset off.
func (s *lineScanner) lineAt(off int) int {
	return sort.SearchInts(s.nl, off) + 1
}

// set records the line of path unless it was already seen.
func (s *lineScanner) set(path string, line int) {
	if path == "" {
		return
	}
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = line
	}
}

func (s *lineScanner) eof() bool { return s.i >= len(s.src) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *lineScanner) run() {
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start := s.i
		if s.peek() == '[' {
			s.header()
		} else {
			s.keyval(s.table)
		}
		s.skipLine()
		if s.i == start {
			s.i++
		}
	}
}

// skipSpace skips blanks and comments, and newlines too when nl is set.
func (s *lineScanner) skipSpace(nl bool) {
	for !s.eof() {
		switch c := s.src[s.i]; {
		case c == ' ' || c == '\t' || c == '\r':
			s.i++
		case c == '\n' && nl:
			s.i++
		case c == '#':
			for !s.eof() && s.src[s.i] != '\n' {
				s.i++
			}
		default:
			return
		}
	}
}

// skipLine moves past the end of the current line.
func (s *lineScanner) skipLine() {
	for !s.eof() {
		c := s.src[s.i]
		s.i++
		if c == '\n' {
			return
		}
	}
}

// header reads [a.b] or [[a.b]] and makes it the current table.
func (s *lineScanner) header() {
	line := s.lineAt(s.i)
	s.i++ // '['
	array := s.peek() == '['
	if array {
		s.i++
	}
	parts := s.key()
	if len(parts) == 0 {
		return
	}
	s.skipSpace(false)
	if s.peek() != ']' {
		return
	}
	s.i++
	if array {
		if s.peek() != ']' {
			return
		}
		s.i++
	}
	path := ""
	for n, part := range parts {
		path = join(path, part)
		last := n == len(parts)-1
		if last && array {
			s.set(path, line)
			count := s.aot[path]
			s.aot[path] = count + 1
			// Arrays nested in an element are counted under the element's
			// own indexed path, so each element starts them afresh.
			path += "[" + strconv.Itoa(count) + "]"
			s.lines[path] = line
			break
		}
		if count, ok := s.aot[path]; ok && count > 0 {
			path += "[" + strconv.Itoa(count-1) + "]"
		}
		s.set(path, line)
	}
	s.table = path
}

// keyval reads key = value below prefix, recording the key and, for inline
// tables and arrays, the keys and elements inside.
func (s *lineScanner) keyval(prefix string) {
	line := s.lineAt(s.i)
	parts := s.key()
	if len(parts) == 0 {
		return
	}
	s.skipSpace(false)
	if s.peek() != '=' {
		return
	}
	s.i++
	path := prefix
	for _, part := range parts {
		path = join(path, part)
		s.set(path, line)
	}
	s.skipSpace(false)
	s.value(path)
}

// key reads a possibly dotted, possibly quoted key and returns its parts, or
// nil when there is no key here.
func (s *lineScanner) key() []string {
	var parts []string
	for {
		s.skipSpace(false)
		if s.eof() {
			return parts
		}
		switch c := s.src[s.i]; {
		case c == '"':
			start := s.i
			s.basicString()
			raw := string(s.src[start:s.i])
			if v, err := strconv.Unquote(raw); err == nil {
				parts = append(parts, v)
			} else {
				parts = append(parts, strings.Trim(raw, `"`))
			}
		case c == '\'':
			s.i++
			start := s.i
			for !s.eof() && s.src[s.i] != '\'' && s.src[s.i] != '\n' {
				s.i++
			}
			parts = append(parts, string(s.src[start:s.i]))
			if s.peek() == '\'' {
				s.i++
			}
		case isBare(c):
			start := s.i
			for !s.eof() && isBare(s.src[s.i]) {
				s.i++
			}
			parts = append(parts, string(s.src[start:s.i]))
		default:
			return parts
		}
		s.skipSpace(false)
		if s.peek() != '.' {
			return parts
		}
		s.i++
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value skips one value, recording what an inline table or array holds.
func (s *lineScanner) value(path string) {
	switch s.peek() {
	case '"':
		if s.has(`"""`) {
			s.multiline(`"""`, true)
		} else {
			s.basicString()
		}
	case '\'':
		if s.has(`'''`) {
			s.multiline(`'''`, false)
		} else {
			s.i++
			for !s.eof() && s.src[s.i] != '\'' && s.src[s.i] != '\n' {
				s.i++
			}
			if s.peek() == '\'' {
				s.i++
			}
		}
	case '[':
		s.array(path)
	case '{':
		s.inlineTable(path)
	default:
		// Numbers, booleans and dates: up to a separator.
		for !s.eof() {
			switch s.src[s.i] {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.i++
		}
	}
}

func (s *lineScanner) has(prefix string) bool {
	return strings.HasPrefix(string(s.src[s.i:min(len(s.src), s.i+len(prefix))]), prefix)
}

// basicString skips "...", honouring backslash escapes; it stops at the end
// of the line when the string is not closed.
func (s *lineScanner) basicString() {
	s.i++
	for !s.eof() {
		switch s.src[s.i] {
		case '\\':
			s.i += 2
			continue
		case '"':
			s.i++
			return
		case '\n':
			return
		}
		s.i++
	}
	s.i = min(s.i, len(s.src))
}

// multiline skips a triple-quoted string, basic or literal, which may span
// lines and end with up to two more quote characters.
func (s *lineScanner) multiline(delim string, escapes bool) {
	s.i += len(delim)
	for !s.eof() {
		if escapes && s.src[s.i] == '\\' {
			s.i += 2
			continue
		}
		if s.has(delim) {
			s.i += len(delim)
			for n := 0; n < 2 && s.peek() == delim[0]; n++ {
				s.i++
			}
			return
		}
		s.i++
	}
	s.i = min(s.i, len(s.src))
}

// array skips [ ... ], which may span lines and hold comments, recording the
// line of each element as path[n].
func (s *lineScanner) array(path string) {
	s.i++ // '['
	n := 0
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		switch s.src[s.i] {
		case ']':
			s.i++
			return
		case ',':
			s.i++
			continue
		}
		elem := path + "[" + strconv.Itoa(n) + "]"
		s.set(elem, s.lineAt(s.i))
		start := s.i
		s.value(elem)
		if s.i == start {
			s.i++ // not a value we know; make progress
		}
		n++
	}
}

// inlineTable skips { k = v, ... }, recording each key below path.
func (s *lineScanner) inlineTable(path string) {
	s.i++ // '{'
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		switch s.src[s.i] {
		case '}':
			s.i++
			return
		case ',':
			s.i++
			continue
		case '[', ']':
			return // not valid here; leave it to the decoder
		}
		start := s.i
		s.keyval(path)
		if s.i == start {
			s.i++
		}
	}
}

// join adds a key part to a path.
func join(path, part string) string {
	if path == "" {
		return part
	}
	return path + "." + part
}
