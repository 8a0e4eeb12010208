package webhooks

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"

	"mellium.im/xmpp/jid"

	"crier/internal/config"
	"crier/internal/diag"
	"crier/plugins"
	"crier/rules"
)

// Formats of a webhook's body, the values of webhooks.format.
const (
	// FormatAlertmanager is Alertmanager's webhook payload (version 4),
	// and Grafana's webhook contact point, which sends the same shape.
	FormatAlertmanager = "alertmanager"
	// FormatJSON is a JSON object of the NATS relay's payload shape
	// (title, body, severity, url, id, to, type).
	FormatJSON = "json"
	// FormatText is a plain text body.
	FormatText = "text"
)

// Defaults of the keys of a [[webhooks]] table.
const (
	// DefaultMaxBytes is the largest body accepted (max_bytes).
	DefaultMaxBytes = 1 << 20
	// DefaultTimeout is how long a request waits for the XMPP server's
	// acknowledgements before it is answered 503 (timeout).
	DefaultTimeout = 10 * time.Second
	// DefaultRetryAfter is the Retry-After of a 503 (retry_after).
	DefaultRetryAfter = 10 * time.Second
	// DefaultDedupe is how long a delivered notification is remembered,
	// so that a retried copy is not posted again (dedupe).
	DefaultDedupe = time.Hour
	// DefaultMaxAlerts is how many alerts one message lists (max_alerts).
	DefaultMaxAlerts = 20
	// DefaultQueue bounds the messages waiting for one recipient of one
	// webhook (queue).
	DefaultQueue = 1000
)

// DefaultRate is the per-recipient rate limit of a webhook whose rate is
// not written: a burst of 20 messages, then one every three seconds, each
// carrying every notification that waited.
var DefaultRate = rules.Rate{N: 20, Per: time.Minute}

// Config is the [[webhooks]] array of tables.
type Config []Webhook

// Webhook is one [[webhooks]] table: an HTTP path whose POSTs become
// messages.
type Webhook struct {
	// Path is the URL path, such as "/hooks/alertmanager".
	Path string `toml:"path"`
	// Listen, when set, serves the path on a listener of its own
	// ("127.0.0.1:9094") instead of the [http] listener.
	Listen string `toml:"listen"`
	// Format is how the body is read: "alertmanager", "json" or "text".
	Format string `toml:"format"`
	// To are the recipients of every notification no route claims.
	To []string `toml:"to"`
	// Rooms lists further recipients that are rooms (groupchat), besides
	// the [[rooms]] and the rooms the bot joins.
	Rooms []string `toml:"rooms"`
	// Type is the message type for users: headline (the default), chat
	// or normal; rooms get groupchat.
	Type string `toml:"type"`
	// From, when the bot is a component, is the address on its domain
	// the notifications come from (alertmanager@alerts.example.org);
	// empty is the bot's own. Rooms always hear the bot's occupant
	// address.
	From string `toml:"from"`
	// Token, or the contents of TokenFile, is the bearer token a request
	// must carry ("Authorization: Bearer TOKEN"); empty: no token.
	Token     config.Secret `toml:"token"`
	TokenFile string        `toml:"token_file"`
	// Template renders the message body (text/template); empty: the
	// format's default.
	Template string `toml:"template"`
	// Subject renders the <subject/> of headline and normal messages;
	// empty: the format's default (rooms never get one).
	Subject string `toml:"subject"`
	// MaxBytes is the largest body accepted; larger ones get 413.
	MaxBytes int `toml:"max_bytes"`
	// Timeout is how long a request waits for delivery before 503.
	Timeout config.Duration `toml:"timeout"`
	// RetryAfter is the Retry-After header of a 503.
	RetryAfter config.Duration `toml:"retry_after"`
	// Dedupe is how long a delivered notification is remembered.
	Dedupe config.Duration `toml:"dedupe"`
	// Rate limits the messages to each recipient ("20/1m"; "0": off).
	// Notifications that wait for a token go out together in one message.
	Rate rules.Rate `toml:"rate"`
	// Queue bounds the messages waiting for one recipient; a request that
	// finds it full gets 503.
	Queue int `toml:"queue"`
	// MaxAlerts is how many alerts one message lists; the rest are
	// counted ("… and 3 more").
	MaxAlerts int `toml:"max_alerts"`
	// AlertmanagerURL is the Alertmanager the silence commands talk to
	// ("http://127.0.0.1:9093").
	AlertmanagerURL string `toml:"alertmanager_url"`
	// Route sends notifications by label to other recipients.
	Route []Route `toml:"route"`

	Pos diag.Pos `toml:"-"`
}

// Route is one [[webhooks.route]]: the alerts (or JSON payloads) whose
// labels (fields) match go to To instead of the webhook's to.
type Route struct {
	// Match holds labels and the values they must have.
	Match map[string]string `toml:"match"`
	// MatchRE holds labels and RE2 expressions their whole value must
	// match.
	MatchRE map[string]string `toml:"match_re"`
	// To are the recipients of what matches.
	To []string `toml:"to"`
	// Continue goes on to the next routes after a match; by default the
	// first matching route wins.
	Continue bool `toml:"continue"`
}

// messageTypes are the values of webhooks.type.
var messageTypes = map[string]bool{"": true, "headline": true, "chat": true, "normal": true, "groupchat": true}

// validPath is a path a webhook may serve.
var validPath = regexp.MustCompile(`^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$`)

// Check validates every [[webhooks]] table, fills the defaults of the keys
// not written and reads token files; errors name the key's line.
func (c *Config) Check(ck plugins.Checker) {
	paths := map[string]int{}
	for i := range *c {
		w := &(*c)[i]
		p := fmt.Sprintf("[%d].", i)
		w.check(ck, p)
		where := w.Listen + w.Path
		if j, dup := paths[where]; dup && w.Path != "" {
			ck.Errorf(p+"path", "%q is already served by webhooks[%d]", w.Path, j)
		}
		paths[where] = i
	}
}

func (w *Webhook) check(ck plugins.Checker, p string) {
	switch {
	case w.Path == "":
		ck.Errorf(p+"path", "must be set")
	case !validPath.MatchString(w.Path):
		ck.Errorf(p+"path", "%q is not a URL path", w.Path)
	case strings.HasPrefix(w.Path, "/-/") || w.Path == "/metrics":
		ck.Errorf(p+"path", "%q is the bot's own", w.Path)
	}
	if w.Listen != "" {
		if _, _, err := net.SplitHostPort(w.Listen); err != nil {
			ck.Errorf(p+"listen", "%q is not host:port: %v", w.Listen, err)
		}
	}
	switch w.Format {
	case "":
		w.Format = FormatAlertmanager
	case FormatAlertmanager, FormatJSON, FormatText:
	case "grafana":
		ck.Errorf(p+"format", `Grafana's webhook contact point sends Alertmanager's payload: use "alertmanager"`)
	default:
		ck.Errorf(p+"format", `must be "alertmanager", "json" or "text", not %q`, w.Format)
	}
	if w.From != "" {
		if f, err := ck.Core().CheckFrom(w.From); err != nil {
			ck.Errorf(p+"from", "%v", err)
		} else {
			w.From = f
		}
	}
	if len(w.To) == 0 && len(w.Route) == 0 {
		ck.Errorf(p+"to", "must name at least one JID (or add a [[webhooks.route]])")
	}
	checkJIDs(ck, p+"to", w.To)
	for _, r := range w.Rooms {
		if j, err := jid.Parse(r); err != nil || r == "" || j.Localpart() == "" {
			ck.Errorf(p+"rooms", "%q is not a room JID", r)
		}
	}
	if !messageTypes[w.Type] {
		ck.Errorf(p+"type", `must be "headline", "chat", "normal" or "groupchat", not %q`, w.Type)
	}
	if w.Token != "" && w.TokenFile != "" {
		ck.Errorf(p+"token_file", "set token or token_file, not both")
	}
	if w.TokenFile != "" {
		w.TokenFile = ck.Resolve(w.TokenFile)
		if w.Token == "" {
			s, err := ck.ReadSecret(w.TokenFile)
			switch {
			case err != nil:
				ck.Errorf(p+"token_file", "%v", err)
			case s == "":
				ck.Errorf(p+"token_file", "is empty")
			default:
				w.Token = config.Secret(s)
			}
		}
	}
	if _, err := parseTemplates(w.Format, w.Template, w.Subject); err != nil {
		key := "template"
		if tmplErrIsSubject(err) {
			key = "subject"
		}
		ck.Errorf(p+key, "%v", err)
	}
	nonNegative := func(key string, bad bool) {
		if bad {
			ck.Errorf(p+key, "must not be negative")
		}
	}
	nonNegative("max_bytes", w.MaxBytes < 0)
	nonNegative("timeout", w.Timeout < 0)
	nonNegative("retry_after", w.RetryAfter < 0)
	nonNegative("dedupe", w.Dedupe < 0)
	nonNegative("queue", w.Queue < 0)
	nonNegative("max_alerts", w.MaxAlerts < 0)
	if !ck.Written(p + "rate") {
		w.Rate = DefaultRate
	}
	if w.AlertmanagerURL != "" {
		u, err := url.Parse(w.AlertmanagerURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ck.Errorf(p+"alertmanager_url", "%q is not an http:// or https:// URL", w.AlertmanagerURL)
		}
	}
	for i := range w.Route {
		r := &w.Route[i]
		rp := fmt.Sprintf("%sroute[%d].", p, i)
		if w.Format == FormatText {
			ck.Errorf(rp+"match", `format "text" has no labels to route by`)
		}
		if len(r.To) == 0 {
			ck.Errorf(rp+"to", "must name at least one JID")
		}
		checkJIDs(ck, rp+"to", r.To)
		for k, re := range r.MatchRE {
			if _, err := regexp.Compile("^(?:" + re + ")$"); err != nil {
				ck.Errorf(rp+"match_re", "%s: %v", k, err)
			}
		}
	}
}

// checkJIDs reports the entries of list that are not JIDs, and writes the
// others back in their normal form.
func checkJIDs(ck plugins.Checker, key string, list []string) {
	for i, to := range list {
		j, err := jid.Parse(to)
		if err != nil || to == "" || j.Domainpart() == "" {
			ck.Errorf(key, "%q is not a valid JID", to)
			continue
		}
		list[i] = j.String()
	}
}

// hook is one webhook, checked and compiled.
type hook struct {
	cfg        Webhook
	body, subj *template.Template
	// defBody and defSubj are the format's defaults, the fallback when
	// a configured template fails on a request.
	defBody, defSubj *template.Template
	routes           []route
	rooms            map[string]bool
	token            []byte
	timeout          time.Duration
	retryAfter       time.Duration
	dedupe           time.Duration
	maxBytes         int
	maxAlerts        int
	queue            int
	// usesTo is set when a template reads the recipient, so that each
	// recipient's message is rendered on its own.
	usesTo bool
	logLimiter
}

// route is a compiled Route.
type route struct {
	match   map[string]string
	matchRE map[string]*regexp.Regexp
	to      []string
	cont    bool
}

// matches reports whether labels satisfy every matcher of r.
func (r *route) matches(labels map[string]string) bool {
	for k, v := range r.match {
		if labels[k] != v {
			return false
		}
	}
	for k, re := range r.matchRE {
		if !re.MatchString(labels[k]) {
			return false
		}
	}
	return true
}

// newHook compiles a checked Webhook, filling the defaults a config built
// without the loader lacks.
func newHook(w Webhook, coreRooms []string) (*hook, error) {
	if w.Format == "" {
		w.Format = FormatAlertmanager
	}
	h := &hook{
		cfg: w, rooms: map[string]bool{}, timeout: w.Timeout.Std(), retryAfter: w.RetryAfter.Std(),
		dedupe: w.Dedupe.Std(), maxBytes: w.MaxBytes, maxAlerts: w.MaxAlerts, queue: w.Queue,
	}
	if h.timeout == 0 {
		h.timeout = DefaultTimeout
	}
	if h.retryAfter == 0 {
		h.retryAfter = DefaultRetryAfter
	}
	if h.dedupe == 0 {
		h.dedupe = DefaultDedupe
	}
	if h.maxBytes == 0 {
		h.maxBytes = DefaultMaxBytes
	}
	if h.maxAlerts == 0 {
		h.maxAlerts = DefaultMaxAlerts
	}
	if h.queue == 0 {
		h.queue = DefaultQueue
	}
	if w.Token != "" {
		h.token = []byte(w.Token.Reveal())
	}
	ts, err := parseTemplates(w.Format, w.Template, w.Subject)
	if err != nil {
		return nil, err
	}
	h.body, h.subj, h.defBody, h.defSubj = ts[0], ts[1], ts[2], ts[3]
	h.usesTo = strings.Contains(w.Template, ".To") || strings.Contains(w.Subject, ".To")
	for _, r := range append(append([]string{}, coreRooms...), w.Rooms...) {
		if j, err := jid.Parse(r); err == nil {
			h.rooms[j.Bare().String()] = true
		}
	}
	for _, rc := range w.Route {
		r := route{match: rc.Match, matchRE: map[string]*regexp.Regexp{}, to: rc.To, cont: rc.Continue}
		for k, src := range rc.MatchRE {
			re, err := regexp.Compile("^(?:" + src + ")$")
			if err != nil {
				return nil, fmt.Errorf("webhooks: route match_re %s: %w", k, err)
			}
			r.matchRE[k] = re
		}
		h.routes = append(h.routes, r)
	}
	return h, nil
}

// targets returns the recipients of a notification with labels: those of
// the matching routes, or the webhook's to when none matches.
func (h *hook) targets(labels map[string]string) []string {
	var out []string
	for i := range h.routes {
		r := &h.routes[i]
		if r.matches(labels) {
			out = append(out, r.to...)
			if !r.cont {
				break
			}
		}
	}
	if len(out) == 0 {
		out = h.cfg.To
	}
	return out
}

var _ plugins.Checked = (*Config)(nil)
