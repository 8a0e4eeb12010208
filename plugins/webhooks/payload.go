package webhooks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"crier/internal/payload"
)

// Limits on what one value of a payload may hold once cleaned.
const (
	maxLabelRunes      = 1024
	maxAnnotationRunes = 8192
	// maxAlerts bounds the alerts one request may carry.
	maxAlerts = 10000
)

// badBody returns an error that answers 400 with its text.
func badBody(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadBody, fmt.Sprintf(format, args...))
}

// KV is a set of labels or annotations. Templates index it
// ({{.Labels.severity}}, a missing key is empty) and range over it in key
// order.
type KV map[string]string

// Names returns the keys, sorted.
func (kv KV) Names() []string {
	out := make([]string, 0, len(kv))
	for k := range kv {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Alert is one alert of an Alertmanager (or Grafana) notification.
type Alert struct {
	// Status is "firing" or "resolved".
	Status      string
	Labels      KV
	Annotations KV
	StartsAt    time.Time
	EndsAt      time.Time
	// GeneratorURL links to the expression that fired.
	GeneratorURL string
	// Fingerprint identifies the alert's label set.
	Fingerprint string
	// SilenceURL, DashboardURL, PanelURL and ValueString are Grafana's.
	SilenceURL, DashboardURL, PanelURL, ValueString string
	// Name is the alertname label; Severity the severity label.
	Name, Severity string
	// Summary is the summary annotation, or else description or message,
	// or else the alert's name, made one line.
	Summary string
}

// amAlert is an alert as Alertmanager writes it.
type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	SilenceURL   string            `json:"silenceURL"`
	DashboardURL string            `json:"dashboardURL"`
	PanelURL     string            `json:"panelURL"`
	ValueString  string            `json:"valueString"`
}

// amPayload is Alertmanager's webhook payload (version 4), with the
// fields Grafana adds.
type amPayload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []amAlert         `json:"alerts"`
	// Grafana's.
	Title   string `json:"title"`
	Message string `json:"message"`
	State   string `json:"state"`
}

// Group is a notification of format "alertmanager" as templates see it.
type Group struct {
	Receiver string
	// Status is the group's: "firing" when any alert fires.
	Status                                       string
	GroupKey                                     string
	ExternalURL                                  string
	GroupLabels, CommonLabels, CommonAnnotations KV
	// Alerts are all alerts of the notification.
	Alerts []Alert
	// Title and Message are Grafana's.
	Title, Message string
	// TruncatedAlerts is how many alerts the sender left out.
	TruncatedAlerts int
}

// notification is one request's body, read.
type notification struct {
	format string
	// key identifies the notification across retries ("" when it cannot
	// be told apart from another one with the same content).
	key string
	// group is set for format alertmanager; payload for json; text for
	// text.
	group   *Group
	payload payload.Payload
	text    string
	header  http.Header
}

// parse reads body in the webhook's format. The error wraps errBadBody.
func parse(format string, body []byte, header http.Header) (*notification, error) {
	if !utf8.Valid(body) {
		return nil, badBody("not UTF-8")
	}
	n := &notification{format: format, header: header}
	switch format {
	case FormatAlertmanager:
		g, key, err := parseAlertmanager(body)
		if err != nil {
			return nil, err
		}
		n.group, n.key = g, key
	case FormatJSON:
		pl, err := payload.Parse(body, payload.FormatJSON, len(body)+1)
		if err != nil {
			var pe *payload.Error
			if errors.As(err, &pe) && pe.Err != nil {
				return nil, badBody("%s: %v", pe.Reason, pe.Err)
			}
			return nil, badBody("%v", err)
		}
		pl.Title, pl.Body = cleanLine(pl.Title, maxLabelRunes), cleanText(pl.Body, maxAnnotationRunes)
		pl.Severity, pl.URL = cleanLine(pl.Severity, maxLabelRunes), cleanLine(pl.URL, maxLabelRunes)
		n.payload = pl
		if pl.ID != "" {
			n.key = "json\x00" + pl.ID
		}
	default:
		n.text = cleanText(strings.TrimSpace(string(body)), len(body))
		if n.text == "" {
			return nil, badBody("empty body")
		}
	}
	if n.key == "" {
		if k := header.Get("Idempotency-Key"); k != "" {
			n.key = "idem\x00" + k
		}
	}
	return n, nil
}

// parseAlertmanager reads Alertmanager's payload and derives its key:
// the group key, the status and each alert's fingerprint, status and
// start, so that a retry of the same notification has the same key and a
// new one (another alert, a resolution, a new start) another.
func parseAlertmanager(body []byte) (*Group, string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var p amPayload
	if err := dec.Decode(&p); err != nil {
		return nil, "", badBody("not an Alertmanager payload: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", badBody("data after the JSON object")
	}
	switch p.Version {
	case "4", "1", "":
		// 4: Alertmanager; 1: Grafana's webhook contact point.
	default:
		return nil, "", badBody("payload version %q is not 4", p.Version)
	}
	if len(p.Alerts) == 0 {
		return nil, "", badBody("no alerts")
	}
	if len(p.Alerts) > maxAlerts {
		return nil, "", badBody("%d alerts, more than %d", len(p.Alerts), maxAlerts)
	}
	g := &Group{
		Receiver: cleanLine(p.Receiver, maxLabelRunes), Status: p.Status, GroupKey: p.GroupKey,
		ExternalURL: cleanLine(p.ExternalURL, maxLabelRunes), GroupLabels: cleanLabels(p.GroupLabels),
		CommonLabels: cleanLabels(p.CommonLabels), CommonAnnotations: cleanAnnotations(p.CommonAnnotations),
		Title: cleanLine(p.Title, maxLabelRunes), Message: cleanText(p.Message, maxAnnotationRunes),
		TruncatedAlerts: max(p.TruncatedAlerts, 0),
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", p.GroupKey, p.Status)
	firing := false
	for i, a := range p.Alerts {
		if a.Status != "firing" && a.Status != "resolved" {
			return nil, "", badBody("alerts[%d]: status %q is not firing or resolved", i, a.Status)
		}
		firing = firing || a.Status == "firing"
		al := Alert{
			Status: a.Status, Labels: cleanLabels(a.Labels), Annotations: cleanAnnotations(a.Annotations),
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: cleanLine(a.GeneratorURL, maxLabelRunes),
			Fingerprint: cleanLine(a.Fingerprint, 64), SilenceURL: cleanLine(a.SilenceURL, maxLabelRunes),
			DashboardURL: cleanLine(a.DashboardURL, maxLabelRunes), PanelURL: cleanLine(a.PanelURL, maxLabelRunes),
			ValueString: cleanLine(a.ValueString, maxAnnotationRunes),
		}
		for k, v := range g.CommonLabels {
			if _, ok := al.Labels[k]; !ok {
				al.Labels[k] = v
			}
		}
		if al.Fingerprint == "" {
			al.Fingerprint = labelsFingerprint(al.Labels)
		}
		al.Name, al.Severity = al.Labels["alertname"], al.Labels["severity"]
		// The summary is one line of the message: an annotation's line
		// breaks must not start lines that look like the message's own.
		al.Summary = cleanLine(firstOf(al.Annotations["summary"], al.Annotations["description"], al.Annotations["message"], al.Name), maxLabelRunes)
		if al.Summary == "" {
			al.Summary = "alert " + al.Fingerprint
		}
		g.Alerts = append(g.Alerts, al)
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00", al.Fingerprint, a.Status, a.StartsAt.UnixNano())
	}
	if g.Status != "firing" && g.Status != "resolved" {
		g.Status = "resolved"
		if firing {
			g.Status = "firing"
		}
	}
	return g, "am\x00" + hex.EncodeToString(h.Sum(nil)), nil
}

// labelsFingerprint is a stable id of a label set, for senders that give
// none.
func labelsFingerprint(labels KV) string {
	h := sha256.New()
	for _, k := range labels.Names() {
		fmt.Fprintf(h, "%s\x00%s\x00", k, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func cleanLabels(m map[string]string) KV {
	out := make(KV, len(m))
	for k, v := range m {
		out[cleanLine(k, maxLabelRunes)] = cleanLine(v, maxLabelRunes)
	}
	return out
}

func cleanAnnotations(m map[string]string) KV {
	out := make(KV, len(m))
	for k, v := range m {
		out[cleanLine(k, maxLabelRunes)] = cleanText(v, maxAnnotationRunes)
	}
	return out
}

// cleanLine makes s one line of at most max runes: control characters
// (line breaks included) become spaces, and invisible characters that
// reorder or hide text (bidirectional overrides, zero-width ones) are
// dropped, so that a label value can neither forge lines of the message
// nor disguise itself.
func cleanLine(s string, max int) string {
	return clean(s, max, false)
}

// cleanText is cleanLine keeping line breaks and tabs.
func cleanText(s string, max int) string {
	return clean(s, max, true)
}

func clean(s string, max int, multiline bool) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= max {
			b.WriteString("…")
			break
		}
		switch {
		case r == '\n' && multiline, r == '\t' && multiline:
		case r == '\r' && multiline:
			continue
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
			r = ' '
		case unicode.Is(unicode.Cf, r), r == utf8.RuneError:
			continue
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
