// Command crierload measures an XMPP bot under load: how many "!ping"
// messages it answers per second, the round trip of each, and, when it
// starts the bot itself, the time from process start to joined room, the
// idle resident memory and the CPU time per 1,000 replies.
//
// It logs in K clients (one per -accounts entry), joins them to -room, keeps
// -inflight pings unanswered across them and counts the "pong NICK" replies
// until -count replies arrived or -time passed, whichever comes first.
//
//	crierload -addr 127.0.0.1:5222 -ca cert.pem -room bench@conference.localhost \
//		-accounts user1:user1pw,user2:user2pw -bot-nick crier -bot-jid crier@localhost \
//		-mode room -bot-cmd "./crier run -c bench.toml" -label crier -json results.jsonl
//
// Each run prints one markdown table row and one JSON object. The
// subcommand "crierload summarize FILE..." reads the JSON lines of several
// runs and prints the medians per bot and mode, side by side; "crierload
// rooms" measures crier in many rooms (rooms.go).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"
)

// Result is what one run measured. Durations are in milliseconds; a field
// that was not measured is zero.
type Result struct {
	Label           string  `json:"label"`
	Mode            string  `json:"mode"`
	Clients         int     `json:"clients"`
	InFlight        int     `json:"inflight"`
	Count           int     `json:"count"`
	Replies         int     `json:"replies"`
	Seconds         float64 `json:"seconds"`
	RepliesPerSec   float64 `json:"replies_per_s"`
	P50ms           float64 `json:"p50_ms"`
	P99ms           float64 `json:"p99_ms"`
	StartToJoinedMs float64 `json:"start_to_joined_ms,omitempty"`
	IdleRSSMB       float64 `json:"idle_rss_mb,omitempty"`
	// LoadedRSSMB is the bot's RSS right after the measured replies.
	LoadedRSSMB float64 `json:"loaded_rss_mb,omitempty"`
	CPUPer1000  float64 `json:"cpu_s_per_1000,omitempty"`
	// ServerCPUPer1000 is the XMPP server's CPU time per 1,000 replies
	// (-server-pid): what serving this bot costs the server.
	ServerCPUPer1000 float64 `json:"server_cpu_s_per_1000,omitempty"`
	// Wire is, with -metrics, the elements per reply on the bot's stream
	// by direction and kind ("out sm_r": ack requests the bot sent).
	Wire  map[string]float64 `json:"wire_per_reply,omitempty"`
	Error string             `json:"error,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rooms" {
		if err := roomsMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "crierload rooms:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "fanout" {
		os.Exit(fanoutMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "summarize" {
		if err := summarize(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "crierload:", err)
			os.Exit(1)
		}
		return
	}
	res, err := run(os.Args[1:])
	if res != nil {
		fmt.Println(res.row())
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crierload:", err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	addr, caFile, domain string
	accounts             []account
	room, botNick        string
	botJID               string
	mode                 string
	inflight, count      int
	limit, stall, idle   time.Duration
	botCmd, botLog       string
	label, jsonFile      string
	serverPID            int
	metricsURL, plot     string
}

type account struct {
	jid      jid.JID
	password string
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("crierload", flag.ContinueOnError)
	o := &options{}
	var accounts string
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5222", "the server's client port (STARTTLS), host:port")
	fs.StringVar(&o.caFile, "ca", "", "a PEM file of certificates to trust (the server's self-signed certificate)")
	fs.StringVar(&o.domain, "domain", "localhost", "the XMPP domain of the accounts")
	fs.StringVar(&accounts, "accounts", "user1:user1pw", "comma-separated user:password pairs, one client each")
	fs.StringVar(&o.room, "room", "bench@conference.localhost", "the room the clients and the bot join")
	fs.StringVar(&o.botNick, "bot-nick", "crier", "the bot's nickname in the room")
	fs.StringVar(&o.botJID, "bot-jid", "crier@localhost", "the bot's JID, the target of chat mode")
	fs.StringVar(&o.mode, "mode", "room", "room (groupchat in -room) or chat (one-to-one to -bot-jid)")
	fs.IntVar(&o.inflight, "inflight", 50, "pings kept unanswered, spread over the clients")
	fs.IntVar(&o.count, "count", 10000, "replies to wait for")
	fs.DurationVar(&o.limit, "time", 2*time.Minute, "limit for the whole load phase")
	fs.DurationVar(&o.stall, "stall", 10*time.Second, "give up when no reply arrives for this long")
	fs.DurationVar(&o.idle, "idle", 2*time.Second, "how long the started bot idles in the room before its memory is read")
	fs.StringVar(&o.botCmd, "bot-cmd", "", "start the bot with this command (split on spaces, no shell) and measure the process")
	fs.StringVar(&o.botLog, "bot-log", "", "file for the started bot's output (default: discarded)")
	fs.StringVar(&o.label, "label", "bot", "the name of this bot in the output")
	fs.StringVar(&o.jsonFile, "json", "", "append the result as one JSON line to this file")
	fs.IntVar(&o.serverPID, "server-pid", 0, "the XMPP server's process id: its CPU time per 1,000 replies is measured too")
	fs.StringVar(&o.metricsURL, "metrics", "", "the bot's /metrics URL (crier): count the elements per reply on its stream")
	fs.StringVar(&o.plot, "plot", "", "write PREFIX-latency.png (round-trip distribution) and PREFIX-rss.png (the started bot's RSS over the run)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.mode != "room" && o.mode != "chat" {
		return nil, fmt.Errorf("-mode %q: want room or chat", o.mode)
	}
	if o.inflight < 1 || o.count < 1 || o.limit <= 0 || o.stall <= 0 {
		return nil, errors.New("-inflight, -count, -time and -stall must be positive")
	}
	for _, a := range strings.Split(accounts, ",") {
		user, pw, ok := strings.Cut(strings.TrimSpace(a), ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("-accounts: %q is not user:password", a)
		}
		if !strings.Contains(user, "@") {
			user += "@" + o.domain
		}
		j, err := jid.Parse(user)
		if err != nil {
			return nil, fmt.Errorf("-accounts: %w", err)
		}
		o.accounts = append(o.accounts, account{jid: j.Bare(), password: pw})
	}
	if o.inflight < len(o.accounts) {
		return nil, fmt.Errorf("-inflight %d is less than the %d clients", o.inflight, len(o.accounts))
	}
	return o, nil
}

// load is the state shared by the clients of one run.
type load struct {
	o        *options
	wantType string
	target   string // the address pings go to
	botFrom  func(from string) bool

	botSeen chan time.Time // the bot's occupant presence, first arrival
	seen    sync.Once

	sent    atomic.Int64
	replies atomic.Int64
	last    atomic.Int64 // unix nanoseconds of the last counted reply
	done    chan struct{}
	endOnce sync.Once
}

// perClient is the per-client side of the load: its window and the send
// times of its unanswered pings, oldest first (the bot and the server keep
// each sender's order).
type perClient struct {
	window chan struct{}
	mu     sync.Mutex
	fifo   []time.Time
	rtts   []time.Duration
	joined chan struct{}
	once   sync.Once
}

func run(args []string) (*Result, error) {
	o, err := parseFlags(args)
	if err != nil {
		return nil, err
	}
	res := &Result{Label: o.label, Mode: o.mode, Clients: len(o.accounts), InFlight: o.inflight, Count: o.count}
	err = measure(o, res)
	if err != nil {
		res.Error = err.Error()
	}
	if o.jsonFile != "" {
		if werr := appendJSON(o.jsonFile, res); werr != nil && err == nil {
			err = werr
		}
	}
	return res, err
}

func measure(o *options, res *Result) error {
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
	l := &load{o: o, botSeen: make(chan time.Time, 1), done: make(chan struct{})}
	botOccupant := o.room + "/" + o.botNick
	if o.mode == "room" {
		l.wantType, l.target = "groupchat", o.room
		l.botFrom = func(from string) bool { return from == botOccupant }
	} else {
		l.wantType, l.target = "chat", o.botJID
		bare := bareOf(o.botJID)
		l.botFrom = func(from string) bool { return bareOf(from) == bare }
	}

	// Log in and join every client before the bot starts, so that the
	// bot's arrival in the room is seen as it happens.
	clients := make([]*client, 0, len(o.accounts))
	per := make([]*perClient, 0, len(o.accounts))
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for i, a := range o.accounts {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := login(ctx, o.addr, tlsCfg, a.jid, a.password, a.jid.Localpart())
		cancel()
		if err != nil {
			return err
		}
		n := o.inflight / len(o.accounts)
		if i < o.inflight%len(o.accounts) {
			n++
		}
		pc := &perClient{window: make(chan struct{}, n), joined: make(chan struct{}), rtts: make([]time.Duration, 0, o.count/len(o.accounts)+1)}
		for range n {
			pc.window <- struct{}{}
		}
		clients = append(clients, c)
		per = append(per, pc)
		c.start(func(c *client, s *inStanza) { l.handle(c, pc, s) })
		join := fmt.Sprintf("<presence to='%s/%s'><x xmlns='%s'><history maxstanzas='0'/></x></presence>", escape(o.room), escape(c.nick), nsMUC)
		if err := c.write([]byte(join)); err != nil {
			return err
		}
		select {
		case <-pc.joined:
		case <-c.done:
			return fmt.Errorf("%s: stream ended while joining %s: %v", a.jid, o.room, c.readErr)
		case <-time.After(20 * time.Second):
			return fmt.Errorf("%s: no answer to the join of %s", a.jid, o.room)
		}
	}

	var bot *botProc
	if o.botCmd != "" {
		select {
		case <-l.botSeen:
			return fmt.Errorf("%s is already in %s: stop that bot first", o.botNick, o.room)
		default:
		}
		var err error
		if bot, err = startBot(o.botCmd, o.botLog); err != nil {
			return err
		}
		defer bot.stop()
		select {
		case at := <-l.botSeen:
			res.StartToJoinedMs = ms(at.Sub(bot.started))
		case <-bot.exited:
			return fmt.Errorf("the bot exited before joining: %v", bot.err)
		case <-time.After(30 * time.Second):
			return fmt.Errorf("the bot did not join %s within 30s", o.room)
		}
		time.Sleep(o.idle)
		rss, err := rssMB(bot.pid())
		if err != nil {
			return err
		}
		res.IdleRSSMB = rss
	} else {
		select {
		case <-l.botSeen:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("%s is not in %s", o.botNick, o.room)
		}
	}

	var cpu0, srv0 float64
	if bot != nil {
		var err error
		if cpu0, err = cpuSeconds(bot.pid()); err != nil {
			return err
		}
	}
	if o.serverPID > 0 {
		var err error
		if srv0, err = cpuSeconds(o.serverPID); err != nil {
			return fmt.Errorf("-server-pid: %w", err)
		}
	}
	var wire0 map[string]float64
	if o.metricsURL != "" {
		var err error
		if wire0, err = stanzaCounts(o.metricsURL); err != nil {
			return fmt.Errorf("-metrics: %w", err)
		}
	}
	var rss *rssSampler
	if bot != nil && o.plot != "" {
		rss = sampleRSS(bot.pid(), 100*time.Millisecond)
		defer rss.stop()
	}
	began := time.Now()
	for i, c := range clients {
		go l.send(c, per[i])
	}
	err := l.wait(clients, bot)
	end := time.Unix(0, l.last.Load())
	res.Replies = int(min(l.replies.Load(), int64(o.count)))
	if bot != nil {
		if rss, err := rssMB(bot.pid()); err == nil {
			res.LoadedRSSMB = rss
		}
	}
	if bot != nil && res.Replies > 0 {
		cpu1, cerr := cpuSeconds(bot.pid())
		if cerr == nil {
			res.CPUPer1000 = (cpu1 - cpu0) * 1000 / float64(res.Replies)
		}
	}
	if o.serverPID > 0 && res.Replies > 0 {
		if srv1, serr := cpuSeconds(o.serverPID); serr == nil {
			res.ServerCPUPer1000 = (srv1 - srv0) * 1000 / float64(res.Replies)
		}
	}
	l.endOnce.Do(func() { close(l.done) }) // stops the senders after an early end
	if res.Replies > 0 {
		res.Seconds = end.Sub(began).Seconds()
		res.RepliesPerSec = float64(res.Replies) / res.Seconds
		var all []time.Duration
		for _, pc := range per {
			pc.mu.Lock()
			all = append(all, pc.rtts...)
			pc.mu.Unlock()
		}
		slices.Sort(all)
		res.P50ms = ms(quantile(all, 0.50))
		res.P99ms = ms(quantile(all, 0.99))
		if wire0 != nil {
			if wire1, werr := stanzaCounts(o.metricsURL); werr == nil {
				res.Wire = perReply(wire0, wire1, res.Replies)
			}
		}
		if o.plot != "" {
			if rss != nil {
				rss.stop()
			}
			if perr := writePlots(o.plot, all, rss); perr != nil && err == nil {
				err = perr
			}
		}
	}
	return err
}

// wait returns when -count replies arrived, or with an error when the time
// limit passed, no reply came for -stall, a client's stream ended or the
// bot exited.
func (l *load) wait(clients []*client, bot *botProc) error {
	limit := time.NewTimer(l.o.limit)
	defer limit.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var exited <-chan struct{}
	if bot != nil {
		exited = bot.exited
	}
	lastCount, lastChange := int64(0), time.Now()
	for {
		select {
		case <-l.done:
			return nil
		case <-limit.C:
			return fmt.Errorf("time limit %v reached after %d of %d replies", l.o.limit, l.replies.Load(), l.o.count)
		case <-exited:
			return fmt.Errorf("the bot exited during the run: %v", bot.err)
		case <-tick.C:
			n := l.replies.Load()
			if n != lastCount {
				lastCount, lastChange = n, time.Now()
			} else if time.Since(lastChange) > l.o.stall {
				return fmt.Errorf("no reply for %v after %d of %d replies", l.o.stall, n, l.o.count)
			}
			for _, c := range clients {
				select {
				case <-c.done:
					return fmt.Errorf("a client's stream ended: %v", c.readErr)
				default:
				}
			}
		}
	}
}

// send keeps the client's window full until -count pings were sent in all.
func (l *load) send(c *client, pc *perClient) {
	raw := []byte(fmt.Sprintf("<message to='%s' type='%s'><body>!ping</body></message>", escape(l.target), l.wantType))
	for {
		select {
		case <-pc.window:
		case <-l.done:
			return
		}
		if l.sent.Add(1) > int64(l.o.count) {
			return
		}
		pc.mu.Lock()
		pc.fifo = append(pc.fifo, time.Now())
		pc.mu.Unlock()
		if err := c.write(raw); err != nil {
			return // the reader sees the stream end and wait reports it
		}
	}
}

// handle is called by a client's reader for each element.
func (l *load) handle(c *client, pc *perClient, s *inStanza) {
	switch s.name {
	case "presence":
		if bareOf(s.from) != l.o.room {
			return
		}
		if s.typ == "" && resourceOf(s.from) == l.o.botNick {
			at := time.Now()
			l.seen.Do(func() { l.botSeen <- at })
		}
		if s.hasStatus("110") || (s.typ == "error" && resourceOf(s.from) == c.nick) {
			pc.once.Do(func() { close(pc.joined) })
		}
	case "message":
		if s.typ != l.wantType || s.body != "pong "+c.nick || !l.botFrom(s.from) {
			return
		}
		now := time.Now()
		pc.mu.Lock()
		if len(pc.fifo) == 0 {
			pc.mu.Unlock()
			return // a reply to a ping of an earlier run
		}
		sentAt := pc.fifo[0]
		pc.fifo = pc.fifo[1:]
		pc.rtts = append(pc.rtts, now.Sub(sentAt))
		pc.mu.Unlock()
		n := l.replies.Add(1)
		if n <= int64(l.o.count) {
			l.last.Store(now.UnixNano())
		}
		if n == int64(l.o.count) {
			l.endOnce.Do(func() { close(l.done) })
		}
		select {
		case pc.window <- struct{}{}:
		default:
		}
	}
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// row formats the result as one markdown table row, in the columns of
// header.
func (r *Result) row() string {
	opt := optf
	status := "ok"
	if r.Error != "" {
		status = r.Error
	}
	return fmt.Sprintf("| %s | %s | %d | %.0f | %.1f | %.1f | %s | %s | %s | %s | %s |", r.Label, r.Mode, r.Replies, r.RepliesPerSec,
		r.P50ms, r.P99ms, opt(r.CPUPer1000, "%.3f"), opt(r.ServerCPUPer1000, "%.3f"), opt(r.IdleRSSMB, "%.1f"), opt(r.StartToJoinedMs, "%.0f"), status)
}

func appendJSON(path string, r *Result) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// botProc is a bot process started by crierload.
type botProc struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{}
	err     error
	log     io.Closer
}

// startBot starts command (split on spaces) with its output going to
// logPath, or nowhere.
func startBot(command, logPath string) (*botProc, error) {
	args := strings.Fields(command)
	if len(args) == 0 {
		return nil, errors.New("-bot-cmd is empty")
	}
	cmd := exec.Command(args[0], args[1:]...)
	p := &botProc{cmd: cmd, exited: make(chan struct{})}
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr, p.log = f, f, f
	}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		if p.log != nil {
			p.log.Close()
		}
		return nil, fmt.Errorf("start the bot: %w", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *botProc) pid() int { return p.cmd.Process.Pid }

// stop asks the bot to shut down (SIGTERM), and kills it after 10 s.
func (p *botProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	if p.log != nil {
		p.log.Close()
	}
}
