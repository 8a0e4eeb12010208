package webhooks

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/template"
	"time"

	"crier/internal/payload"
)

// The default templates of each format. They read well in a chat client:
// a headline with the counts, one line per alert, then one link.
const (
	defaultAlertsBody = `{{define "alert"}}- {{with .Labels.instance}}{{.}}: {{end}}{{.Summary}}{{end}}` +
		`{{.Headline}}
{{range .Firing}}{{template "alert" .}}
{{end}}{{if and .Firing .Resolved}}Resolved:
{{end}}{{range .Resolved}}{{template "alert" .}}
{{end}}{{with .More}}… and {{.}} more
{{end}}{{with .Link}}{{.}}{{end}}`
	defaultAlertsSubject = `{{.Headline}}`
	defaultTextBody      = `{{.Text}}`
	defaultJSONSubject   = `{{.Title}}`
)

// Messages is what an "alertmanager" template sees: the notification's
// group with the alerts that go to this message's recipient.
type Messages struct {
	Group
	// Alerts are the alerts of this message (routing may give other
	// recipients other alerts); Firing and Resolved split them, at most
	// max_alerts in all.
	Alerts, Firing, Resolved []Alert
	// More is how many alerts were left out (max_alerts, or by the
	// sender).
	More int
	// Headline is "[FIRING:2, RESOLVED:1] Name (severity)".
	Headline string
	// Name is the common alertname, or the names of the alerts.
	Name string
	// Severity is the common severity, or the highest of the alerts.
	Severity string
	// Link is the alert's generator URL when there is one alert, else
	// Alertmanager's external URL.
	Link string
	// Path is the webhook's path; To the recipient.
	Path, To string
}

// JSONData is what a "json" template sees: the NATS relay's payload
// fields (see payload.Payload).
type JSONData struct {
	Text, Title, Subject, Body, Type, Severity, URL, ID string
	To                                                  []string
	Fields                                              map[string]any
	Path                                                string
	Header                                              http.Header
}

// TextData is what a "text" template sees.
type TextData struct {
	Text   string
	Path   string
	Header http.Header
}

// subjectError marks a problem of the subject template.
type subjectError struct{ err error }

func (e subjectError) Error() string { return "subject: " + e.err.Error() }
func (e subjectError) Unwrap() error { return e.err }

func tmplErrIsSubject(err error) bool {
	var se subjectError
	return errors.As(err, &se)
}

// parseTemplates parses the body and subject templates of a webhook (an
// empty one is the format's default) and the defaults, and runs each once
// on sample data so that a misspelt field is an error at load time. It
// returns body, subject, default body, default subject.
func parseTemplates(format, body, subject string) ([4]*template.Template, error) {
	var out [4]*template.Template
	defBody, defSubj := defaultAlertsBody, defaultAlertsSubject
	switch format {
	case FormatJSON:
		defBody, defSubj = payload.DefaultJSONTemplate, defaultJSONSubject
	case FormatText:
		defBody, defSubj = defaultTextBody, ""
	}
	if body == "" {
		body = defBody
	}
	if subject == "" {
		subject = defSubj
	}
	srcs := [4]string{body, subject, defBody, defSubj}
	sample := sampleData(format)
	for i, src := range srcs {
		t, err := template.New(format).Funcs(payload.Funcs()).Parse(src)
		if err == nil {
			_, err = payload.Render(t, sample)
		}
		if err != nil {
			if i == 1 || i == 3 {
				return out, subjectError{err}
			}
			return out, err
		}
		out[i] = t
	}
	return out, nil
}

// sampleData is the data templates are tried on when they are parsed.
func sampleData(format string) any {
	switch format {
	case FormatJSON:
		return JSONData{Text: "{}", Title: "t", Subject: "t", Body: "b", Type: "headline", Severity: "info",
			URL: "https://example.org/", ID: "1", To: []string{"a@example.org"}, Fields: map[string]any{"title": "t"},
			Path: "/hook", Header: http.Header{"X": {"y"}}}
	case FormatText:
		return TextData{Text: "text", Path: "/hook", Header: http.Header{"X": {"y"}}}
	}
	a := Alert{Status: "firing", Labels: KV{"alertname": "A", "severity": "critical", "instance": "i"},
		Annotations: KV{"summary": "s"}, StartsAt: time.Unix(0, 0), GeneratorURL: "https://example.org/g",
		Fingerprint: "f", Name: "A", Severity: "critical", Summary: "s"}
	g := Group{Receiver: "r", Status: "firing", GroupKey: "{}:{}", ExternalURL: "https://example.org/",
		GroupLabels: KV{"alertname": "A"}, CommonLabels: KV{"alertname": "A"}, CommonAnnotations: KV{}, Alerts: []Alert{a}}
	return newMessages(g, g.Alerts, 20, "/hook", "a@example.org")
}

// newMessages builds the template data of the alerts of g that go to one
// recipient, listing at most maxList of them (firing first).
func newMessages(g Group, alerts []Alert, maxList int, path, to string) Messages {
	m := Messages{Group: g, Path: path, To: to, More: g.TruncatedAlerts}
	var firing, resolved []Alert
	for _, a := range alerts {
		if a.Status == "firing" {
			firing = append(firing, a)
		} else {
			resolved = append(resolved, a)
		}
	}
	nf, nr := len(firing), len(resolved)
	if len(firing) > maxList {
		m.More += len(firing) - maxList
		firing = firing[:maxList]
	}
	if left := maxList - len(firing); len(resolved) > left {
		m.More += len(resolved) - left
		resolved = resolved[:left]
	}
	m.Firing, m.Resolved = firing, resolved
	m.Alerts = append(append([]Alert{}, firing...), resolved...)
	m.Name = g.CommonLabels["alertname"]
	if m.Name == "" {
		var names []string
		seen := map[string]bool{}
		for _, a := range alerts {
			if a.Name != "" && !seen[a.Name] {
				seen[a.Name] = true
				names = append(names, a.Name)
			}
		}
		switch {
		case len(names) > 3:
			m.Name = strings.Join(names[:3], ", ") + fmt.Sprintf(" and %d more", len(names)-3)
		case len(names) > 0:
			m.Name = strings.Join(names, ", ")
		default:
			m.Name = firstOf(g.Title, g.Receiver)
		}
	}
	m.Severity = g.CommonLabels["severity"]
	if m.Severity == "" {
		best := -1
		for _, a := range alerts {
			if r := severityRank(a.Severity); a.Severity != "" && r > best {
				best, m.Severity = r, a.Severity
			}
		}
	}
	var counts []string
	if nf > 0 {
		counts = append(counts, fmt.Sprintf("FIRING:%d", nf))
	}
	if nr > 0 {
		counts = append(counts, fmt.Sprintf("RESOLVED:%d", nr))
	}
	m.Headline = "[" + strings.Join(counts, ", ") + "] " + m.Name
	if m.Severity != "" {
		m.Headline += " (" + m.Severity + ")"
	}
	if len(alerts) == 1 {
		a := alerts[0]
		m.Link = firstOf(a.PanelURL, a.DashboardURL, a.GeneratorURL)
	}
	if m.Link == "" {
		m.Link = g.ExternalURL
	}
	return m
}

// severityRank orders the usual severity names, unknown ones lowest.
func severityRank(s string) int {
	switch strings.ToLower(s) {
	case "critical", "page", "fatal", "emergency":
		return 5
	case "error", "high", "major":
		return 4
	case "warning", "warn", "medium", "minor":
		return 3
	case "info", "low", "notice":
		return 2
	case "none", "debug":
		return 1
	}
	return 0
}
