package rules

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

// maxOutput bounds what one template may render; longer output is cut.
const maxOutput = 64 << 10

// TemplateFuncs is the small, side-effect-free function set templates may
// call: upper, lower, truncate, join, now (with a layout, from the given
// clock) and default. Plugins that render templates start from it.
func TemplateFuncs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"upper": strings.ToUpper,
		"lower": strings.ToLower,
		// truncate keeps the first n runes of s, ending with "…" when it cut.
		"truncate": func(n int, s string) string {
			if n <= 0 {
				return ""
			}
			if utf8.RuneCountInString(s) <= n {
				return s
			}
			i, count := 0, 0
			for j := range s {
				if count == n {
					i = j
					break
				}
				count++
			}
			return s[:i] + "…"
		},
		"join": func(sep string, items []string) string { return strings.Join(items, sep) },
		"now":  func(layout string) string { return now().Format(layout) },
		// default returns def when v is empty.
		"default": func(def string, v string) string {
			if v == "" {
				return def
			}
			return v
		},
	}
}

// tmpl is a compiled template, or a plain string when the source has no
// action (the common case for targets such as "ops@example.org").
type tmpl struct {
	src   string
	plain bool
	t     *template.Template
}

// parseTemplate parses src with the function set.
func parseTemplate(name, src string, funcs template.FuncMap) (tmpl, error) {
	if !strings.Contains(src, "{{") {
		return tmpl{src: src, plain: true}, nil
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(src)
	if err != nil {
		return tmpl{}, err
	}
	return tmpl{src: src, t: t}, nil
}

// empty reports whether the template was not written.
func (t tmpl) empty() bool { return t.src == "" }

// render executes the template. A panic in a template function becomes an
// error so that one bad rule never stops the others.
func (t tmpl) render(data any) (out string, err error) {
	if t.plain {
		return t.src, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	var buf bytes.Buffer
	w := &LimitWriter{Buf: &buf, Left: maxOutput}
	if err := t.t.Execute(w, data); err != nil {
		return "", err
	}
	if w.Left == 0 {
		// The cut may have split a character.
		return strings.ToValidUTF8(buf.String(), ""), nil
	}
	return buf.String(), nil
}

// LimitWriter keeps the first Left bytes in Buf and drops the rest
// silently: a long template output is cut rather than failed.
type LimitWriter struct {
	Buf  *bytes.Buffer
	Left int
}

// Write keeps what fits and reports every byte as written.
func (w *LimitWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > w.Left {
		p = p[:w.Left]
	}
	w.Left -= len(p)
	w.Buf.Write(p)
	return n, nil
}
