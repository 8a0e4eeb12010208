package payload

import (
	"errors"
	"strings"
	"testing"
	"text/template"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		data, format, reason string
		max                  int
	}{
		{`{"title":"t"}`, FormatJSON, "", 0},
		{`hello`, FormatText, "", 0},
		{`[1]`, FormatJSON, ReasonInvalidJSON, 0},
		{`{} {}`, FormatJSON, ReasonInvalidJSON, 0},
		{`{"type":"shout"}`, FormatJSON, ReasonInvalidField, 0},
		{`{"to":[1]}`, FormatJSON, ReasonInvalidField, 0},
		{"\xff", FormatText, ReasonInvalidUTF8, 0},
		{`0123456789`, FormatText, ReasonOversized, 5},
	} {
		_, err := Parse([]byte(c.data), c.format, c.max)
		var pe *Error
		switch {
		case c.reason == "" && err != nil:
			t.Errorf("Parse(%q) = %v", c.data, err)
		case c.reason != "" && (!errors.As(err, &pe) || pe.Reason != c.reason):
			t.Errorf("Parse(%q) = %v, want reason %s", c.data, err, c.reason)
		}
	}
}

func TestRender(t *testing.T) {
	p, err := Parse([]byte(`{"title":"Disk full","body":"95% on db1","severity":"warn","n":3}`), FormatJSON, 0)
	if err != nil {
		t.Fatal(err)
	}
	tm := template.Must(template.New("x").Funcs(Funcs()).Parse(DefaultJSONTemplate + `{{index .Fields "missing"}} {{default "none" (index .Fields "n")}}`))
	got, err := Render(tm, p)
	if err != nil || got != "[WARN] Disk full\n95% on db1 3" {
		t.Errorf("Render = %q, %v", got, err)
	}
	panics := template.Must(template.New("p").Funcs(template.FuncMap{"boom": func() string { panic("x") }}).Parse(`{{boom}}`))
	if _, err := Render(panics, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a panicking function: %v", err)
	}
	long := template.Must(template.New("l").Parse(`{{range .}}xxxxxxxxxx{{end}}`))
	if out, _ := Render(long, make([]int, MaxRendered)); len(out) != MaxRendered {
		t.Errorf("output of %d bytes, want it cut at %d", len(out), MaxRendered)
	}
}
