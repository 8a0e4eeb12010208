package main

// The fan-out scenario: an alert storm next to a conversation. A JetStream
// stream holds one event for -fanout recipients and a backlog of -events
// events for a sink account before the bot starts; the bot relays them
// (its config has a [[nats.relay]] on -subject) while a user in the room
// keeps one "!ping" in flight. It measures the round trips of the pings
// while the backlog drains, how fast it drains, and that the sink got
// every event.
//
//	crierload fanout -addr 127.0.0.1:5222 -ca cert.pem -room bench@conference.localhost \
//		-nats nats://127.0.0.1:14222 -subject bench.alerts -stream BENCH \
//		-bot-cmd "./crier run -c fanout.toml" -label crier -json fanout.jsonl -plot fanout
//
// crierload starts the NATS server itself (in-process, JetStream on) at
// -nats, so the bot's config names that URL.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"mellium.im/xmpp/jid"

	"crier/internal/embeddednats"
)

// FanoutResult is what one fan-out run measured. Durations are in
// milliseconds.
type FanoutResult struct {
	Label  string `json:"label"`
	Mode   string `json:"mode"` // "fanout"
	Events int    `json:"events"`
	FanOut int    `json:"fanout"`
	// Pings answered while the backlog drained, their round trips, and
	// the pings that got no answer within -ping-timeout.
	Pings     int     `json:"pings"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	Unanswerd int     `json:"unanswered"`
	// DrainSeconds is from the bot in the room to the sink holding every
	// backlog event; EventsPerSec the backlog over it.
	DrainSeconds float64 `json:"drain_s"`
	EventsPerSec float64 `json:"events_per_s"`
	// Received distinct backlog events at the sink, Duplicates extra
	// copies, Lost the events that never came.
	Received   int     `json:"received"`
	Duplicates int     `json:"duplicates"`
	Lost       int     `json:"lost"`
	IdleRSSMB  float64 `json:"idle_rss_mb,omitempty"`
	PeakRSSMB  float64 `json:"peak_rss_mb,omitempty"`
	CPUSeconds float64 `json:"cpu_s,omitempty"`
	Error      string  `json:"error,omitempty"`
}

type fanoutOptions struct {
	addr, caFile, domain  string
	pinger, sink          account
	room, botNick         string
	natsURL, subject      string
	stream                string
	events, fanout        int
	gap, pingTimeout      time.Duration
	limit                 time.Duration
	botCmd, botLog, label string
	jsonFile, plot        string
	fanoutDomain          string
}

func fanoutMain(args []string) int {
	res, err := runFanout(args)
	if res != nil {
		fmt.Println(res.row())
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crierload fanout:", err)
		return 1
	}
	return 0
}

func parseFanoutFlags(args []string) (*fanoutOptions, error) {
	fs := flag.NewFlagSet("crierload fanout", flag.ContinueOnError)
	o := &fanoutOptions{}
	var pinger, sink string
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5222", "the server's client port (STARTTLS), host:port")
	fs.StringVar(&o.caFile, "ca", "", "a PEM file of certificates to trust")
	fs.StringVar(&o.domain, "domain", "localhost", "the XMPP domain of the accounts")
	fs.StringVar(&pinger, "pinger", "user1:user1pw", "the account that pings the bot in the room, user:password")
	fs.StringVar(&sink, "sink", "user2:user2pw", "the account the backlog events go to, user:password")
	fs.StringVar(&o.room, "room", "bench@conference.localhost", "the room the pinger and the bot are in")
	fs.StringVar(&o.botNick, "bot-nick", "crier", "the bot's nickname in the room")
	fs.StringVar(&o.natsURL, "nats", "nats://127.0.0.1:14222", "where crierload runs the NATS server (the bot's [nats] url)")
	fs.StringVar(&o.subject, "subject", "bench.alerts", "the subject the events are published on (the bot relays it)")
	fs.StringVar(&o.stream, "stream", "BENCH", "the JetStream stream of -subject (the relay's stream)")
	fs.IntVar(&o.events, "events", 10000, "backlog events, one recipient each (the sink)")
	fs.IntVar(&o.fanout, "fanout", 1000, "recipients of the one fan-out event (fan1@DOMAIN ...: accounts that do not exist, each answers with an error)")
	fs.StringVar(&o.fanoutDomain, "fanout-domain", "", "the domain of the fan-out recipients (default -domain)")
	fs.DurationVar(&o.gap, "ping-gap", 10*time.Millisecond, "pause between a pong and the next ping")
	fs.DurationVar(&o.pingTimeout, "ping-timeout", 5*time.Second, "a ping without a pong for this long counts as unanswered")
	fs.DurationVar(&o.limit, "time", 2*time.Minute, "limit for the drain")
	fs.StringVar(&o.botCmd, "bot-cmd", "", "start the bot with this command (split on spaces, no shell)")
	fs.StringVar(&o.botLog, "bot-log", "", "file for the bot's output")
	fs.StringVar(&o.label, "label", "crier", "the name of this bot in the output")
	fs.StringVar(&o.jsonFile, "json", "", "append the result as one JSON line to this file")
	fs.StringVar(&o.plot, "plot", "", "write PREFIX-latency.png (ping round trips) and PREFIX-rss.png (the bot's RSS over the run)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.botCmd == "" {
		return nil, errors.New("-bot-cmd is required: the backlog is published before the bot starts")
	}
	if o.events < 1 || o.fanout < 0 || o.limit <= 0 || o.gap < 0 || o.pingTimeout <= 0 {
		return nil, errors.New("-events must be positive, -fanout, -ping-gap not negative, -time and -ping-timeout positive")
	}
	if o.fanoutDomain == "" {
		o.fanoutDomain = o.domain
	}
	for _, a := range []struct {
		flag, v string
		to      *account
	}{{"-pinger", pinger, &o.pinger}, {"-sink", sink, &o.sink}} {
		user, pw, ok := strings.Cut(a.v, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s: %q is not user:password", a.flag, a.v)
		}
		if !strings.Contains(user, "@") {
			user += "@" + o.domain
		}
		j, err := jid.Parse(user)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.flag, err)
		}
		*a.to = account{jid: j.Bare(), password: pw}
	}
	return o, nil
}

func runFanout(args []string) (*FanoutResult, error) {
	o, err := parseFanoutFlags(args)
	if err != nil {
		return nil, err
	}
	res := &FanoutResult{Label: o.label, Mode: "fanout", Events: o.events, FanOut: o.fanout}
	err = measureFanout(o, res)
	if err != nil {
		res.Error = err.Error()
	}
	if o.jsonFile != "" {
		b, _ := json.Marshal(res)
		if werr := appendLine(o.jsonFile, b); werr != nil && err == nil {
			err = werr
		}
	}
	return res, err
}

func appendLine(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sinkTally counts the backlog events the sink receives.
type sinkTally struct {
	mu   sync.Mutex
	seen map[int]int
	all  chan struct{}
	want int
	once sync.Once
}

func (s *sinkTally) add(body string) {
	n, err := strconv.Atoi(strings.TrimPrefix(body, "ev "))
	if err != nil || !strings.HasPrefix(body, "ev ") {
		return
	}
	s.mu.Lock()
	s.seen[n]++
	done := len(s.seen) == s.want
	s.mu.Unlock()
	if done {
		s.once.Do(func() { close(s.all) })
	}
}

func (s *sinkTally) counts() (distinct, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.seen {
		dups += k - 1
	}
	return len(s.seen), dups
}

func measureFanout(o *fanoutOptions, res *FanoutResult) error {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca %s: no PEM certificate in it", o.caFile)
		}
		tlsCfg.RootCAs = pool
	}

	// NATS with the backlog in place before the bot starts.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, err := embeddednats.Start(ctx, o.natsURL, "")
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := publishBacklog(ctx, ns.ClientURL(), o); err != nil {
		return err
	}

	// The sink and the pinger.
	sink := &sinkTally{seen: map[int]int{}, all: make(chan struct{}), want: o.events}
	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	sc, err := login(lctx, o.addr, tlsCfg, o.sink.jid, o.sink.password, o.sink.jid.Localpart())
	lcancel()
	if err != nil {
		return err
	}
	defer sc.close()
	sc.start(func(_ *client, s *inStanza) {
		if s.name == "message" && s.typ != "error" {
			sink.add(s.body)
		}
	})
	lctx, lcancel = context.WithTimeout(ctx, 20*time.Second)
	pc, err := login(lctx, o.addr, tlsCfg, o.pinger.jid, o.pinger.password, o.pinger.jid.Localpart())
	lcancel()
	if err != nil {
		return err
	}
	defer pc.close()
	botOcc := o.room + "/" + o.botNick
	joined, botIn := make(chan struct{}), make(chan time.Time, 1)
	pong := make(chan time.Time, 16)
	var joinOnce, botOnce sync.Once
	pc.start(func(c *client, s *inStanza) {
		switch s.name {
		case "presence":
			if bareOf(s.from) != o.room {
				return
			}
			if s.hasStatus("110") {
				joinOnce.Do(func() { close(joined) })
			}
			if s.from == botOcc && s.typ == "" {
				at := time.Now()
				botOnce.Do(func() { botIn <- at })
			}
		case "message":
			if s.typ == "groupchat" && s.from == botOcc && s.body == "pong "+c.nick {
				select {
				case pong <- time.Now():
				default:
				}
			}
		}
	})
	join := fmt.Sprintf("<presence to='%s/%s'><x xmlns='%s'><history maxstanzas='0'/></x></presence>", escape(o.room), escape(pc.nick), nsMUC)
	if err := pc.write([]byte(join)); err != nil {
		return err
	}
	select {
	case <-joined:
	case <-time.After(20 * time.Second):
		return fmt.Errorf("%s: no answer to the join of %s", o.pinger.jid, o.room)
	}
	select {
	case <-botIn:
		return fmt.Errorf("%s is already in %s: stop that bot first", o.botNick, o.room)
	default:
	}

	bot, err := startBot(o.botCmd, o.botLog)
	if err != nil {
		return err
	}
	defer bot.stop()
	rss := sampleRSS(bot.pid(), 100*time.Millisecond)
	defer rss.stop()
	var began time.Time
	select {
	case began = <-botIn:
	case <-bot.exited:
		return fmt.Errorf("the bot exited before joining: %v", bot.err)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the bot did not join %s within 30s", o.room)
	}
	cpu0, _ := cpuSeconds(bot.pid())

	// One ping in flight until the sink has every event.
	var rtts []time.Duration
	var unanswered atomic.Int64
	limit := time.After(o.limit)
	ping := []byte(fmt.Sprintf("<message to='%s' type='groupchat'><body>!ping</body></message>", escape(o.room)))
	var drained time.Time
loop:
	for {
		select {
		case <-sink.all:
			drained = time.Now()
			break loop
		case <-limit:
			break loop
		case <-bot.exited:
			return fmt.Errorf("the bot exited during the run: %v", bot.err)
		default:
		}
		sent := time.Now()
		if err := pc.write(ping); err != nil {
			return err
		}
		select {
		case at := <-pong:
			rtts = append(rtts, at.Sub(sent))
		case <-time.After(o.pingTimeout):
			unanswered.Add(1)
		case <-sink.all:
			// The drain ended while this ping was out: its answer still
			// counts (it was sent during the drain).
			drained = time.Now()
			select {
			case at := <-pong:
				rtts = append(rtts, at.Sub(sent))
			case <-time.After(o.pingTimeout):
				unanswered.Add(1)
			}
			break loop
		}
		time.Sleep(o.gap)
	}
	if cpu1, err := cpuSeconds(bot.pid()); err == nil {
		res.CPUSeconds = cpu1 - cpu0
	}
	// The bot idles a moment after the storm: its RSS then.
	time.Sleep(2 * time.Second)
	if mb, err := rssMB(bot.pid()); err == nil {
		res.IdleRSSMB = mb
	}
	rss.stop()
	res.PeakRSSMB = rss.peak()
	res.Pings, res.Unanswerd = len(rtts), int(unanswered.Load())
	sorted := slices.Clone(rtts)
	slices.Sort(sorted)
	res.P50ms, res.P99ms = ms(quantile(sorted, 0.5)), ms(quantile(sorted, 0.99))
	if len(sorted) > 0 {
		res.MaxMs = ms(sorted[len(sorted)-1])
	}
	res.Received, res.Duplicates = sink.counts()
	res.Lost = o.events - res.Received
	if !drained.IsZero() {
		res.DrainSeconds = drained.Sub(began).Seconds()
		res.EventsPerSec = float64(o.events) / res.DrainSeconds
	}
	if o.plot != "" {
		if err := writePlots(o.plot, rtts, rss); err != nil {
			return err
		}
	}
	if drained.IsZero() {
		return fmt.Errorf("time limit %v reached with %d of %d events at the sink", o.limit, res.Received, o.events)
	}
	return nil
}

// publishBacklog puts the fan-out event, then the backlog, into the
// stream.
func publishBacklog(ctx context.Context, url string, o *fanoutOptions) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: o.stream, Subjects: []string{o.subject}}); err != nil {
		return fmt.Errorf("stream %s: %w", o.stream, err)
	}
	if o.fanout > 0 {
		tos := make([]string, o.fanout)
		for i := range tos {
			tos[i] = fmt.Sprintf("fan%d@%s", i+1, o.fanoutDomain)
		}
		b, _ := json.Marshal(map[string]any{"to": tos, "body": "storm"})
		if _, err := js.Publish(ctx, o.subject, b); err != nil {
			return fmt.Errorf("publish the fan-out event: %w", err)
		}
	}
	for i := range o.events {
		b, _ := json.Marshal(map[string]any{"to": o.sink.jid.String(), "body": fmt.Sprintf("ev %d", i)})
		if _, err := js.PublishAsync(o.subject, b); err != nil {
			return fmt.Errorf("publish event %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		return errors.New("the backlog was not stored within 30s")
	}
	return nil
}

// row formats the result as one markdown table row.
func (r *FanoutResult) row() string {
	status := "ok"
	if r.Error != "" {
		status = r.Error
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %.1f | %.1f | %.1f | %d | %.2f | %.0f | %d | %d | %d | %s | %s | %s |", r.Label, r.Events, r.FanOut,
		r.Pings, r.P50ms, r.P99ms, r.MaxMs, r.Unanswerd, r.DrainSeconds, r.EventsPerSec, r.Received, r.Duplicates, r.Lost,
		optf(r.PeakRSSMB, "%.1f"), optf(r.IdleRSSMB, "%.1f"), status)
}

// fanoutHeader is the table header of row.
const fanoutHeader = "| bot | events | fan-out | pings | p50 ms | p99 ms | max ms | unanswered | drain s | events/s | received | duplicates | lost | peak RSS MB | RSS after MB | status |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
