package natsrelay

import (
	"text/template"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"

	"crier/internal/payload"
)

// defaultJSONTemplate renders a JSON payload without a template of its own:
// "[SEVERITY] title", then the body, then the URL, each on its own line.
const defaultJSONTemplate = payload.DefaultJSONTemplate

// defaultTextTemplate renders a text payload as it is.
const defaultTextTemplate = payload.DefaultTextTemplate

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

// funcs is the side-effect-free function set templates may call (see
// payload.Funcs).
var funcs = payload.Funcs()

// parseTemplate parses src; an empty src means the default of format.
// The template is run once on sample data so that a misspelt field is an
// error at load time rather than a dead letter later.
func parseTemplate(name, src, format string) (*template.Template, error) {
	if src == "" {
		src = defaultTextTemplate
		if format == FormatJSON {
			src = defaultJSONTemplate
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

// render executes t as every payload template is executed (see
// payload.Render).
func render(t *template.Template, data any) (string, error) { return payload.Render(t, data) }

// isLetterOrDigit reports whether r is a Unicode letter or digit.
func isLetterOrDigit(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
