package webhooks

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"crier/internal/payload"
)

// FuzzParse feeds arbitrary bodies to every format: parse never panics, a
// body it accepts renders with the default templates, and no rendered
// label or summary line carries a control character.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"am_firing.json", "am_mixed.json", "am_resolved.json", "grafana.json", "json_basic.json", "text_basic.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"a":"\u202e\u0000"}}]}`))
	hooks := map[string]*hook{}
	for _, format := range []string{FormatAlertmanager, FormatJSON, FormatText} {
		h, err := newHook(Webhook{Path: "/f", Format: format, To: []string{"a@example.org"}}, nil)
		if err != nil {
			f.Fatal(err)
		}
		hooks[format] = h
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for format, h := range hooks {
			n, err := parse(format, data, http.Header{})
			if err != nil {
				continue
			}
			var out string
			switch format {
			case FormatAlertmanager:
				if n.key == "" || len(n.group.Alerts) == 0 {
					t.Fatalf("accepted an alertmanager body without key or alerts: %q", data)
				}
				out, err = payload.Render(h.defBody, newMessages(*n.group, n.group.Alerts, 20, "/f", "a@example.org"))
			case FormatJSON:
				pl := n.payload
				out, err = payload.Render(h.defBody, JSONData{Title: pl.Title, Body: pl.Body, Severity: pl.Severity, URL: pl.URL, Fields: pl.Fields})
			default:
				out, err = payload.Render(h.defBody, TextData{Text: n.text})
			}
			if err != nil {
				t.Fatalf("%s: default template failed on an accepted body: %v", format, err)
			}
			if format == FormatAlertmanager {
				for _, line := range strings.Split(out, "\n") {
					if strings.ContainsFunc(line, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
						t.Fatalf("control character in %q", line)
					}
				}
			}
		}
	})
}
