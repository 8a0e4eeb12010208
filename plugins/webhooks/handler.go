package webhooks

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	"mellium.im/xmpp/jid"

	"crier/internal/payload"
	"crier/internal/state"
	"crier/plugins"
)

// alertTTL is how long a firing alert is listed by the alerts command
// after its last notification, when no resolution comes. Alertmanager
// repeats a firing group every repeat_interval (4h by default).
const alertTTL = 24 * time.Hour

// answer is the outcome of one request.
type answer struct {
	code int
	// reason labels crier_webhook_rejected_total for codes other than
	// 200; msg is the response body.
	reason, msg string
	err         error
}

// serve answers one request to webhook h.
func (p *Plugin) serve(h *hook, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	a := p.handle(h, w, r)
	path := h.cfg.Path
	p.met.requests.WithLabelValues(path, strconv.Itoa(a.code)).Inc()
	switch a.code {
	case http.StatusOK:
		p.met.delivery.WithLabelValues(path).Observe(time.Since(start).Seconds())
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(int((h.retryAfter+time.Second-1)/time.Second)))
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="crier"`)
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	}
	if a.code != http.StatusOK {
		p.met.rejected.WithLabelValues(path, a.reason).Inc()
		if h.logOK() {
			p.log.Warn("webhook request not delivered", "path", path, "code", a.code, "reason", a.reason,
				"remote", r.RemoteAddr, "err", a.err)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(a.code)
	fmt.Fprintln(w, a.msg)
}

// logOK reports whether a rejected request may be logged now: at most one
// line a second per webhook, so that a flood of bad requests does not
// flood the log (every one is counted).
func (h *hook) logOK() bool {
	now := time.Now().UnixNano()
	last := h.lastLog.Load()
	return now-last >= int64(time.Second) && h.lastLog.CompareAndSwap(last, now)
}

// handle checks, reads and delivers one request.
func (p *Plugin) handle(h *hook, w http.ResponseWriter, r *http.Request) answer {
	if r.Method != http.MethodPost {
		return answer{code: http.StatusMethodNotAllowed, reason: "method", msg: "POST only"}
	}
	if len(h.token) > 0 && !h.authorized(r.Header.Get("Authorization")) {
		return answer{code: http.StatusUnauthorized, reason: "unauthorized", msg: "missing or wrong bearer token"}
	}
	p.mu.Lock()
	if p.stopping || p.host == nil {
		p.mu.Unlock()
		return answer{code: http.StatusServiceUnavailable, reason: "stopping", msg: "crier is stopping"}
	}
	p.reqs.Add(1)
	p.mu.Unlock()
	defer p.reqs.Done()
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	default:
		return answer{code: http.StatusServiceUnavailable, reason: "busy", msg: "too many requests in flight"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.maxBytes)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return answer{code: http.StatusRequestEntityTooLarge, reason: "too_large",
				msg: fmt.Sprintf("body larger than %d bytes", h.maxBytes)}
		}
		return answer{code: http.StatusBadRequest, reason: "read", msg: "cannot read the body", err: err}
	}
	n, err := parse(h.cfg.Format, body, r.Header)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), errBadBody.Error()+": ")
		return answer{code: http.StatusBadRequest, reason: "bad_body", msg: msg, err: err}
	}
	msgs, err := p.messages(h, n)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), errBadBody.Error()+": ")
		return answer{code: http.StatusBadRequest, reason: "bad_body", msg: msg, err: err}
	}
	if !p.connected() {
		return answer{code: http.StatusServiceUnavailable, reason: "not_connected", msg: "not connected to the XMPP server"}
	}
	if n.group != nil {
		p.recordAlerts(h, n.group)
	}
	if len(msgs) == 0 {
		p.met.messages.WithLabelValues(h.cfg.Path, "unrouted").Inc()
		return answer{code: http.StatusOK, msg: "no recipient for these alerts"}
	}
	return p.deliver(h, n.key, msgs)
}

// connected reports whether the bot is connected to its server. The
// answer is kept for connCacheTTL: Host.Status builds the whole status
// (rooms, queues), too much for every request of a burst. A stale "yes"
// costs at most the webhook's timeout (the outbox holds the message until
// the connection is back, then 503 or 200); a stale "no", one retry.
func (p *Plugin) connected() bool {
	now := time.Now().UnixNano()
	if c := p.conn.Load(); c != nil && now-c.at < int64(connCacheTTL) {
		return c.ok
	}
	ok := p.host.Status().Connected
	p.conn.Store(&connState{ok: ok, at: now})
	return ok
}

// connCacheTTL is how long connected trusts the last Host.Status.
const connCacheTTL = 50 * time.Millisecond

// connState is a cached answer of connected.
type connState struct {
	ok bool
	at int64
}

// authorized compares the Authorization header with the webhook's token in
// constant time (of the token's hash, so that the length does not show).
func (h *hook) authorized(header string) bool {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	want := sha256.Sum256(h.token)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// deliver sends msgs (or waits for the copies already in flight) and
// answers 200 once the XMPP server has every one, 503 otherwise.
func (p *Plugin) deliver(h *hook, key string, msgs []outMsg) answer {
	path := h.cfg.Path
	var wait []*flight
	for _, m := range msgs {
		f, st := p.ledger.begin(key, m.to)
		switch st {
		case unitDelivered:
			p.met.messages.WithLabelValues(path, "duplicate").Inc()
			continue
		case unitWaiting:
			p.met.messages.WithLabelValues(path, "duplicate").Inc()
		case unitSend:
			if err := p.target(h, m.to).submit(queued{m: m, f: f}); err != nil {
				p.settle(h, []*flight{f}, err)
			}
		}
		wait = append(wait, f)
	}
	// Every flight is waited for (within the time limit), so that the
	// answer covers the whole request and a retry finds no copy of it
	// still in flight.
	timer := time.NewTimer(h.timeout)
	defer timer.Stop()
	var failed *flight
	for _, f := range wait {
		select {
		case <-f.done:
			if f.err != nil && failed == nil {
				failed = f
			}
		case <-timer.C:
			return answer{code: http.StatusServiceUnavailable, reason: "timeout",
				msg: fmt.Sprintf("not acknowledged by the XMPP server within %v", h.timeout)}
		case <-p.stopCtx.Done():
			return answer{code: http.StatusServiceUnavailable, reason: "stopping", msg: "crier is stopping"}
		}
	}
	if failed != nil {
		reason := "failed"
		if errors.Is(failed.err, plugins.ErrBusy) {
			reason = "busy"
		}
		return answer{code: http.StatusServiceUnavailable, reason: reason,
			msg: "not delivered to " + failed.to + ": " + failed.err.Error(), err: failed.err}
	}
	return answer{code: http.StatusOK, msg: fmt.Sprintf("delivered to %d recipients", len(msgs))}
}

// settle records the outcome of the flights of one stanza.
func (p *Plugin) settle(h *hook, flights []*flight, err error) {
	result := "delivered"
	if err != nil {
		result = "failed"
		if !errors.Is(err, plugins.ErrStopped) && !errors.Is(err, plugins.ErrBusy) {
			p.log.Warn("webhook message not delivered", "path", h.cfg.Path, "to", flights[0].to, "err", err)
		}
	}
	p.met.messages.WithLabelValues(h.cfg.Path, result).Add(float64(len(flights)))
	p.ledger.finish(flights, err, h.dedupe)
}

// messages renders a notification into one message per recipient.
func (p *Plugin) messages(h *hook, n *notification) ([]outMsg, error) {
	switch n.format {
	case FormatAlertmanager:
		return p.alertMessages(h, n.group), nil
	case FormatJSON:
		pl := n.payload
		tos := pl.To
		if len(tos) == 0 {
			labels := map[string]string{}
			for k, v := range pl.Fields {
				switch v := v.(type) {
				case string:
					labels[k] = v
				case json.Number:
					labels[k] = v.String()
				case bool:
					labels[k] = strconv.FormatBool(v)
				}
			}
			tos = h.targets(labels)
		}
		data := JSONData{Text: pl.Text, Title: pl.Title, Subject: pl.Title, Body: pl.Body, Type: pl.Type,
			Severity: pl.Severity, URL: pl.URL, ID: pl.ID, To: pl.To, Fields: pl.Fields, Path: h.cfg.Path, Header: safeHeader(n.header)}
		return p.render(h, dedup(tos), pl.Type, data)
	default:
		data := TextData{Text: n.text, Path: h.cfg.Path, Header: safeHeader(n.header)}
		return p.render(h, h.cfg.To, "", data)
	}
}

// render renders data once for every recipient in tos.
func (p *Plugin) render(h *hook, tos []string, typ string, data any) ([]outMsg, error) {
	body := p.exec(h, h.body, h.defBody, data)
	if body == "" {
		return nil, badBody("the message renders to an empty body")
	}
	subj := p.exec(h, h.subj, h.defSubj, data)
	var out []outMsg
	for _, to := range tos {
		j, err := jid.Parse(to)
		if err != nil || j.Domainpart() == "" {
			return nil, badBody("to %q is not a JID", to)
		}
		out = append(out, p.outMsg(h, j.String(), typ, body, subj))
	}
	return out, nil
}

// alertMessages routes each alert of g and renders one message per
// recipient with the alerts routed to it.
func (p *Plugin) alertMessages(h *hook, g *Group) []outMsg {
	var order []string
	byTo := map[string][]Alert{}
	for _, a := range g.Alerts {
		for _, to := range dedup(h.targets(a.Labels)) {
			if _, ok := byTo[to]; !ok {
				order = append(order, to)
			}
			byTo[to] = append(byTo[to], a)
		}
	}
	var out []outMsg
	type rendered struct{ body, subj string }
	cache := map[string]rendered{}
	for _, to := range order {
		alerts := byTo[to]
		// Recipients with the same alerts share one rendering, unless the
		// templates use the recipient.
		ck := alertSetKey(alerts)
		rd, ok := cache[ck]
		if !ok {
			data := newMessages(*g, alerts, h.maxAlerts, h.cfg.Path, to)
			rd = rendered{p.exec(h, h.body, h.defBody, data), p.exec(h, h.subj, h.defSubj, data)}
			if !h.usesTo {
				cache[ck] = rd
			}
		}
		out = append(out, p.outMsg(h, to, "", rd.body, rd.subj))
	}
	return out
}

func alertSetKey(alerts []Alert) string {
	var b strings.Builder
	for _, a := range alerts {
		b.WriteString(a.Fingerprint)
		b.WriteString(a.Status)
		b.WriteByte(0)
	}
	return b.String()
}

// outMsg picks the message type for one recipient: the payload's type if
// it has one; groupchat for a room or when the webhook's type is
// groupchat; else the webhook's type, headline by default. Rooms never get
// a subject (it would change the room's topic).
func (p *Plugin) outMsg(h *hook, to, payloadType, body, subj string) outMsg {
	typ := payloadType
	switch {
	case typ != "":
	case h.cfg.Type == "groupchat" || h.rooms[to] || p.host.IsRoom(to):
		typ = "groupchat"
	case h.cfg.Type != "":
		typ = h.cfg.Type
	default:
		typ = "headline"
	}
	m := outMsg{to: to, typ: typ, body: body}
	if typ == "headline" || typ == "normal" {
		m.subject = subj
	}
	return m
}

// exec renders t, falling back to def (the format's default) when t fails
// on this request: the failure is logged and counted, and the message
// still goes out.
func (p *Plugin) exec(h *hook, t, def *template.Template, data any) string {
	out, err := payload.Render(t, data)
	if t == def || (err == nil && out != "") {
		return out
	}
	if err == nil {
		err = errors.New("the template renders to an empty body")
	}
	p.met.templateErrors.WithLabelValues(h.cfg.Path).Inc()
	if h.logOK() {
		p.log.Warn("webhook template failed, the default template is used", "path", h.cfg.Path, "err", err)
	}
	out, _ = payload.Render(def, data)
	return out
}

// recordAlerts keeps the firing alerts of g for the alerts command and
// forgets the resolved ones.
func (p *Plugin) recordAlerts(h *hook, g *Group) {
	now := time.Now()
	// Not waited for: the writer commits in order, and the alerts command
	// may lag a request by one transaction.
	err := p.ledger.w.do(func(tx state.Tx) error {
		for _, a := range g.Alerts {
			key := "a/" + a.Fingerprint
			if a.Status != "firing" {
				if err := tx.Delete(key); err != nil {
					return err
				}
				continue
			}
			v, _ := json.Marshal(seenAlert{Name: a.Name, Severity: a.Severity, Summary: a.Summary,
				Instance: a.Labels["instance"], StartsAt: a.StartsAt, Path: h.cfg.Path})
			if err := tx.PutExpiring(key, v, now.Add(alertTTL)); err != nil {
				return err
			}
		}
		return nil
	}, false)
	if err != nil {
		p.log.Warn("firing alerts not recorded", "err", err)
	}
}

// seenAlert is a firing alert as the state keeps it.
type seenAlert struct {
	Name     string    `json:"name"`
	Severity string    `json:"severity,omitempty"`
	Summary  string    `json:"summary,omitempty"`
	Instance string    `json:"instance,omitempty"`
	StartsAt time.Time `json:"startsAt"`
	Path     string    `json:"path"`
}

// safeHeader is the request's header for templates, without credentials.
func safeHeader(h http.Header) http.Header {
	out := h.Clone()
	out.Del("Authorization")
	out.Del("Cookie")
	return out
}

// dedup returns list without repeats, in order.
func dedup(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// logLimiter spaces out a webhook's log lines about rejected requests.
type logLimiter struct{ lastLog atomic.Int64 }
