package rules

import (
	"regexp"
	"testing"
)

// FuzzCompile feeds arbitrary regexes, keywords and templates to Compile
// and evaluates the result: nothing may panic, and the literal prefilter
// must never hide a message the regex matches.
func FuzzCompile(f *testing.F) {
	f.Add("^!ping$", "pong {{.Nick}}", "café", "!ping")
	f.Add(`(?i)hello\s+(?P<who>\w+)`, "{{.Groups.who}}", "", "HELLO world")
	f.Add(`(?i)ſtop|kelvin`, "x", "stop", "STOP ſtop")
	f.Add(`a{2,}b|(cd)+`, "{{index .Match 1}}", "c++", "aab cdcd")
	f.Add(`\x{FFFD}`, "{{truncate 3 .Body}}", "", "\xff")
	f.Fuzz(func(t *testing.T, expr, reply, keyword, body string) {
		spec := Spec{Name: "r", Match: expr, Reply: reply}
		if keyword != "" {
			spec.Keywords = []string{keyword}
		}
		e, errs := Compile([]Spec{spec, {Name: "plain", Match: expr, Reply: "x"}}, Options{})
		if e == nil {
			if len(errs) == 0 {
				t.Fatal("no engine and no error")
			}
			return
		}
		m := groupchat("alice", body)
		got := e.Evaluate(m)
		re := regexp.MustCompile(expr)
		matched := false
		for _, a := range got {
			if a.Rule == "plain" {
				matched = true
			}
		}
		if want := re.MatchString(body); matched != want {
			t.Errorf("regex %q on %q: engine matched %v, regexp %v", expr, body, matched, want)
		}
	})
}

// FuzzTemplate renders arbitrary templates against arbitrary bodies: a
// template either fails to compile or renders (or fails) without panic.
func FuzzTemplate(f *testing.F) {
	f.Add("{{.Body | upper}}", "hi")
	f.Add("{{slice .Body 3}}", "a")
	f.Add("{{index .Match 0 | truncate 2}} {{now \"15:04\"}}", "hello")
	f.Add("{{range .Match}}{{.}}{{end}}", "x")
	f.Add("{{join \", \" .Match}}{{default \"d\" .RealJID}}", "x")
	f.Fuzz(func(t *testing.T, tpl, body string) {
		e, errs := Compile([]Spec{{Name: "t", Match: "(.*)", Reply: tpl}, {Name: "after", Match: "(.*)", Reply: "ok"}}, Options{})
		if e == nil {
			if len(errs) == 0 {
				t.Fatal("no engine and no error")
			}
			return
		}
		got := e.Evaluate(chat("bob@example.org/x", body))
		if len(got) == 0 || got[len(got)-1].Rule != "after" {
			t.Errorf("the rule after a template must still run, got %+v", got)
		}
		for _, a := range got {
			if len(a.Text) > maxOutput {
				t.Errorf("output of %d bytes exceeds the limit", len(a.Text))
			}
		}
	})
}
