package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Targets that the subject bot is held to, relative to the base bot or
// absolute.
const (
	minThroughputRatio = 0.9
	maxCPURatio        = 1.3
	maxRSSRatio        = 1.5
	maxP50ExtraMs      = 0.1
	maxStartToJoinedMs = 150
)

// summarize reads the JSON lines of several runs and prints, per bot and
// mode, the median of each measure, then the subject's ratios to the base
// and whether they meet the targets.
func summarize(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("summarize", flag.ContinueOnError)
	base := fs.String("base", "echobot", "the label of the baseline bot")
	subject := fs.String("subject", "crier", "the label of the bot compared with it; several separated by commas")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("summarize: name at least one file of JSON lines")
	}
	type key = runKey
	groups := map[key][]Result{}
	var order []key
	fan := map[string][]FanoutResult{}
	var fanOrder []string
	failed := 0
	for _, path := range fs.Args() {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			var r Result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				f.Close()
				return fmt.Errorf("%s:%d: %w", path, n, err)
			}
			if r.Mode == "fanout" {
				var fr FanoutResult
				if err := json.Unmarshal([]byte(line), &fr); err != nil {
					f.Close()
					return fmt.Errorf("%s:%d: %w", path, n, err)
				}
				if fr.Error != "" {
					failed++
					fmt.Fprintf(w, "failed run excluded: %s fanout: %s\n", fr.Label, fr.Error)
					continue
				}
				if _, ok := fan[fr.Label]; !ok {
					fanOrder = append(fanOrder, fr.Label)
				}
				fan[fr.Label] = append(fan[fr.Label], fr)
				continue
			}
			if r.Error != "" {
				failed++
				fmt.Fprintf(w, "failed run excluded: %s %s: %s\n", r.Label, r.Mode, r.Error)
				continue
			}
			k := key{r.Label, r.Mode}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], r)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return err
		}
	}
	if failed > 0 {
		fmt.Fprintln(w)
	}
	if len(fanOrder) > 0 {
		summarizeFanout(w, fan, fanOrder)
		if len(order) == 0 {
			return nil
		}
		fmt.Fprintln(w)
	}
	med := map[key]Result{}
	fmt.Fprintln(w, "| bot | mode | runs | replies/s | p50 ms | p99 ms | CPU-s/1000 replies | server CPU-s/1000 replies | idle RSS MB | start→joined ms |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, k := range order {
		rs := groups[k]
		m := Result{
			Label:            k.label,
			Mode:             k.mode,
			RepliesPerSec:    median(rs, func(r Result) float64 { return r.RepliesPerSec }),
			P50ms:            median(rs, func(r Result) float64 { return r.P50ms }),
			P99ms:            median(rs, func(r Result) float64 { return r.P99ms }),
			CPUPer1000:       median(rs, func(r Result) float64 { return r.CPUPer1000 }),
			ServerCPUPer1000: median(rs, func(r Result) float64 { return r.ServerCPUPer1000 }),
			IdleRSSMB:        median(rs, func(r Result) float64 { return r.IdleRSSMB }),
			StartToJoinedMs:  median(rs, func(r Result) float64 { return r.StartToJoinedMs }),
		}
		med[k] = m
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.2f | %.2f | %.3f | %s | %.1f | %.0f |\n", k.label, k.mode, len(rs),
			m.RepliesPerSec, m.P50ms, m.P99ms, m.CPUPer1000, optf(m.ServerCPUPer1000, "%.3f"), m.IdleRSSMB, m.StartToJoinedMs)
	}

	printWire(w, groups, order)
	fmt.Fprintf(w, "\n| bot | mode | replies/s ratio to %[1]s (>= %[2]g) | CPU per reply ratio (<= %[3]g) | p50 ms minus %[1]s's (<= %[4]g) | server CPU per reply ratio | idle RSS ratio (<= %[5]g) | start→joined ms (<= %[6]d) |\n",
		*base, minThroughputRatio, maxCPURatio, maxP50ExtraMs, maxRSSRatio, maxStartToJoinedMs)
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "MISSED"
	}
	for _, subj := range strings.Split(*subject, ",") {
		for _, mode := range []string{"room", "chat"} {
			b, okB := med[key{*base, mode}]
			s, okS := med[key{subj, mode}]
			if !okB || !okS {
				continue
			}
			tp := ratio(s.RepliesPerSec, b.RepliesPerSec)
			cpu := ratio(s.CPUPer1000, b.CPUPer1000)
			rss := ratio(s.IdleRSSMB, b.IdleRSSMB)
			extra := s.P50ms - b.P50ms
			fmt.Fprintf(w, "| %s | %s | %.2f %s | %.2f %s | %+.2f %s | %s | %.2f %s | %.0f %s |\n", subj, mode,
				tp, verdict(tp >= minThroughputRatio),
				cpu, verdict(cpu <= maxCPURatio),
				extra, verdict(extra <= maxP50ExtraMs),
				optf(ratio(s.ServerCPUPer1000, b.ServerCPUPer1000), "%.2f"),
				rss, verdict(rss <= maxRSSRatio),
				s.StartToJoinedMs, verdict(s.StartToJoinedMs <= maxStartToJoinedMs))
		}
	}
	return nil
}

// median returns the median of f over rs, ignoring zeros (not measured).
func median(rs []Result, f func(Result) float64) float64 {
	var v []float64
	for _, r := range rs {
		if x := f(r); x != 0 {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// optf formats v, or "–" when it was not measured (zero).
func optf(v float64, format string) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

// runKey groups runs by bot and mode.
type runKey struct{ label, mode string }

// summarizeFanout prints the medians of the fan-out runs per bot; the
// unanswered column is the sum over the runs.
func summarizeFanout(w io.Writer, runs map[string][]FanoutResult, order []string) {
	fmt.Fprintln(w, strings.Replace(fanoutHeader, "| bot |", "| bot (median of runs) |", 1))
	for _, label := range order {
		rs := runs[label]
		// Round trips: over the runs that timed any (a run whose only
		// ping went unanswered has none); unanswered pings are summed.
		med := func(f func(FanoutResult) float64) float64 {
			v := make([]float64, 0, len(rs))
			for _, r := range rs {
				v = append(v, f(r))
			}
			if len(v) == 0 {
				return 0
			}
			slices.Sort(v)
			if len(v)%2 == 1 {
				return v[len(v)/2]
			}
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		unanswered := 0
		var withPings []FanoutResult
		for _, r := range rs {
			unanswered += r.Unanswerd
			if r.Pings > 0 {
				withPings = append(withPings, r)
			}
		}
		timed := func(f func(FanoutResult) float64) float64 {
			all := rs
			rs = withPings
			defer func() { rs = all }()
			return med(f)
		}
		m := FanoutResult{
			Label:        fmt.Sprintf("%s (%d)", label, len(rs)),
			Events:       rs[0].Events,
			FanOut:       rs[0].FanOut,
			Pings:        int(med(func(r FanoutResult) float64 { return float64(r.Pings) })),
			P50ms:        timed(func(r FanoutResult) float64 { return r.P50ms }),
			P99ms:        timed(func(r FanoutResult) float64 { return r.P99ms }),
			MaxMs:        timed(func(r FanoutResult) float64 { return r.MaxMs }),
			Unanswerd:    unanswered,
			DrainSeconds: med(func(r FanoutResult) float64 { return r.DrainSeconds }),
			EventsPerSec: med(func(r FanoutResult) float64 { return r.EventsPerSec }),
			Received:     int(med(func(r FanoutResult) float64 { return float64(r.Received) })),
			Duplicates:   int(med(func(r FanoutResult) float64 { return float64(r.Duplicates) })),
			Lost:         int(med(func(r FanoutResult) float64 { return float64(r.Lost) })),
			PeakRSSMB:    med(func(r FanoutResult) float64 { return r.PeakRSSMB }),
			IdleRSSMB:    med(func(r FanoutResult) float64 { return r.IdleRSSMB }),
		}
		fmt.Fprintln(w, m.row())
	}
}

// printWire prints, for the runs measured with -metrics, the median
// elements per reply on the bot's stream.
func printWire(w io.Writer, groups map[runKey][]Result, order []runKey) {
	header := false
	for _, k := range order {
		rs := groups[k]
		kinds := map[string]bool{}
		for _, r := range rs {
			for kind := range r.Wire {
				kinds[kind] = true
			}
		}
		if len(kinds) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nElements per reply on the bot's stream (crier's tap; medians):")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| bot | mode | per reply |")
			fmt.Fprintln(w, "|---|---|---|")
			header = true
		}
		m := map[string]float64{}
		for kind := range kinds {
			m[kind] = median(rs, func(r Result) float64 { return r.Wire[kind] })
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", k.label, k.mode, wireString(m))
	}
	if header {
		fmt.Fprintln(w)
	}
}
