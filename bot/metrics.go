package bot

import (
	"github.com/prometheus/client_golang/prometheus"
	"slices"

	"crier/bot/outbox"
	"crier/internal/buildinfo"
	"crier/rules"
)

// metrics are the daemon's Prometheus series. Each Bot has its own registry,
// so that tests can run several bots in one process.
//
// The process-wide go_* and process_* series come from the collectors that
// client_golang registers in prometheus.DefaultGatherer when it is
// initialised (the same NewGoCollector and NewProcessCollector with default
// options): gather serves both registries, so that a bot does not build a
// second copy of them (the Go collector alone allocates the descriptions of
// every runtime/metrics series).
type metrics struct {
	reg          *prometheus.Registry
	gather       prometheus.Gatherer // reg plus prometheus.DefaultGatherer: what /metrics serves
	connected    prometheus.Gauge
	connects     prometheus.Counter
	reconnects   *prometheus.CounterVec
	streamLimits *prometheus.CounterVec
	msgErrors    *prometheus.CounterVec
	stanzas      *prometheus.CounterVec
	roomsJoined  prometheus.Gauge
	roomsWanted  prometheus.Gauge
	outboxDepth  prometheus.GaugeFunc
	dropped      *prometheus.CounterVec
	ruleHits     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	reloadFailed prometheus.Gauge
	rejoins      *prometheus.CounterVec
	resumed      prometheus.Counter
	unacked      *prometheus.CounterVec
	rateLimited  prometheus.Counter

	// byKind holds the stanza counters by direction (0 in, 1 out) and kind,
	// resolved once: the tap counts every element.
	byKind [2]map[string]prometheus.Counter
}

var stanzaKinds = []string{"message", "presence", "iq", "sm_r", "sm_a", "other"}

// countStanza counts one element on the stream.
func (m *metrics) countStanza(out bool, kind string) {
	d := 0
	if out {
		d = 1
	}
	c, ok := m.byKind[d][kind]
	if !ok {
		c = m.byKind[d]["other"]
	}
	c.Inc()
}

func newMetrics(depth func() float64, ruleStats func() rules.Stats) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.gather = prometheus.Gatherers{m.reg, prometheus.DefaultGatherer}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.connected = prometheus.NewGauge(prometheus.GaugeOpts{Name: "crier_connected", Help: "1 while an XMPP session is bound, else 0."})
	m.connects = prometheus.NewCounter(prometheus.CounterOpts{Name: "crier_connects_total", Help: "XMPP sessions established."})
	m.reconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_disconnects_total", Help: "XMPP sessions lost or failed to start, by reason."}, []string{"reason"})
	m.streamLimits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_stream_limits_total", Help: "Times the stream could not be followed, by direction (in/out) and the limit passed: size, depth, attributes, pending, syntax. An incoming one ends the connection."}, []string{"direction", "limit"})
	m.msgErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_message_errors_total", Help: "Error answers to messages the bot sent that it did not take back to send again, by stanza error condition (e.g. item-not-found, service-unavailable for an address that does not exist)."}, []string{"condition"})
	m.stanzas = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_stanzas_total", Help: "Top-level elements on the stream, by direction (in/out) and kind."}, []string{"direction", "kind"})
	m.roomsJoined = prometheus.NewGauge(prometheus.GaugeOpts{Name: "crier_rooms_joined", Help: "Rooms the bot is in now."})
	m.roomsWanted = prometheus.NewGauge(prometheus.GaugeOpts{Name: "crier_rooms_configured", Help: "Rooms the bot is configured to be in."})
	m.outboxDepth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crier_outbox_depth", Help: "Stanzas waiting in the outbox."}, depth)
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_outbox_dropped_total", Help: "Stanzas the outbox had to drop, by reason."}, []string{"reason"})
	m.ruleHits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_rule_hits_total", Help: "Actions produced by each rule."}, []string{"rule"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_rejected_total", Help: "Incoming stanzas rejected, by reason."}, []string{"reason"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_reloads_total", Help: "Configuration reloads, by result."}, []string{"result"})
	m.reloadFailed = prometheus.NewGauge(prometheus.GaugeOpts{Name: "crier_config_last_reload_failed", Help: "1 when the last reload was refused and the old configuration still runs."})
	m.rejoins = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_room_rejoins_total", Help: "Room rejoins scheduled, by reason."}, []string{"reason"})
	m.resumed = prometheus.NewCounter(prometheus.CounterOpts{Name: "crier_sessions_resumed_total", Help: "Connections that resumed the previous session (XEP-0198) instead of starting a new one."})
	m.unacked = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_unacknowledged_after_loss_total", Help: "Stanzas of a lost connection not acknowledged when it was lost, by outcome: confirmed (the resumed session's server had them), sent_again, dropped_stale (presence and joins of a session that was not resumed)."}, []string{"outcome"})
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{Name: "crier_rate_limited_total", Help: "Messages a room or server bounced as too fast (resource-constraint, policy-violation); each is sent again after a backoff, and the target's messages are spaced out."})
	for _, c := range []prometheus.Collector{m.connected, m.connects, m.reconnects, m.stanzas, m.roomsJoined, m.roomsWanted, m.outboxDepth, m.dropped, m.ruleHits, m.rejected, m.reloads, m.reloadFailed, m.rejoins, m.resumed, m.unacked, m.streamLimits, m.msgErrors, m.rateLimited} {
		f(c)
	}
	// The engine's own counters survive reloads (Adopt carries them over).
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crier_rule_template_errors_total", Help: "Rule templates that failed while rendering; the action was dropped."},
		func() float64 { return float64(ruleStats().TemplateErrors) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crier_rule_limited_total", Help: "Rule applications refused by the rule's rate limit."},
		func() float64 { return float64(ruleStats().Limited) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "crier_sender_limited_total", Help: "Messages whose replies the per-sender loop breaker dropped."},
		func() float64 { return float64(ruleStats().SenderLimited) }))
	for d, dir := range []string{"in", "out"} {
		m.byKind[d] = make(map[string]prometheus.Counter, len(stanzaKinds))
		for _, k := range stanzaKinds {
			m.byKind[d][k] = m.stanzas.WithLabelValues(dir, k)
		}
	}
	for _, dir := range []string{"in", "out"} {
		for _, l := range streamLimits {
			m.streamLimits.WithLabelValues(dir, l)
		}
	}
	// Every documented series exists from the first scrape, at zero until
	// it happens: a dashboard or an alert on rate() needs the zero.
	for vec, values := range map[*prometheus.CounterVec][]string{
		m.reconnects: disconnectReasons,
		m.dropped:    dropReasons,
		m.rejected:   rejectReasons,
		m.reloads:    {"ok", "refused"},
		m.rejoins:    rejoinReasons,
		m.unacked:    {"confirmed", "sent_again", "dropped_stale"},
		m.msgErrors:  errorConditions,
	} {
		for _, v := range values {
			vec.WithLabelValues(v)
		}
	}
	return m
}

// The label values each vector starts with (docs/OPERATIONS.md lists
// them): transport.Reason's values, the outbox's drop reasons, the
// handler's rejections and muc.go's metricReason.
var (
	disconnectReasons = []string{"auth", "tls", "dns", "connect", "timeout", "protocol", "insecure", "config", "canceled", "closed", "other"}
	dropReasons       = []string{"queue_full", "room_queue_full", "refused", "room_left", "stale", "closed", "fenced", "other"}
	rejectReasons     = []string{"malformed", "bad_iq", "bad_jid", "body_too_large", "unknown_room", "unknown_element", "not_moderator", "panic", "unserved_address"}
	// errorConditions are RFC 6120's stanza error conditions, and "other"
	// for anything else (errorCondition).
	errorConditions = []string{"bad-request", "conflict", "feature-not-implemented", "forbidden", "gone",
		"internal-server-error", "item-not-found", "jid-malformed", "not-acceptable", "not-allowed",
		"not-authorized", "policy-violation", "recipient-unavailable", "redirect", "registration-required",
		"remote-server-not-found", "remote-server-timeout", "resource-constraint", "service-unavailable",
		"subscription-required", "undefined-condition", "unexpected-request", "other"}
	streamLimits  = []string{"size", "depth", "attributes", "pending", "syntax", "other"}
	rejoinReasons = []string{"kicked", "shutdown", "technical", "self_ping", "bounced", "timeout", "error", "other"}
)

// primeRules makes the hit counter of each named rule or cron job exist,
// at zero, before its first hit.
func (m *metrics) primeRules(names []string) {
	for _, n := range names {
		m.ruleHits.WithLabelValues(n)
	}
}

// opsRegistry holds the series the operations endpoint adds to the bot's
// registry: crier_build_info and the outbox's delivery histogram.
func opsRegistry(version string, out *outbox.Outbox) *prometheus.Registry {
	info := buildinfo.Read(version)
	reg := prometheus.NewRegistry()
	bi := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "crier_build_info",
		Help: "Always 1; the labels say which build runs: version, VCS revision, Go version.",
	}, []string{"version", "revision", "goversion"})
	bi.WithLabelValues(version, info.Revision, info.GoVersion).Set(1)
	reg.MustRegister(bi)
	if out != nil {
		reg.MustRegister(out.Delivery(), out.Reply())
	}
	return reg
}

// errorCondition is cond as a label of crier_message_errors_total.
func errorCondition(cond string) string {
	if slices.Contains(errorConditions, cond) {
		return cond
	}
	return "other"
}
