package main

// The "rooms" scenario: crier in many rooms. For each room count it runs
// the bot in this process (so that the heap is read with runtime.MemStats
// after a collection, without the load tool's clients in it), measures the
// time from start, and from the session coming up, to every room joined,
// the heap per room, the resident memory, and the CPU while idle (keepalive
// and XEP-0410 self-pings only), sampled every second to show spikes.
//
//	crierload rooms -addr 127.0.0.1:5222 -ca cert.pem -jid crier@localhost -password pw \
//		-muc conference.localhost -rooms 10,100,1000 -runs 3 -idle 30s -self-ping 10s \
//		-label prosody -json rooms.jsonl
//
// With -summary FILE it prints the medians of the runs kept in FILE. (The
// mini server's figures come from BenchmarkJoinRooms in bot/: this tool,
// like the daemon, does not link the embedded server.)

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"crier/bot"
	"crier/internal/config"
)

// RoomsResult is one run of the rooms scenario. Times in milliseconds.
type RoomsResult struct {
	Label string `json:"label"`
	Mode  string `json:"mode"` // "rooms"
	Rooms int    `json:"rooms"`
	// StartToJoinedMs is from bot.Run to every room joined;
	// SessionToJoinedMs from the session being bound.
	StartToJoinedMs   float64 `json:"start_to_joined_ms"`
	SessionToJoinedMs float64 `json:"session_to_joined_ms"`
	// HeapBytes is the heap in use after a collection with every room
	// joined, less the same before the bot was built; HeapPerRoom is that
	// divided by the rooms.
	HeapBytes   float64 `json:"heap_bytes"`
	HeapPerRoom float64 `json:"heap_per_room_bytes"`
	RSSMB       float64 `json:"rss_mb"`
	// IdleCPUPct is the process's mean CPU over the idle period in percent
	// of one core; IdleCPUMaxPct the highest one-second sample.
	IdleCPUPct    float64 `json:"idle_cpu_pct"`
	IdleCPUMaxPct float64 `json:"idle_cpu_max_pct"`
	SelfPingEvery string  `json:"self_ping_every"`
	Error         string  `json:"error,omitempty"`
}

func (r *RoomsResult) row() string {
	return fmt.Sprintf("| %s | %d | %.0f | %.0f | %.0f | %.1f | %.2f | %.2f |", r.Label, r.Rooms,
		r.StartToJoinedMs, r.SessionToJoinedMs, r.HeapPerRoom, r.RSSMB, r.IdleCPUPct, r.IdleCPUMaxPct)
}

const roomsHeader = "| label | rooms | start→joined ms | session→joined ms | heap B/room | RSS MB | idle CPU % | max 1 s CPU % |\n|---|---:|---:|---:|---:|---:|---:|---:|"

func roomsMain(args []string) error {
	fs := flag.NewFlagSet("crierload rooms", flag.ContinueOnError)
	addr := fs.String("addr", "", "c2s address of the XMPP server (host:port)")
	caFile := fs.String("ca", "", "PEM file of the server's certificate")
	jidS := fs.String("jid", "crier@localhost", "the bot's account")
	password := fs.String("password", "", "the bot's password")
	muc := fs.String("muc", "conference.localhost", "the multi-user chat service")
	counts := fs.String("rooms", "10,100,1000", "room counts, comma-separated")
	runs := fs.Int("runs", 1, "runs of every room count, interleaved")
	idle := fs.Duration("idle", 20*time.Second, "how long to sample CPU while idle")
	selfPing := fs.Duration("self-ping", 10*time.Second, "the bot's self-ping interval")
	timeout := fs.Duration("timeout", 2*time.Minute, "longest wait for every room joined")
	label := fs.String("label", "crier", "label of the rows")
	jsonOut := fs.String("json", "", "append one JSON object per run to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the idle periods to this file")
	summary := fs.String("summary", "", "print the medians of the runs in this JSON lines file, and run nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *summary != "" {
		return roomsSummary(*summary, os.Stdout)
	}
	var ns []int
	for _, f := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || n > 100000 {
			return fmt.Errorf("-rooms: bad count %q", f)
		}
		ns = append(ns, n)
	}
	if *runs < 1 || *runs > 100 {
		return fmt.Errorf("-runs must be 1..100")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		idleProfile = f
	}
	rc := roomsConfig{addr: *addr, ca: *caFile, jid: *jidS, password: *password, muc: *muc, selfPing: *selfPing, idle: *idle, timeout: *timeout, label: *label}
	if rc.addr == "" || rc.password == "" {
		return errors.New("-addr and -password are needed")
	}
	var out io.Writer = io.Discard
	if *jsonOut != "" {
		f, err := os.OpenFile(*jsonOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	fmt.Println(roomsHeader)
	var failed error
	byN := map[int][]*RoomsResult{}
	for run := range *runs {
		for _, n := range ns {
			res := rc.once(run, n)
			if res.Error == "" {
				byN[n] = append(byN[n], res)
			}
			fmt.Println(res.row())
			b, _ := json.Marshal(res)
			fmt.Fprintln(out, string(b))
			if res.Error != "" {
				fmt.Fprintln(os.Stderr, "crierload rooms:", res.Error)
				failed = errors.New("a run failed")
			}
		}
	}
	if *runs > 1 {
		fmt.Println()
		printRoomsMedians(os.Stdout, ns, byN)
	}
	return failed
}

// roomsSummary prints the medians of the rooms runs in the JSON lines
// file path.
func roomsSummary(path string, w io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	byN := map[int][]*RoomsResult{}
	var ns []int
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		r := &RoomsResult{}
		if err := json.Unmarshal([]byte(line), r); err != nil {
			return fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		if r.Mode != "rooms" || r.Error != "" {
			continue
		}
		if byN[r.Rooms] == nil {
			ns = append(ns, r.Rooms)
		}
		byN[r.Rooms] = append(byN[r.Rooms], r)
	}
	if len(ns) == 0 {
		return fmt.Errorf("%s: no rooms runs", path)
	}
	printRoomsMedians(w, ns, byN)
	return nil
}

// printRoomsMedians prints the median of every column per room count, and
// the heap each room added between one count and the next (the slope, free
// of the bot's fixed cost).
func printRoomsMedians(w io.Writer, ns []int, byN map[int][]*RoomsResult) {
	med := func(rs []*RoomsResult, f func(*RoomsResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	fmt.Fprintln(w, "| rooms | runs | start→joined ms | session→joined ms | heap MB | heap B/room | slope B/room | RSS MB | idle CPU % | max 1 s CPU % |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	sorted := slices.Clone(ns)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	prevN, prevHeap := 0, 0.0
	for _, n := range sorted {
		rs := byN[n]
		if len(rs) == 0 {
			continue
		}
		heap := med(rs, func(r *RoomsResult) float64 { return r.HeapBytes })
		slope := "–"
		if prevN > 0 {
			slope = fmt.Sprintf("%.0f", (heap-prevHeap)/float64(n-prevN))
		}
		fmt.Fprintf(w, "| %d | %d | %.0f | %.0f | %.2f | %.0f | %s | %.1f | %.2f | %.2f |\n", n, len(rs),
			med(rs, func(r *RoomsResult) float64 { return r.StartToJoinedMs }),
			med(rs, func(r *RoomsResult) float64 { return r.SessionToJoinedMs }),
			heap/1e6, med(rs, func(r *RoomsResult) float64 { return r.HeapPerRoom }), slope,
			med(rs, func(r *RoomsResult) float64 { return r.RSSMB }),
			med(rs, func(r *RoomsResult) float64 { return r.IdleCPUPct }),
			med(rs, func(r *RoomsResult) float64 { return r.IdleCPUMaxPct }))
		prevN, prevHeap = n, heap
	}
}

// idleProfile, when set (-cpuprofile), receives a CPU profile of the idle
// period of the first run.
var idleProfile io.Writer

type roomsConfig struct {
	addr, ca, jid, password, muc string
	selfPing, idle, timeout      time.Duration
	label                        string
}

// heapNow is the heap in use after two collections.
func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// selfCPU is this process's CPU time (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (rc roomsConfig) once(run, n int) *RoomsResult {
	res := &RoomsResult{Label: rc.label, Mode: "rooms", Rooms: n, SelfPingEvery: rc.selfPing.String()}
	base := heapNow()
	var b strings.Builder
	fmt.Fprintf(&b, "[xmpp]\njid = %q\npassword = %q\nresource = %q\naddress = %q\nca_file = %q\nconnect_timeout = \"10s\"\n",
		rc.jid, rc.password, fmt.Sprintf("rooms-%d-%d", run, n), rc.addr, rc.ca)
	prefix := fmt.Sprintf("load%d-%d-%d", time.Now().Unix()%100000, run, n)
	for i := range n {
		fmt.Fprintf(&b, "[[rooms]]\njid = \"%s-%04d@%s\"\nnick = \"crier\"\n", prefix, i, rc.muc)
	}
	cfg, err := config.LoadBytes("rooms.toml", []byte(b.String()))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	bt, err := bot.New(cfg, bot.Options{SelfPing: rc.selfPing})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- bt.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	}()
	var bound time.Time
	deadline := start.Add(rc.timeout)
	for {
		ok, lines := bt.Ready()
		if bound.IsZero() && len(lines) > 0 && lines[0] == "session: bound" {
			bound = time.Now()
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			joined := 0
			for _, l := range lines {
				if strings.Contains(l, ": joined as ") {
					joined++
				}
			}
			res.Error = fmt.Sprintf("%d of %d rooms joined after %v", joined, n, rc.timeout)
			return res
		}
		time.Sleep(5 * time.Millisecond)
	}
	all := time.Now()
	res.StartToJoinedMs = float64(all.Sub(start).Microseconds()) / 1000
	if !bound.IsZero() {
		res.SessionToJoinedMs = float64(all.Sub(bound).Microseconds()) / 1000
	}
	time.Sleep(time.Second) // the last answers (subjects) are read
	heap := heapNow()
	res.HeapBytes = float64(heap) - float64(base)
	res.HeapPerRoom = res.HeapBytes / float64(n)
	if rss, err := rssMB(os.Getpid()); err == nil {
		res.RSSMB = rss
	}
	// Idle: sample the CPU every second.
	if idleProfile != nil {
		if err := pprof.StartCPUProfile(idleProfile); err == nil {
			defer pprof.StopCPUProfile()
		}
	}
	var samples []float64
	t0, c0 := time.Now(), selfCPU()
	prevT, prevC := t0, c0
	for time.Since(t0) < rc.idle {
		time.Sleep(time.Second)
		t, c := time.Now(), selfCPU()
		samples = append(samples, 100*float64(c-prevC)/float64(t.Sub(prevT)))
		prevT, prevC = t, c
	}
	if el := time.Since(t0); el > 0 {
		res.IdleCPUPct = 100 * float64(selfCPU()-c0) / float64(el)
	}
	if len(samples) > 0 {
		res.IdleCPUMaxPct = slices.Max(samples)
	}
	return res
}
