package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"crier/rules"
)

// MaxRendered bounds what one template may render; longer output is cut.
const MaxRendered = 64 << 10

// DefaultJSONTemplate renders a JSON payload without a template of its
// own: "[SEVERITY] title", then the body, then the URL, each on its own
// line.
const DefaultJSONTemplate = `{{with .Severity}}[{{upper .}}] {{end}}{{.Title}}` +
	`{{if and .Title .Body}}{{"\n"}}{{end}}{{.Body}}{{with .URL}}{{"\n"}}{{.}}{{end}}`

// DefaultTextTemplate renders a text payload as it is.
const DefaultTextTemplate = `{{.Text}}`

// Funcs returns the side-effect-free function set payload templates may
// call: the rules' set (upper, lower, truncate, join, now, default), with
// default taking any payload field, plus trim and json. Each call returns
// a new map.
func Funcs() template.FuncMap {
	f := rules.TemplateFuncs(time.Now)
	f["trim"] = strings.TrimSpace
	// default returns def when v is empty.
	f["default"] = func(def string, v any) string {
		s := FieldText(v)
		if s == "" {
			return def
		}
		return s
	}
	// json returns v as compact JSON.
	f["json"] = func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	}
	return f
}

// Render executes t, keeping at most MaxRendered bytes and trimming
// surrounding space. A field the data lacks renders as nothing rather than
// as "<no value>", invalid UTF-8 is dropped, and a panic in a template
// function becomes an error.
func Render(t *template.Template, data any) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	var buf bytes.Buffer
	if err := t.Execute(&rules.LimitWriter{Buf: &buf, Left: MaxRendered}, data); err != nil {
		return "", err
	}
	s := strings.ReplaceAll(buf.String(), "<no value>", "")
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	return strings.TrimSpace(s), nil
}
