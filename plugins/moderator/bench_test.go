package moderator

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"crier/plugins"
	"crier/plugins/moderator/detect"
	"crier/plugins/pluginstest"
)

// benchWordsFile writes n made-up entries (words, phrases and infixes,
// the same on every run) after the detectors' corpus block list, and
// returns the file's name.
func benchWordsFile(b *testing.B, n int) string {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("detect", "testdata", "corpus", "blocklist.txt"))
	if err != nil {
		b.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "+") {
			lines = append(lines, l)
		}
	}
	r := rand.New(rand.NewPCG(11, 12))
	syl := []string{"ba", "dro", "ke", "lin", "mu", "pra", "sto", "vek", "zu", "tha", "qui", "gor", "fen", "wy", "sha"}
	word := func() string {
		var s strings.Builder
		for range 2 + r.IntN(3) {
			s.WriteString(syl[r.IntN(len(syl))])
		}
		return s.String()
	}
	seen := map[string]bool{}
	for len(lines) < n {
		e := word()
		switch r.IntN(20) {
		case 0:
			e += " " + word()
		case 1:
			e = "*" + e + "*"
		}
		if !seen[e] {
			seen[e] = true
			lines = append(lines, e)
		}
	}
	name := filepath.Join(b.TempDir(), "words.txt")
	if err := os.WriteFile(name, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	return name
}

// benchPlugin is the moderator with every detector on and a 10,000-entry
// word list, on a fake host with 200 occupants and an in-memory store, its
// clock that the benchmark moves 2s a message.
func benchPlugin(b *testing.B) (*Plugin, *pluginstest.Host, *atomic.Int64) {
	b.Helper()
	table := fmt.Sprintf("[moderator]\nwords_file = %q\n"+
		"[[moderator.patterns]]\nname = \"vbucks\"\nexpr = 'v\\W*bucks'\npoints = 3\n"+
		"[[moderator.patterns]]\nname = \"phone\"\nexpr = '\\+?\\d[\\d -]{8,}\\d'\nraw = true\npoints = 2\n"+
		"[[moderator.patterns]]\nname = \"gold\"\nexpr = '(?:sell|buy)\\w* (?:cheap )?gold'\npoints = 1\n"+
		"[moderator.links]\nallow = [\"example.org\"]\n", benchWordsFile(b, 10000))
	cfg := loadConfig(b, table)
	p, err := New(cfg, plugins.Core{BotJID: botJID})
	if err != nil {
		b.Fatal(err)
	}
	tick := new(atomic.Int64)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return start.Add(time.Duration(tick.Load()) * 2 * time.Second) }
	h := pluginstest.New()
	h.Store = nil // the plugin's in-memory namespace, as without [bot] state_dir
	h.AddRoom(plugins.RoomInfo{JID: lobby, Nick: "crier", State: "joined", Role: "moderator", Affiliation: "owner"})
	for i := range 200 {
		h.AddOccupant(plugins.Occupant{Room: lobby, Nick: fmt.Sprintf("player%d", i), Role: "participant", Affiliation: "none", OccupantID: fmt.Sprintf("o%d", i)})
	}
	if err := p.Start(context.Background(), plugins.Env{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), Host: h}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p, h, tick
}

// BenchmarkHandle is the moderator's added cost per room message in the
// chain: the chat corpus (161 lines, a few of them spam, which the
// moderator acts on) from 200 occupants through Handle ("corpus"), and
// its lines that no detector flags alone ("clean").
func BenchmarkHandle(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("detect", "testdata", "chat.txt"))
	if err != nil {
		b.Fatal(err)
	}
	var lines, clean []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	probe, _, _ := benchPlugin(b)
	for _, l := range lines {
		if len(probe.def.set.Check(&detect.Message{Room: lobby, Body: l}, nil)) == 0 {
			clean = append(clean, l)
		}
	}
	for _, bc := range []struct {
		name  string
		lines []string
	}{{"corpus", lines}, {"clean", clean}} {
		b.Run(bc.name, func(b *testing.B) {
			p, h, tick := benchPlugin(b)
			var evs []*plugins.Event
			for n, l := range bc.lines {
				evs = append(evs, &plugins.Event{Kind: plugins.EventMessage, Type: "groupchat", Room: lobby, Nick: fmt.Sprintf("player%d", n%200),
					OccupantID: fmt.Sprintf("o%d", n%200), Body: l, Role: "participant", Affiliation: "none", BotNick: "crier", StanzaID: "s"})
			}
			ctx := context.Background()
			i, stopped := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				tick.Add(1)
				if p.Handle(ctx, evs[i%len(evs)]) == plugins.Stop {
					stopped++
				}
				i++
				if i%8192 == 0 {
					h.Reset() // the fake host keeps every action it was asked for
				}
			}
			b.ReportMetric(float64(stopped)/float64(i), "stopped/op")
		})
	}
}
