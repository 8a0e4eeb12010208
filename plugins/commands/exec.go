package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"crier/internal/state"
	"crier/plugins"
)

// confirmWord is the chat command that confirms a destructive one.
const confirmWord = "confirm"

// Bounds of the in-memory maps.
const (
	maxBuckets  = 4096 // rate-limit buckets and hint guards
	maxPending  = 1024 // confirmations waiting
	maxSessions = 1024 // XEP-0050 sessions
	hintWindow  = time.Minute
)

type whoKey struct{}

// whoFrom returns the requester of the command running under ctx.
func whoFrom(ctx context.Context) who {
	w, _ := ctx.Value(whoKey{}).(who)
	return w
}

// spawn runs f on a goroutine of its own, at most maxRunning at once; it
// reports false when that many already run.
func (p *Plugin) spawn(f func(ctx context.Context)) bool {
	select {
	case p.sem <- struct{}{}:
	default:
		p.m.rejected.WithLabelValues(reasonBusy).Inc()
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.sem }()
		f(p.ctx)
	}()
	return true
}

// outcome is what running a command (or its preview) gave.
type outcome struct {
	reply  plugins.Reply
	err    error
	result string // resultOK, resultError, resultPanic, resultTimeout
}

// protect runs f under the time limit, recovering a panic.
func (p *Plugin) protect(ctx context.Context, w who, name string, f func(ctx context.Context) (plugins.Reply, error)) outcome {
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, whoKey{}, w), p.runTimeout)
	defer cancel()
	ch := make(chan outcome, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				p.log.Error("command panicked", "command", name, "from", w.from, "err", fmt.Errorf("panic: %v", v), "stack", string(debug.Stack()))
				p.m.rejected.WithLabelValues(reasonPanic).Inc()
				ch <- outcome{err: errors.New("internal error"), result: resultPanic}
			}
		}()
		r, err := f(ctx)
		res := resultOK
		if err != nil {
			res = resultError
		}
		ch <- outcome{reply: r, err: err, result: res}
	}()
	select {
	case o := <-ch:
		return o
	case <-ctx.Done():
		p.m.rejected.WithLabelValues(reasonTimeout).Inc()
		p.log.Warn("command timed out", "command", name, "from", w.from, "limit", p.runTimeout)
		return outcome{err: fmt.Errorf("timed out after %s", p.runTimeout), result: resultTimeout}
	}
}

// execute runs a command whose rights, arguments and confirmation are
// settled: counted, audited.
func (p *Plugin) execute(ctx context.Context, w who, cmd *plugins.Command, call *plugins.Call) outcome {
	o := p.protect(ctx, w, cmd.Name, func(ctx context.Context) (plugins.Reply, error) { return cmd.Run(ctx, call) })
	p.m.total.WithLabelValues(cmd.Name, surfaceName(w.surface), o.result).Inc()
	if audited(cmd) {
		p.audit.record(w, cmd.Name, call.Args, o.result, o.err)
	}
	return o
}

// preview asks a destructive command what the call would do: the text to
// confirm ("" when this call needs no confirmation).
func (p *Plugin) preview(ctx context.Context, w who, cmd *plugins.Command, call *plugins.Call) (string, error) {
	if !cmd.Destructive {
		return "", nil
	}
	if cmd.Preview == nil {
		return fmt.Sprintf("%s%s is destructive", p.cfg.Prefix, cmd.Name), nil
	}
	o := p.protect(ctx, w, cmd.Name, func(ctx context.Context) (plugins.Reply, error) {
		s, err := cmd.Preview(ctx, call)
		return plugins.Reply{Text: s}, err
	})
	if o.err != nil {
		return "", o.err
	}
	return o.reply.Text, nil
}

// audited reports whether runs of cmd are audited: every admin command.
func audited(cmd *plugins.Command) bool { return cmd.Global || cmd.Level >= plugins.Admin }

func (p *Plugin) newCall(w who, cmd *plugins.Command, args map[string]string) *plugins.Call {
	return &plugins.Call{
		Command: cmd.Name, Surface: w.surface,
		From: w.from, RealJID: w.real, Room: w.room, Nick: w.nick,
		Level: p.levelFor(w, cmd), Args: args, Time: p.now(),
	}
}

// chatCommand checks and runs a chat command.
func (p *Plugin) chatCommand(ev *plugins.Event, cmd plugins.Command, rest string) {
	w := p.chatWho(ev)
	if ok, warn := p.rateAllow(w); !ok {
		p.m.total.WithLabelValues(cmd.Name, "chat", resultRefused).Inc()
		if warn {
			p.reply(ev, fmt.Sprintf("slow down: at most %d commands per %s", p.cfg.Rate.N, p.cfg.Rate.Per))
		}
		return
	}
	if !p.allowed(w, &cmd) {
		p.m.rejected.WithLabelValues(reasonForbidden).Inc()
		p.m.total.WithLabelValues(cmd.Name, "chat", resultRefused).Inc()
		if audited(&cmd) {
			p.audit.record(w, cmd.Name, nil, "forbidden", nil)
		}
		p.reply(ev, "forbidden: "+p.forbiddenText(w, &cmd))
		return
	}
	max := p.cfg.MaxArgBytes
	var args map[string]string
	var err error
	if limit := max * maxLineBytesFactor; len(rest) > limit {
		err = &argError{reason: reasonTooBig, msg: fmt.Sprintf("the line is %d bytes; the limit is %d", len(rest), limit)}
	} else {
		args, err = parseLine(&cmd, rest, max)
	}
	if err != nil {
		reason := reasonBadArgs
		var ae *argError
		if errors.As(err, &ae) {
			reason = ae.reason
		}
		p.m.rejected.WithLabelValues(reason).Inc()
		p.m.total.WithLabelValues(cmd.Name, "chat", resultRefused).Inc()
		p.reply(ev, fmt.Sprintf("%s%s: %v — usage: %s", p.cfg.Prefix, cmd.Name, err, usage(p.cfg.Prefix, &cmd)))
		return
	}
	call := p.newCall(w, &cmd, args)
	evc := *ev
	if !p.spawn(func(ctx context.Context) {
		prompt, err := p.preview(ctx, w, &cmd, call)
		if err != nil {
			p.m.total.WithLabelValues(cmd.Name, "chat", resultError).Inc()
			p.reply(&evc, fmt.Sprintf("%s%s: %v", p.cfg.Prefix, cmd.Name, err))
			return
		}
		if prompt != "" {
			p.confirms.put(w.key()+"\x00"+w.place(), pending{cmd: cmd, call: call, expires: p.now().Add(time.Duration(p.cfg.ConfirmTimeout))})
			p.m.total.WithLabelValues(cmd.Name, "chat", resultPending).Inc()
			if audited(&cmd) {
				p.audit.record(w, cmd.Name, call.Args, "confirmation asked", nil)
			}
			p.reply(&evc, fmt.Sprintf("%s — reply `%s%s` within %s", prompt, p.cfg.Prefix, confirmWord, p.cfg.ConfirmTimeout))
			return
		}
		p.reply(&evc, chatText(cmd.Name, p.execute(ctx, w, &cmd, call)))
	}) {
		p.reply(ev, "busy: too many commands running, try again shortly")
	}
}

// chatConfirm runs the requester's command waiting for confirmation here.
func (p *Plugin) chatConfirm(ev *plugins.Event) {
	w := p.chatWho(ev)
	if ok, warn := p.rateAllow(w); !ok {
		if warn {
			p.reply(ev, fmt.Sprintf("slow down: at most %d commands per %s", p.cfg.Rate.N, p.cfg.Rate.Per))
		}
		return
	}
	pd, ok := p.confirms.take(w.key()+"\x00"+w.place(), p.now())
	if !ok {
		p.m.rejected.WithLabelValues(reasonNoPending).Inc()
		p.reply(ev, "nothing to confirm here (or it expired)")
		return
	}
	if !p.allowed(w, &pd.cmd) { // rights may have changed meanwhile
		p.m.rejected.WithLabelValues(reasonForbidden).Inc()
		p.reply(ev, "forbidden: "+p.forbiddenText(w, &pd.cmd))
		return
	}
	evc := *ev
	if !p.spawn(func(ctx context.Context) {
		p.reply(&evc, chatText(pd.cmd.Name, p.execute(ctx, w, &pd.cmd, pd.call)))
	}) {
		p.reply(ev, "busy: too many commands running, try again shortly")
	}
}

// chatText renders an outcome as a chat message.
func chatText(name string, o outcome) string {
	if o.err != nil {
		return name + ": " + o.err.Error()
	}
	var b strings.Builder
	b.WriteString(o.reply.Text)
	if t := o.reply.Table; t != nil {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(tableText(t))
	}
	if b.Len() == 0 {
		return name + ": done"
	}
	return b.String()
}

// tableText aligns a table in columns.
func tableText(t *plugins.Table) string {
	width := make([]int, len(t.Columns))
	for i, c := range t.Columns {
		width[i] = len([]rune(c))
	}
	for _, r := range t.Rows {
		for i := 0; i < len(r) && i < len(width); i++ {
			width[i] = max(width[i], len([]rune(r[i])))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		var l strings.Builder
		for i := range width {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			l.WriteString(c)
			if i < len(width)-1 {
				l.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+2))
			}
		}
		b.WriteString(strings.TrimRightFunc(l.String(), unicode.IsSpace))
		b.WriteByte('\n')
	}
	line(t.Columns)
	for _, r := range t.Rows {
		line(r)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// reply answers a chat event where it came from: the room, or the sender.
func (p *Plugin) reply(ev *plugins.Event, text string) {
	m := plugins.Message{Type: "chat", To: ev.From, Body: text, Interactive: true}
	if ev.Type == "groupchat" && ev.Room != "" {
		m.Type, m.To = "groupchat", ev.Room
		if ev.Nick != "" {
			m.Body = ev.Nick + ": " + text
		}
	}
	if err := p.host.Send(m, nil); err != nil {
		p.log.Warn("command reply not sent", "to", m.To, "err", err)
	}
}

// rateAllow takes a token from the requester's bucket; warn is true once
// per window when refused, for the "slow down" line.
func (p *Plugin) rateAllow(w who) (ok, warn bool) {
	if p.cfg.Rate.Off() || (p.cfg.AdminsExemptFromRate && p.isAdmin(w)) {
		return true, false
	}
	ok, warn = p.limiter.allow(w.key(), p.now())
	if !ok {
		p.m.rejected.WithLabelValues(reasonRateLimited).Inc()
	}
	return ok, warn
}

// limiter is a token bucket per requester, in a bounded map.
type limiter struct {
	mu  sync.Mutex
	n   float64
	per time.Duration
	max int
	m   map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
	warned time.Time
}

func newLimiter(r Rate, max int) *limiter {
	return &limiter{n: float64(r.N), per: r.Per, max: max, m: map[string]*bucket{}}
}

func (l *limiter) allow(key string, now time.Time) (ok, warn bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		if len(l.m) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: l.n, last: now}
		l.m[key] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(l.n, b.tokens+l.n*float64(el)/float64(l.per))
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, false
	}
	if now.Sub(b.warned) >= l.per {
		b.warned = now
		return false, true
	}
	return false, false
}

// evict drops the buckets idle long enough to be full again; when none
// is, an arbitrary one, so that a spread of senders cannot grow the map.
func (l *limiter) evict(now time.Time) {
	for k, b := range l.m {
		if now.Sub(b.last) >= l.per {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < l.max {
			break
		}
		delete(l.m, k)
	}
}

// hintGuard allows one unknown-command hint per key and window.
type hintGuard struct {
	mu   sync.Mutex
	max  int
	last map[string]time.Time
}

func newHintGuard(max int) *hintGuard { return &hintGuard{max: max, last: map[string]time.Time{}} }

func (g *hintGuard) allow(key string, now time.Time, window time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t, ok := g.last[key]; ok && now.Sub(t) < window {
		return false
	}
	if len(g.last) >= g.max {
		for k, t := range g.last {
			if now.Sub(t) >= window || len(g.last) >= g.max {
				delete(g.last, k)
			}
		}
	}
	g.last[key] = now
	return true
}

// looksLikeCommand: a word a person would type as a command name, not
// "!!!" or "!?" or "!1".
func looksLikeCommand(name string) bool {
	if len(name) == 0 || len(name) > 32 {
		return false
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '_'):
		default:
			return false
		}
	}
	return true
}

// looksLikeHint reports a message that quotes an unknown-command hint:
// another bot answering ours, which must not be answered again.
func looksLikeHint(body string) bool {
	return strings.Contains(strings.ToLower(body), "unknown command")
}

// closest suggests a command the requester may run that is near name.
func (p *Plugin) closest(name string, w who) string {
	name = strings.ToLower(name)
	best, bestD := "", max(1, len(name)/3)+1
	for _, c := range p.visible(w) {
		d := editDistance(name, c.Name)
		if strings.HasPrefix(c.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = c.Name, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance of two short
// strings: insertions, deletions, substitutions and transpositions of
// neighbours ("hlep" is one away from "help").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// pending is a destructive chat command waiting for its confirmation.
type pending struct {
	cmd     plugins.Command
	call    *plugins.Call
	expires time.Time
}

// confirms holds one pending command per requester and place.
type confirms struct {
	mu  sync.Mutex
	max int
	m   map[string]pending
}

func newConfirms(max int) *confirms { return &confirms{max: max, m: map[string]pending{}} }

func (c *confirms) put(key string, pd pending) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		var oldK string
		var oldT time.Time
		for k, v := range c.m {
			if oldK == "" || v.expires.Before(oldT) {
				oldK, oldT = k, v.expires
			}
		}
		delete(c.m, oldK)
	}
	c.m[key] = pd
}

func (c *confirms) take(key string, now time.Time) (pending, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pd, ok := c.m[key]
	delete(c.m, key)
	if !ok || now.After(pd.expires) {
		return pending{}, false
	}
	return pd, true
}

// auditRecord is one audited admin command, as stored and published.
type auditRecord struct {
	Time    time.Time         `json:"time"`
	Who     string            `json:"who"`
	From    string            `json:"from"`
	Where   string            `json:"where"`
	Surface string            `json:"surface"`
	Command string            `json:"command"`
	Args    map[string]string `json:"args,omitempty"`
	Result  string            `json:"result"`
	Error   string            `json:"error,omitempty"`
}

const auditPrefix = "audit/"

// auditor writes audit records to the log, the store and NATS.
type auditor struct {
	p   *Plugin
	seq atomic.Uint64
}

func (a *auditor) record(w who, command string, args map[string]string, result string, err error) {
	p := a.p
	rec := auditRecord{
		Time: p.now().UTC(), Who: w.key(), From: w.from, Where: w.where(),
		Surface: surfaceName(w.surface), Command: command, Result: result,
	}
	if len(args) > 0 {
		rec.Args = make(map[string]string, len(args))
		for k, v := range args {
			rec.Args[k] = clip(v, 200)
		}
	}
	if err != nil {
		rec.Error = err.Error()
	}
	p.log.Info("command audit", "who", rec.Who, "from", rec.From, "where", rec.Where, "surface", rec.Surface,
		"command", command, "args", rec.Args, "result", result, "err", err)
	data, jerr := json.Marshal(rec)
	if jerr != nil {
		p.log.Error("audit record not encoded", "err", jerr)
		return
	}
	if p.ns != nil {
		key := fmt.Sprintf("%s%020d-%06d", auditPrefix, rec.Time.UnixNano(), a.seq.Add(1)%1_000_000)
		if err := p.ns.Update(func(tx state.Tx) error {
			if err := tx.Put(key, data); err != nil {
				return err
			}
			return trimAudit(tx, auditKeep)
		}); err != nil {
			p.log.Warn("audit record not stored", "err", err)
		}
	}
	if p.host != nil {
		if err := p.host.Publish(auditSubject, data); err != nil && !errors.Is(err, plugins.ErrUnsupported) {
			p.log.Warn("audit event not published", "subject", auditSubject, "err", err)
		}
	}
}

// trimAudit keeps the last keep audit records.
func trimAudit(tx state.Tx, keep int) error {
	var keys []string
	if err := tx.ForEach(auditPrefix, func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return err
	}
	for i := 0; i < len(keys)-keep; i++ {
		if err := tx.Delete(keys[i]); err != nil {
			return err
		}
	}
	return nil
}
