package natsrelay

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParsePayload(t *testing.T) {
	tests := []struct {
		name, format, data string
		max                int
		want               Payload
		reason             string
	}{
		{name: "text", format: FormatText, data: "hello\n", want: Payload{Text: "hello\n", Body: "hello\n"}},
		{name: "text that looks like JSON", format: "", data: "{", want: Payload{Text: "{", Body: "{"}},
		{name: "json fields", format: FormatJSON,
			data: `{"title":"T","body":"B","to":"a@b","type":"chat","severity":"high","url":"u","id":12}`,
			want: Payload{Title: "T", Body: "B", To: []string{"a@b"}, Type: "chat", Severity: "high", URL: "u", ID: "12"}},
		{name: "json aliases", format: FormatJSON, data: `{"subject":"S","text":"X","to":["a@b","c@d"]}`,
			want: Payload{Title: "S", Body: "X", To: []string{"a@b", "c@d"}}},
		{name: "json message alias and object body", format: FormatJSON, data: `{"message":{"k":[1,true]}}`,
			want: Payload{Body: `{"k":[1,true]}`}},
		{name: "oversized", format: FormatText, data: "12345", max: 4, reason: ReasonOversized},
		{name: "exactly max", format: FormatText, data: "1234", max: 4, want: Payload{Text: "1234", Body: "1234"}},
		{name: "invalid utf-8", format: FormatText, data: "a\xc3", reason: ReasonInvalidUTF8},
		{name: "invalid json", format: FormatJSON, data: `{"a":`, reason: ReasonInvalidJSON},
		{name: "json array", format: FormatJSON, data: `[1]`, reason: ReasonInvalidJSON},
		{name: "json null", format: FormatJSON, data: `null`, reason: ReasonInvalidJSON},
		{name: "two objects", format: FormatJSON, data: `{} {}`, reason: ReasonInvalidJSON},
		{name: "bad to", format: FormatJSON, data: `{"to":[1]}`, reason: ReasonInvalidField},
		{name: "bad type", format: FormatJSON, data: `{"type":"shout"}`, reason: ReasonInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePayload([]byte(tt.data), tt.format, tt.max)
			if tt.reason != "" {
				var pe *PayloadError
				if !errors.As(err, &pe) || pe.Reason != tt.reason {
					t.Fatalf("err = %v, want reason %s", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Fields = nil
			if tt.want.Text == "" {
				tt.want.Text = tt.data
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{`{"title":"t","body":"b","to":["a@b"],"id":1}`, "plain", `{"to":5}`, "\xff", `[]`, `{"a":{"b":[null]}}`} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		format := FormatText
		if isJSON {
			format = FormatJSON
		}
		const max = 1 << 10
		p, err := ParsePayload(data, format, max)
		if err != nil {
			var pe *PayloadError
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if len(data) > max || !utf8.Valid(data) {
			t.Fatalf("accepted %q", data)
		}
		for _, s := range append([]string{p.Text, p.Title, p.Body, p.Type, p.Severity, p.URL, p.ID}, p.To...) {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in %q", s)
			}
		}
		if p.Type != "" && !messageTypes[p.Type] {
			t.Fatalf("type %q accepted", p.Type)
		}
		if !isJSON && p.Body != string(data) {
			t.Fatalf("text body %q != payload", p.Body)
		}
	})
}

func TestSanitizeToken(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "_",
		"lobby":                  "lobby",
		"al.ice *>":              "al_ice___",
		"Zoë-1_x":                "Zoë-1_x",
		"tab\there\x00":          "tab_here_",
		strings.Repeat("a", 100): strings.Repeat("a", 64),
	} {
		got := SanitizeToken(in)
		if got != want {
			t.Errorf("SanitizeToken(%q) = %q, want %q", in, got, want)
		}
		if !publishSubject(got) {
			t.Errorf("%q is not a subject token", got)
		}
	}
}

func TestSubjects(t *testing.T) {
	for s, want := range map[string][2]bool{ // publish, subscribe
		"a.b":   {true, true},
		"a.*":   {false, true},
		"a.>":   {false, true},
		">":     {false, true},
		"a.>.b": {false, false},
		"a..b":  {false, false},
		"a b":   {false, false},
		"":      {false, false},
		"a.b*":  {false, false},
	} {
		if got := [2]bool{publishSubject(s), subscribeSubject(s)}; got != want {
			t.Errorf("%q: publish, subscribe = %v, want %v", s, got, want)
		}
	}
}

func TestTemplateFunctions(t *testing.T) {
	tm, err := parseTemplate("t", `{{truncate 3 .Body}}|{{default "none" .Severity}}|{{join "," .To}}|{{json .Fields}}|{{.Fields.absent}}|{{lower .Title}}`, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	got, err := render(tm, Data{Body: "abcdef", Title: "T", To: []string{"a", "b"}, Fields: map[string]any{"k": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `abc…|none|a,b|{"k":1}||t`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := parseTemplate("t", `{{.Nope}}`, FormatText); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestParsePayloadFile(t *testing.T) {
	data, err := os.ReadFile("testdata/alert.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePayload(data, FormatJSON, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Title != "Disk full" || p.Severity != "warning" || p.ID != "disk-db1-1" || p.Fields["host"] != "db1" {
		t.Errorf("payload = %+v", p)
	}
	tm, err := parseTemplate("t", "", FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	got, err := render(tm, Data{Title: p.Title, Body: p.Body, Severity: p.Severity, URL: p.URL})
	if want := "[WARNING] Disk full\n95% used on /var\nhttps://grafana.example.org/d/disk"; err != nil || got != want {
		t.Errorf("rendered %q, %v; want %q", got, err, want)
	}
}
