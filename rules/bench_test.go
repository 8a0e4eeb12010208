package rules

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var benchWords = []string{
	"deploy", "outage", "coffee", "release", "pizza", "meeting", "standup", "database", "latency", "backup",
	"invoice", "holiday", "weather", "football", "kernel", "compiler", "firewall", "printer", "badge", "parking",
}

// benchRules builds n rules in a realistic mix: keyword rules, command
// regexes, regexes with a nick or room condition, mention rules and a few
// rules gated on nothing but a room.
func benchRules(n int) []Spec {
	r := rand.New(rand.NewPCG(1, 2))
	specs := make([]Spec, 0, n)
	for i := range n {
		s := Spec{Name: fmt.Sprintf("r%d", i), Reply: "{{.Nick}}: ok " + fmt.Sprint(i)}
		w := benchWords[r.IntN(len(benchWords))]
		switch i % 10 {
		case 0, 1, 2, 3:
			s.Keywords = []string{fmt.Sprintf("%s%d", w, i), fmt.Sprintf("%s-%d", benchWords[r.IntN(len(benchWords))], i)}
		case 4, 5, 6:
			s.Match = fmt.Sprintf(`^!%s%d(?:\s+(?P<arg>.+))?$`, w, i)
		case 7:
			s.Match = fmt.Sprintf(`(?i)\b%s%d\s+(\d+)`, w, i)
			s.Nick = []string{"alice", "bob"}
		case 8:
			s.Match = fmt.Sprintf(`ticket-%d\d*`, i)
			s.Room = []string{"dev-*@conference.example.org"}
		case 9:
			s.Mention = true
			s.Keywords = []string{fmt.Sprintf("help%d", i)}
			s.Role = []string{"participant", "moderator"}
		}
		specs = append(specs, s)
	}
	return specs
}

// benchMessages is ordinary room traffic: most messages match nothing.
var benchMessages = []Message{
	groupchat("alice", "good morning everyone, coffee anyone?"),
	groupchat("bob", "the deploy of the database went fine, latency is back to normal"),
	groupchat("carol", "!deploy4 staging"),
	func() Message {
		m := groupchat("dave", "crier: help9 please, the printer is on fire")
		m.Role = "participant"
		return m
	}(),
	groupchat("erin", "Has anyone seen the release notes for the new compiler? They mention ticket-8123"),
	groupchat("alice", "lunch? pizza or something else, I don't mind"),
	chat("frank@example.org/phone", "are you there?"),
	groupchat("grace", "Ça marche, je m'occupe du café après la réunion."),
}

func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			e := mustCompile(b, benchRules(n), Options{})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e.Evaluate(benchMessages[i%len(benchMessages)])
				i++
			}
		})
	}
}

func TestBenchRulesMatch(t *testing.T) {
	e := mustCompile(t, benchRules(1000), Options{})
	got := map[string]bool{}
	for _, m := range benchMessages {
		for _, a := range e.Evaluate(m) {
			got[a.Rule] = true
		}
	}
	// The mention rule r9 (keyword help9, role participant) must fire, so
	// that the benchmark measures rules that do apply, too.
	if !got["r9"] {
		t.Errorf("the benchmark mix should make r9 fire, got %v", got)
	}
}

// BenchmarkEvaluateReply is the reply path's share in the rules: one rule
// that matches and renders its reply template, as "!ping" → "pong NICK".
func BenchmarkEvaluateReply(b *testing.B) {
	e := mustCompile(b, []Spec{{Name: "ping", Match: `^!ping$`, Reply: "pong {{.Nick}}"}}, Options{})
	m := groupchat("alice", "!ping")
	b.ReportAllocs()
	for b.Loop() {
		if as := e.Evaluate(m); len(as) != 1 || as[0].Text != "pong alice" {
			b.Fatalf("actions %+v", as)
		}
	}
}
