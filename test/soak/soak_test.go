//go:build soak

package soak

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
	"crier/test/zeroloss"
)

var (
	soakFor = flag.Duration("soak", 60*time.Second, "how long the soak runs")
	soakOut = flag.String("soak.out", "", "directory for the PNG plot (the test's temporary directory when empty)")
)

// Accounts and names of the soak.
const (
	crierJID = "crier@localhost"
	crierPW  = "crierpw"
	crierRes = "soak"
	aliceJID = "alice@localhost"
	alicePW  = "alicepw"
	rcvJID   = "rcv@localhost"
	rcvPW    = "rcvpw"
	room     = "soak@conference.localhost"
	subject  = "soak.events"
	stream   = "SOAK"
)

// Growth bounds, between the median of the first third and that of the
// last third of the samples taken after the warm-up. A leak of one
// goroutine per connection, per push or per fault grows far past them in
// a minute; the slack covers what a busy process holds at any moment
// (goroutines of a reconnect in progress, a 1 MiB stanza being parsed, the
// outbox's window) and what the Go runtime keeps before returning memory.
const (
	maxGoroutineGrowth = 20
	maxHeapRatio       = 2.0
	heapSlack          = 8 << 20 // bytes under which growth never fails
	maxRSSRatio        = 2.0
	rssSlack           = 16 << 20
)

// TestSoak runs crier for -soak (60 s by default) against the mini server
// and an embedded NATS server with a JetStream relay, while a driver loop
// mixes room pings, chat messages, pushes, cut connections (resumed),
// kicks, a server-side crash of every session and hostile input. It fails
// when crier exits, when a push JetStream acknowledged never reaches the
// receiver (copies are counted and allowed), when the bot stops answering,
// or when goroutines, heap or RSS grow past the bounds above.
func TestSoak(t *testing.T) {
	dur := *soakFor
	warmup := min(15*time.Second, dur/4)
	every := max(2*time.Second, dur/150)
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()

	srv, err := miniserver.Start(ctx, miniserver.Config{
		Domain: "localhost", Addr: "127.0.0.1:0",
		Accounts: map[string]string{crierJID: crierPW, aliceJID: alicePW, rcvJID: rcvPW},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("mini server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ns, _, js := zeroloss.StartNATS(ctx, t)
	if _, err := js.AddStream(&nats.StreamConfig{Name: stream, Subjects: []string{"soak.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}

	// The receiver of the pushes; a tag tells this run's bodies apart.
	tag := fmt.Sprintf("soak%x", time.Now().UnixNano())
	pushes := newTally(tag)
	rcv := zeroloss.NewReceiver(xmpptest.Options{Addr: srv.Addr(), JID: rcvJID, Password: rcvPW,
		Resource: "rcv", RootCAs: srv.CertPool()}, pushes.add)
	if err := rcv.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)

	// alice pings several times a second: the loop breaker's default
	// (60 replies a minute to one sender) is lifted.
	tables := fmt.Sprintf(`[bot]
state_dir = %q

[limits]
sender_replies = "0"

[[rooms]]
jid = %q
nick = "crier"

[[rules]]
name = "ping"
match = "^!ping"
reply = "pong {{.Body}}"

[nats]
url = %q

[[nats.relay]]
subject = "soak.>"
to = [%q]
type = "chat"
format = "text"
stream = %q
durable = "crier-soak"
ack_wait = "2s"
`, t.TempDir(), room, ns.ClientURL(), rcvJID, stream)
	d := crierproc.Run(t, crierproc.XMPP{JID: crierJID, Password: crierPW, Resource: crierRes,
		Address: srv.Addr(), CAFile: crierproc.WriteFile(t, "ca.pem", srv.CACertPEM())}, tables)
	d.WaitReady(t, 30*time.Second)

	alice := newPinger(t, srv)
	alice.connect(ctx)
	alice.pong(ctx, room, "groupchat", "first")

	// The sampler.
	var (
		smu     sync.Mutex
		samples []Sample
	)
	start := time.Now()
	stop := make(chan struct{})
	sampled := make(chan struct{})
	sample := func() {
		s := Sample{At: time.Since(start)}
		var errs []string
		for _, m := range []struct {
			name string
			v    *float64
		}{{"go_goroutines", &s.Goroutines}, {"go_memstats_heap_inuse_bytes", &s.Heap}, {"process_resident_memory_bytes", &s.RSS}} {
			v, err := d.Metric(m.name)
			if err != nil {
				errs = append(errs, err.Error())
			}
			*m.v = v
		}
		if len(errs) > 0 {
			return // crier's exit is checked by the driver
		}
		smu.Lock()
		samples = append(samples, s)
		smu.Unlock()
	}
	go func() {
		defer close(sampled)
		tick := time.NewTicker(every)
		defer tick.Stop()
		sample()
		for {
			select {
			case <-stop:
				sample()
				return
			case <-tick.C:
				sample()
			}
		}
	}()

	// The driver: one step every 250 ms, bounded in count and time.
	var published atomic.Int64
	faults := map[string]int{}
	maxSteps := int(dur/(250*time.Millisecond)) + 1
	step := 0
	nextDisrupt, slot := 5*time.Second, 0
	pending, pendingAt := "", time.Duration(0)
	for ; step < maxSteps && time.Since(start) < dur; step++ {
		d.Running(t)
		// Every step pushes a few events; acked ones must all arrive.
		for range 5 {
			n := published.Add(1)
			id := strconv.FormatInt(n, 10)
			if _, err := js.Publish(subject, []byte(tag+" "+id), nats.MsgId(id)); err != nil {
				published.Add(-1)
				faults["publish error"]++
				break
			}
		}
		kind := plan(step)
		if at := time.Since(start); at >= nextDisrupt {
			// A loss of crier's session: a cut (resumed) now, and the
			// slot's second disruption once crier is back.
			kind, pending = "cut", disruptions[slot%len(disruptions)]
			pendingAt = at + 3*time.Second
			nextDisrupt += disruptEvery
			slot++
		} else if pending != "" && at >= pendingAt {
			kind, pending = pending, ""
		}
		faults[kind]++
		switch kind {
		case "room ping":
			_ = alice.c().SendMessage(room, "groupchat", "!ping "+strconv.Itoa(step))
		case "chat ping":
			_ = alice.c().SendMessage(crierJID+"/"+crierRes, "chat", "!ping "+strconv.Itoa(step))
		case "cut":
			_ = srv.Cut(crierJID)
		case "kick":
			_ = srv.Kick(room, "crier", 307)
		case "deep":
			raw := "<message from='" + aliceJID + "/x' to='" + crierJID + "' type='chat'>" +
				strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000) + "</message>"
			_ = srv.SendRaw(crierJID, []byte(raw))
		case "big":
			raw := "<message from='" + aliceJID + "/x' to='" + crierJID + "' type='chat'><body>" +
				strings.Repeat("x", 1<<20) + "</body></message>"
			_ = srv.SendRaw(crierJID, []byte(raw))
		case "bad utf-8":
			_ = srv.SendRaw(crierJID, []byte("<message from='"+aliceJID+"/x' to='"+crierJID+"' type='chat'><body>\xff\xfe\xc3</body></message>"))
		case "presence flood":
			var b strings.Builder
			for i := range 2000 {
				fmt.Fprintf(&b, "<presence from='%s' to='%s/%s'><status>%d</status></presence>", room+"/flood"+strconv.Itoa(i%50), crierJID, crierRes, i)
			}
			_ = srv.SendRaw(crierJID, []byte(b.String()))
		case "drop all":
			// The receiver goes offline first, so that a push the server
			// was routing to it is stored, not lost with its session.
			if err := rcv.Offline(ctx); err != nil {
				t.Fatalf("receiver going offline: %v", err)
			}
			srv.DropAll()
			if err := rcv.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			alice.connect(ctx)
		}
		time.Sleep(250 * time.Millisecond)
	}
	close(stop)
	<-sampled
	d.Running(t)

	// Every acknowledged push arrives.
	n := int(published.Load())
	got := pushes.wait(n, 60*time.Second)
	missing, dups := pushes.check(n)
	t.Logf("%d steps in %v: %v", step, time.Since(start).Round(time.Second), faults)
	t.Logf("pushes: %d acknowledged by JetStream, %d distinct received, %d copies; room pongs %d, chat pongs %d; receiver sessions %d",
		n, got, dups, alice.count(room), alice.count(crierJID), rcv.Logins())
	st := srv.Stats()
	t.Logf("mini server: %d logins, %d stanzas in, %d routed, %d rejected", st.Logins, st.StanzasIn, st.StanzasRouted, st.Rejected)
	if len(missing) > 0 {
		t.Errorf("LOSS: %d of %d pushes never reached the receiver, first: %v", len(missing), n, missing[:min(20, len(missing))])
	}
	if u := pushes.unexpected(); len(u) > 0 {
		t.Errorf("bodies that are no push of this run: %q", u)
	}

	smu.Lock()
	report(t, samples, warmup)
	dir := *soakOut
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("plot: %v", err)
	}
	path := filepath.Join(dir, "soak.png")
	if err := WritePNG(path, samples, warmup); err != nil {
		t.Errorf("plot: %v", err)
	} else {
		t.Logf("plot: %s (top: goroutines, middle: heap in use, bottom: RSS; each from 0 to its maximum; the dark vertical line ends the warm-up)", path)
	}
	smu.Unlock()

	// The bot still answers in the room and in chat.
	alice.connect(ctx)
	alice.pong(ctx, room, "groupchat", "last")
	alice.pong(ctx, crierJID+"/"+crierRes, "chat", "last")
}

// disruptEvery spaces the losses of crier's session: crier's reconnect
// backoff starts over only once a session stayed up 30 s, so losses more
// often than that would leave it waiting up to a minute between tries.
const disruptEvery = 32 * time.Second

// disruptions are the second loss of each disruption slot, in turn, after
// a cut that crier resumes: a crash of every session on the server, and
// invalid UTF-8 (which ends the stream).
var disruptions = []string{"drop all", "bad utf-8"}

// plan returns the driver's action at a step between disruptions: pings,
// and every few steps a kick or hostile input that leaves crier's session
// up.
func plan(step int) string {
	cycle := []string{"room ping", "chat ping", "room ping", "deep", "chat ping", "room ping", "big",
		"chat ping", "room ping", "kick", "chat ping", "room ping", "presence flood", "chat ping"}
	return cycle[step%len(cycle)]
}

// report logs the samples as a table and fails the test on growth.
func report(t *testing.T, samples []Sample, warmup time.Duration) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%8s %10s %12s %12s\n", "t", "goroutines", "heap MiB", "RSS MiB")
	var after []Sample
	for _, s := range samples {
		fmt.Fprintf(&b, "%8s %10.0f %12.1f %12.1f\n", s.At.Round(time.Second), s.Goroutines, s.Heap/(1<<20), s.RSS/(1<<20))
		if s.At >= warmup {
			after = append(after, s)
		}
	}
	t.Logf("samples of crier's /metrics:\n%s", b.String())
	if len(after) < 6 {
		t.Errorf("%d samples after the %v warm-up, want at least 6", len(after), warmup)
		return
	}
	third := len(after) / 3
	first, last := after[:third], after[len(after)-third:]
	med := func(ss []Sample, f func(Sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	g0, g1 := med(first, func(s Sample) float64 { return s.Goroutines }), med(last, func(s Sample) float64 { return s.Goroutines })
	h0, h1 := med(first, func(s Sample) float64 { return s.Heap }), med(last, func(s Sample) float64 { return s.Heap })
	r0, r1 := med(first, func(s Sample) float64 { return s.RSS }), med(last, func(s Sample) float64 { return s.RSS })
	t.Logf("medians, first third -> last third after the warm-up (%d samples each): goroutines %.0f -> %.0f, heap %.1f -> %.1f MiB, RSS %.1f -> %.1f MiB",
		third, g0, g1, h0/(1<<20), h1/(1<<20), r0/(1<<20), r1/(1<<20))
	if g1-g0 > maxGoroutineGrowth {
		t.Errorf("goroutines grew by %.0f, more than %d", g1-g0, maxGoroutineGrowth)
	}
	if h1 > maxHeapRatio*h0 && h1-h0 > heapSlack {
		t.Errorf("heap in use grew from %.1f to %.1f MiB, more than %.0fx", h0/(1<<20), h1/(1<<20), maxHeapRatio)
	}
	if r1 > maxRSSRatio*r0 && r1-r0 > rssSlack {
		t.Errorf("RSS grew from %.1f to %.1f MiB, more than %.0fx", r0/(1<<20), r1/(1<<20), maxRSSRatio)
	}
}
