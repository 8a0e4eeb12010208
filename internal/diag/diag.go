// Package diag holds the positioned error type shared by everything that
// reports problems in a user's files: config loading, rule compilation and
// `crier check`.
//
// A List collects every problem at once so that a user sees all of them in one
// run, each printed as FILE:LINE: message.
package diag

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem at a place in a file. Line is 1-based; 0 means the
// whole file.
type Error struct {
	File string
	Line int
	Msg  string
}

// Error formats e as FILE:LINE: message (FILE: message without a line).
func (e Error) Error() string {
	switch {
	case e.File == "":
		return e.Msg
	case e.Line <= 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	default:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
}

// Pos records where a table of a config file starts and where each of its
// keys stands, so that code validating the table later can name the line.
type Pos struct {
	File string
	Line int            // line of the table header ([[rules]]), or of the inline table
	Keys map[string]int // key name -> line
}

// At returns an Error at the line of key (or of the table when the key was
// not written in the file).
func (p Pos) At(key, format string, args ...any) Error {
	line := p.Line
	if l, ok := p.Keys[key]; ok && l > 0 {
		line = l
	}
	return Error{File: p.File, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// List is a set of problems. A nil or empty List is no error; use Err to
// turn a List into an error value.
type List []Error

// Add appends an error.
func (l *List) Add(e Error) { *l = append(*l, e) }

// Addf appends an error at file:line.
func (l *List) Addf(file string, line int, format string, args ...any) {
	*l = append(*l, Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Merge appends every error of other.
func (l *List) Merge(other List) { *l = append(*l, other...) }

// Sort orders the list by file and line, keeping the order of errors on the
// same line.
func (l List) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].File != l[j].File {
			return l[i].File < l[j].File
		}
		return l[i].Line < l[j].Line
	})
}

// Error prints one problem a line.
func (l List) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns nil for an empty list, else the sorted list as an error.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	l.Sort()
	return l
}
