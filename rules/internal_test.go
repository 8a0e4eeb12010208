package rules

import (
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRequiredLiterals(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`^!ping$`, []string{"!ping"}},
		{`(?i)Hello\s+world`, []string{"hello"}},
		{`(?i)kelvins`, []string{"kelvin"}}, // s folds with ſ, which lowers to itself
		{`(?i)s`, nil},                      // s folds with ſ
		{`deploy|release`, []string{"deploy", "release"}},
		{`a*`, nil},
		{`(foo)+bar?`, []string{"foo"}},
		{`x{0,3}yy`, []string{"yy"}},
		{`.*`, nil},
		{`deploy|.`, nil},
	}
	for _, tt := range tests {
		if got := requiredLiterals(tt.expr); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("requiredLiterals(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func TestAutomaton(t *testing.T) {
	a := newAutomaton([]string{"he", "she", "his", "hers", ""})
	type hit struct {
		id         int32
		start, end int
	}
	var got []hit
	a.scan("ushers", func(id int32, s, e int) { got = append(got, hit{id, s, e}) })
	want := []hit{{1, 1, 4}, {0, 2, 4}, {3, 2, 6}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scan = %v, want %v", got, want)
	}
}

func TestFoldAndWords(t *testing.T) {
	tests := []struct {
		text, word string
		want       bool
	}{
		{"Un CAFÉ  noir", "cafe", true},
		{"cafés", "cafe", false},
		{"I love C++!", "c++", true},
		{"abc++", "c++", false},
		{"Good\n morning", "good morning", true},
		{"Ærøskøbing", "ærøskøbing", true},
	}
	for _, tt := range tests {
		if got := containsWord(fold(tt.text), fold(tt.word)); got != tt.want {
			t.Errorf("containsWord(fold(%q), %q) = %v, want %v", tt.text, tt.word, got, tt.want)
		}
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*@example.org", "Alice@Example.org", true},
		{"*@example.org*", "alice@example.org/phone", true},
		{"guest-?", "guest-1", true},
		{"guest-?", "guest-12", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"bob", "BOB", true},
	}
	for _, tt := range tests {
		if got := newGlob(tt.pat).match(tt.s); got != tt.want {
			t.Errorf("glob %q on %q = %v, want %v", tt.pat, tt.s, got, tt.want)
		}
	}
}

func TestAdoptKeepsUnchangedLimiters(t *testing.T) {
	clk := newClock()
	specs := []Spec{
		{Name: "same", Match: "^!a", Rate: "1/1h", Reply: "a"},
		{Name: "changed", Match: "^!b", Rate: "1/1h", Reply: "b"},
	}
	old := mustCompile(t, specs, Options{Now: clk.Now})
	for _, body := range []string{"!a", "!b"} {
		if got := old.Evaluate(groupchat("alice", body)); len(got) != 1 {
			t.Fatalf("first %s: %v", body, got)
		}
	}
	specs[1].Reply = "b2"
	specs[0].Pos.Line = 42 // moving a rule in the file does not change it
	next := mustCompile(t, specs, Options{Now: clk.Now})
	next.Adopt(old)
	if got := next.Evaluate(groupchat("alice", "!a")); len(got) != 0 {
		t.Errorf("unchanged rule lost its bucket: %v", got)
	}
	if got := next.Evaluate(groupchat("alice", "!b")); len(got) != 1 || got[0].Text != "b2" {
		t.Errorf("changed rule should start afresh: %v", got)
	}
	st := next.Stats()
	if st.Hits["same"] != 1 || st.Hits["changed"] != 1 || st.Limited != 1 {
		t.Errorf("stats after adopt = %+v", st)
	}
}

func TestTemplateFailureIsContained(t *testing.T) {
	e := mustCompile(t, []Spec{
		{Name: "bad", Match: `^!x (?P<n>\w+)`, Reply: "{{slice .Groups.n 3}}"},
		{Name: "good", Match: `^!x`, Reply: "fine"},
	}, Options{})
	got := e.Evaluate(groupchat("alice", "!x a"))
	if len(got) != 1 || got[0].Rule != "good" {
		t.Errorf("Evaluate = %+v, want only the good rule", got)
	}
	if st := e.Stats(); st.TemplateErrors != 1 || st.Hits["bad"] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestEvaluateConcurrent(t *testing.T) {
	e := mustCompile(t, append(benchRules(200), Spec{Name: "limited", Match: "^!go", Rate: "50/1h", Reply: "ok"}),
		Options{SenderLimit: Rate{N: 1000, Per: time.Minute}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for range 8 {
		wg.Go(func() {
			for i := range 100 {
				got := e.Evaluate(benchMessages[i%len(benchMessages)])
				if slices.ContainsFunc(e.Evaluate(chat("x@example.org/r", "!go")), func(a Action) bool { return a.Rule == "limited" }) {
					mu.Lock()
					n++
					mu.Unlock()
				}
				_ = got
			}
		})
	}
	wg.Wait()
	if n != 50 {
		t.Errorf("the rate let %d through, want exactly 50", n)
	}
}

func TestPermitted(t *testing.T) {
	tests := []struct {
		kind      ActionKind
		role, aff string
		want      bool
	}{
		{ActKick, "moderator", "none", true},
		{ActKick, "participant", "owner", false},
		{ActBan, "moderator", "member", false},
		{ActBan, "moderator", "admin", true},
		{ActSubject, "participant", "member", false},
		{ActReply, "visitor", "none", true},
	}
	for _, tt := range tests {
		if got := (Action{Kind: tt.kind}).Permitted(tt.role, tt.aff); got != tt.want {
			t.Errorf("%s as %s/%s = %v, want %v", tt.kind, tt.role, tt.aff, got, tt.want)
		}
	}
}
