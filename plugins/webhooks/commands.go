package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"crier/internal/state"
	"crier/plugins"
)

// maxSilence bounds the duration of a silence made by command.
const maxSilence = 30 * 24 * time.Hour

// Commands returns alerts, and silence and silences when a webhook has an
// alertmanager_url.
func (p *Plugin) Commands() []plugins.Command {
	cmds := []plugins.Command{{
		Name:    "alerts",
		Summary: "list the firing alerts crier has seen",
		Level:   plugins.Member,
		Example: plugins.Example{Line: "alerts", Want: "firing"},
		Run:     p.cmdAlerts,
	}}
	if p.am == nil {
		return cmds
	}
	return append(cmds, plugins.Command{
		Name:    "silence",
		Summary: "silence alerts in Alertmanager for a while (alertname=DiskFull,instance=~\"db.*\" 2h)",
		Level:   plugins.Moderator,
		// A room's moderators are not operators: the right is bot-wide.
		Global: true,
		Args: []plugins.Arg{
			{Name: "matchers", Label: "Matchers", Desc: `label matchers: name=value, name!=value, name=~regex, name!~regex, separated by commas`, Required: true, Max: 1024},
			{Name: "duration", Label: "Duration", Desc: "how long, such as 30m or 2h", Kind: plugins.ArgDuration, Required: true},
			{Name: "comment", Label: "Comment", Desc: "why", Rest: true, Max: 1024},
		},
		Run: p.cmdSilence,
	}, plugins.Command{
		Name:    "silences",
		Summary: "list Alertmanager's active and pending silences",
		Level:   plugins.Member,
		Run:     p.cmdSilences,
	})
}

func (p *Plugin) count(cmd string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	p.met.commands.WithLabelValues(cmd, result).Inc()
}

// cmdAlerts lists the firing alerts in the state, oldest first.
func (p *Plugin) cmdAlerts(ctx context.Context, c *plugins.Call) (plugins.Reply, error) {
	var list []seenAlert
	err := p.ns.View(func(tx state.Tx) error {
		return tx.ForEach("a/", func(_ string, v []byte) error {
			var a seenAlert
			if json.Unmarshal(v, &a) == nil {
				list = append(list, a)
			}
			return nil
		})
	})
	p.count("alerts", err)
	if err != nil {
		return plugins.Reply{}, err
	}
	if len(list) == 0 {
		return plugins.Reply{Text: "no firing alerts"}, nil
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].StartsAt.Before(list[j].StartsAt) })
	t := &plugins.Table{Columns: []string{"alert", "severity", "instance", "since", "summary"}}
	for _, a := range list {
		t.Rows = append(t.Rows, []string{a.Name, a.Severity, a.Instance, since(a.StartsAt, c.Time), a.Summary})
	}
	return plugins.Reply{Text: plural(len(list), "firing alert"), Table: t}, nil
}

// plural writes "1 silence", "2 silences".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// since formats how long ago t was, to the minute.
func since(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	if now.IsZero() {
		now = time.Now()
	}
	d := now.Sub(t).Round(time.Minute)
	if d < time.Minute {
		return "just now"
	}
	days, hours, mins := int(d/(24*time.Hour)), int(d/time.Hour)%24, int(d/time.Minute)%60
	var parts []string
	if days > 0 {
		parts = append(parts, strconv.Itoa(days)+"d")
	}
	if hours > 0 {
		parts = append(parts, strconv.Itoa(hours)+"h")
	}
	if mins > 0 && days == 0 {
		parts = append(parts, strconv.Itoa(mins)+"m")
	}
	return strings.Join(parts, "") + " ago"
}

// cmdSilence creates a silence.
func (p *Plugin) cmdSilence(ctx context.Context, c *plugins.Call) (plugins.Reply, error) {
	ms, err := ParseMatchers(c.Arg("matchers"))
	if err != nil {
		p.count("silence", err)
		return plugins.Reply{Text: err.Error(), NoteType: plugins.NoteError}, nil
	}
	d, err := time.ParseDuration(c.Arg("duration"))
	if err != nil || d <= 0 || d > maxSilence {
		p.count("silence", fmt.Errorf("bad duration"))
		return plugins.Reply{Text: fmt.Sprintf("duration %q must be between 1s and %v", c.Arg("duration"), maxSilence), NoteType: plugins.NoteError}, nil
	}
	by := firstOf(c.RealJID, c.From, "crier")
	comment := c.Arg("comment")
	if comment == "" {
		comment = "silenced from XMPP by " + by
	}
	now := c.Time
	if now.IsZero() {
		now = time.Now()
	}
	id, err := p.am.createSilence(ctx, silence{Matchers: ms, StartsAt: now, EndsAt: now.Add(d), CreatedBy: by, Comment: comment})
	p.count("silence", err)
	if err != nil {
		return plugins.Reply{}, err
	}
	p.log.Info("silence created", "id", id, "matchers", FormatMatchers(ms), "until", now.Add(d).UTC().Format(time.RFC3339), "by", by)
	return plugins.Reply{Text: fmt.Sprintf("silenced %s for %v (until %s), id %s", FormatMatchers(ms), d, now.Add(d).UTC().Format("2006-01-02 15:04 MST"), id)}, nil
}

// cmdSilences lists the active and pending silences.
func (p *Plugin) cmdSilences(ctx context.Context, c *plugins.Call) (plugins.Reply, error) {
	list, err := p.am.silences(ctx)
	p.count("silences", err)
	if err != nil {
		return plugins.Reply{}, err
	}
	var keep []silence
	for _, s := range list {
		if s.Status.State == "active" || s.Status.State == "pending" {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return plugins.Reply{Text: "no active silences"}, nil
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].EndsAt.Before(keep[j].EndsAt) })
	t := &plugins.Table{Columns: []string{"id", "matchers", "ends", "by", "comment"}}
	for _, s := range keep {
		t.Rows = append(t.Rows, []string{s.ID, FormatMatchers(s.Matchers), s.EndsAt.UTC().Format("2006-01-02 15:04 MST"), s.CreatedBy, s.Comment})
	}
	return plugins.Reply{Text: plural(len(keep), "silence"), Table: t}, nil
}

// Matcher is one label matcher of a silence, as Alertmanager's API v2
// writes it.
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

// labelName is a Prometheus label name.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// ParseMatchers reads matchers written as amtool does: name=value,
// name!=value, name=~regex, name!~regex, separated by commas, optionally
// in braces; a value may be double-quoted. The error wraps ErrBadMatchers.
func ParseMatchers(s string) ([]Matcher, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	var out []Matcher
	for _, part := range splitMatchers(s) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := strings.IndexAny(part, "=!")
		if i <= 0 {
			return nil, fmt.Errorf("%w: %q is not name=value", ErrBadMatchers, part)
		}
		m := Matcher{Name: strings.TrimSpace(part[:i]), IsEqual: true}
		rest := part[i:]
		switch {
		case strings.HasPrefix(rest, "=~"):
			m.IsRegex, rest = true, rest[2:]
		case strings.HasPrefix(rest, "!~"):
			m.IsRegex, m.IsEqual, rest = true, false, rest[2:]
		case strings.HasPrefix(rest, "!="):
			m.IsEqual, rest = false, rest[2:]
		case strings.HasPrefix(rest, "="):
			rest = rest[1:]
		default:
			return nil, fmt.Errorf("%w: %q is not name=value", ErrBadMatchers, part)
		}
		if !labelName.MatchString(m.Name) {
			return nil, fmt.Errorf("%w: %q is not a label name", ErrBadMatchers, m.Name)
		}
		v := strings.TrimSpace(rest)
		if strings.HasPrefix(v, `"`) {
			u, err := strconv.Unquote(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: bad quoted value", ErrBadMatchers, m.Name)
			}
			v = u
		}
		if m.IsRegex {
			if _, err := regexp.Compile(v); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBadMatchers, m.Name, err)
			}
		}
		m.Value = v
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no matcher", ErrBadMatchers)
	}
	return out, nil
}

// splitMatchers splits s at the commas outside double quotes.
func splitMatchers(s string) []string {
	var out []string
	quoted, esc, start := false, false, 0
	for i, r := range s {
		switch {
		case esc:
			esc = false
		case r == '\\' && quoted:
			esc = true
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// FormatMatchers writes matchers as ParseMatchers reads them.
func FormatMatchers(ms []Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		op := "="
		switch {
		case m.IsRegex && m.IsEqual:
			op = "=~"
		case m.IsRegex:
			op = "!~"
		case !m.IsEqual:
			op = "!="
		}
		parts[i] = m.Name + op + strconv.Quote(m.Value)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// silence is a silence of Alertmanager's API v2.
type silence struct {
	ID        string    `json:"id,omitempty"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	Status    struct {
		State string `json:"state"`
	} `json:"status,omitzero"`
}

// amClient talks to Alertmanager's API v2.
type amClient struct {
	base string
	hc   *http.Client
}

func newAMClient(base string) *amClient {
	return &amClient{base: strings.TrimSuffix(base, "/"), hc: &http.Client{Timeout: 10 * time.Second}}
}

func (c *amClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("webhooks: Alertmanager: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("webhooks: Alertmanager: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(data))
		var s string
		if json.Unmarshal(data, &s) == nil {
			msg = s
		}
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return fmt.Errorf("%w: %s %s: %s: %s", ErrAlertmanager, method, path, resp.Status, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("webhooks: Alertmanager %s: %w", path, err)
		}
	}
	return nil
}

func (c *amClient) createSilence(ctx context.Context, s silence) (string, error) {
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	in := struct {
		Matchers  []Matcher `json:"matchers"`
		StartsAt  time.Time `json:"startsAt"`
		EndsAt    time.Time `json:"endsAt"`
		CreatedBy string    `json:"createdBy"`
		Comment   string    `json:"comment"`
	}{s.Matchers, s.StartsAt, s.EndsAt, s.CreatedBy, s.Comment}
	if err := c.do(ctx, http.MethodPost, "/api/v2/silences", in, &out); err != nil {
		return "", err
	}
	return out.SilenceID, nil
}

func (c *amClient) silences(ctx context.Context) ([]silence, error) {
	var out []silence
	err := c.do(ctx, http.MethodGet, "/api/v2/silences", nil, &out)
	return out, err
}
