package natsrelay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"crier/rules"
)

// maxRendered bounds what one template may render; longer output is cut.
const maxRendered = 64 << 10

// DefaultJSONTemplate renders a JSON payload without a template of its
// own: "[SEVERITY] title", then the body, then the URL, each on its own
// line. The webhooks plugin renders its "json" format with it too.
const DefaultJSONTemplate = `{{with .Severity}}[{{upper .}}] {{end}}{{.Title}}` +
	`{{if and .Title .Body}}{{"\n"}}{{end}}{{.Body}}{{with .URL}}{{"\n"}}{{.}}{{end}}`

// defaultTextTemplate renders a text payload as it is.
const defaultTextTemplate = `{{.Text}}`

// Data is what a relay template sees.
type Data struct {
	// NATSSubject is the subject the message was published on.
	NATSSubject string
	// Header is the NATS message header.
	Header nats.Header
	// Time is when JetStream stored the message, or when it arrived.
	Time time.Time
	// Text is the whole payload.
	Text string
	// Title and Subject are both the payload's title (JSON "title" or
	// "subject").
	Title   string
	Subject string
	// Body, Type, Severity, URL, ID and To are the payload's fields of
	// those names (see Payload).
	Body     string
	Type     string
	Severity string
	URL      string
	ID       string
	To       []string
	// Fields is the whole JSON object, for fields of any other name:
	// {{index .Fields "host"}}.
	Fields map[string]any
}

// funcs is the side-effect-free function set templates may call: the
// rules' set (upper, lower, truncate, join, now, default), with default
// taking any payload field, plus trim and json.
var funcs = func() template.FuncMap {
	f := rules.TemplateFuncs(time.Now)
	f["trim"] = strings.TrimSpace
	// default returns def when v is empty.
	f["default"] = func(def string, v any) string {
		s := fieldText(v)
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
}()

// TemplateFuncs returns a copy of the function set relay templates may
// call, for other plugins whose templates read the same payloads.
func TemplateFuncs() template.FuncMap { return maps.Clone(funcs) }

// Render executes t as a relay template is executed: output cut at 64 KiB,
// "<no value>" removed, invalid UTF-8 dropped, surrounding space trimmed,
// and a panic in a template function returned as an error.
func Render(t *template.Template, data any) (string, error) { return render(t, data) }

// parseTemplate parses src; an empty src means the default of format.
// The template is run once on sample data so that a misspelt field is an
// error at load time rather than a dead letter later.
func parseTemplate(name, src, format string) (*template.Template, error) {
	if src == "" {
		src = defaultTextTemplate
		if format == FormatJSON {
			src = DefaultJSONTemplate
		}
	}
	t, err := template.New(name).Funcs(funcs).Parse(src)
	if err != nil {
		return nil, err
	}
	sample := Data{
		NATSSubject: "a.b", Header: nats.Header{"X": {"y"}}, Time: time.Unix(0, 0),
		Text: "text", Title: "title", Subject: "title", Body: "body", Type: "headline",
		Severity: "info", URL: "https://example.org/", ID: "1", To: []string{"a@example.org"},
		Fields: map[string]any{"title": "title"},
	}
	if _, err := render(t, sample); err != nil {
		return nil, err
	}
	return t, nil
}

// render executes t, keeping at most maxRendered bytes and trimming
// surrounding space. A panic in a template function becomes an error.
func render(t *template.Template, data any) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	var buf bytes.Buffer
	if err := t.Execute(&rules.LimitWriter{Buf: &buf, Left: maxRendered}, data); err != nil {
		return "", err
	}
	// A field the payload lacks renders as nothing rather than as the
	// template package's "<no value>".
	s := strings.ReplaceAll(buf.String(), "<no value>", "")
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	return strings.TrimSpace(s), nil
}

// isLetterOrDigit reports whether r is a Unicode letter or digit.
func isLetterOrDigit(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
