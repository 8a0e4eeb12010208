package natsrelay

import (
	"github.com/prometheus/client_golang/prometheus"

	"crier/plugins"
)

// metrics are the plugin's Prometheus collectors. The relay label is the
// relay's subject.
type metrics struct {
	relayed      *prometheus.CounterVec
	lag          *prometheus.GaugeVec
	pending      *prometheus.GaugeVec
	unacked      *prometheus.GaugeVec
	redeliveries *prometheus.CounterVec
	duplicates   *prometheus.CounterVec
	busy         *prometheus.CounterVec
	drops        *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	events       *prometheus.CounterVec
	requests     *prometheus.CounterVec
	handovers    *prometheus.CounterVec
	shared       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_relayed_total",
			Help: "Stanzas relayed from NATS that the XMPP server acknowledged.",
		}, []string{"relay"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crier_nats_relay_lag_seconds",
			Help: "Time from JetStream storing the last acked message to its ack.",
		}, []string{"relay"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crier_nats_relay_pending_messages",
			Help: "JetStream messages of the consumer not yet delivered to crier.",
		}, []string{"relay"}),
		unacked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crier_nats_relay_unacked",
			Help: "JetStream messages received and not yet acked or nacked (in flight).",
		}, []string{"relay"}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_relay_redeliveries_total",
			Help: "JetStream messages delivered more than once.",
		}, []string{"relay"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_relay_duplicates_total",
			Help: "Copies of an already relayed message that were acked without sending.",
		}, []string{"relay"}),
		busy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_relay_busy_total",
			Help: "Sends refused because the outbox was full (JetStream pauses and retries).",
		}, []string{"relay"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_relay_drops_total",
			Help: "Core NATS stanzas dropped because the outbox was full or the send failed.",
		}, []string{"relay", "reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_relay_dead_letters_total",
			Help: "Malformed messages published to the dead-letter subject.",
		}, []string{"relay", "reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_events_total",
			Help: "Received XMPP messages published to NATS, by result (published, dropped, failed).",
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_requests_total",
			Help: "NATS send requests, by result (ok, invalid, busy, failed).",
		}, []string{"result"}),
		handovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_relay_handovers_total",
			Help: "JetStream messages an [ha] standby gave back for the leader (a room among the recipients).",
		}, []string{"relay"}),
		shared: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_nats_relay_shared_window_total",
			Help: "Uses of the [ha] shared seen-window, by result (hit, miss, recorded, error).",
		}, []string{"relay", "result"}),
	}
	if reg == nil {
		return m
	}
	m.relayed = plugins.Collector(reg, m.relayed)
	m.lag = plugins.Collector(reg, m.lag)
	m.pending = plugins.Collector(reg, m.pending)
	m.unacked = plugins.Collector(reg, m.unacked)
	m.redeliveries = plugins.Collector(reg, m.redeliveries)
	m.duplicates = plugins.Collector(reg, m.duplicates)
	m.busy = plugins.Collector(reg, m.busy)
	m.drops = plugins.Collector(reg, m.drops)
	m.deadLetters = plugins.Collector(reg, m.deadLetters)
	m.events = plugins.Collector(reg, m.events)
	m.requests = plugins.Collector(reg, m.requests)
	m.handovers = plugins.Collector(reg, m.handovers)
	m.shared = plugins.Collector(reg, m.shared)
	return m
}
