package natsrelay

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
	}
	if reg == nil {
		return m
	}
	m.relayed = register(reg, m.relayed)
	m.lag = register(reg, m.lag)
	m.pending = register(reg, m.pending)
	m.unacked = register(reg, m.unacked)
	m.redeliveries = register(reg, m.redeliveries)
	m.duplicates = register(reg, m.duplicates)
	m.busy = register(reg, m.busy)
	m.drops = register(reg, m.drops)
	m.deadLetters = register(reg, m.deadLetters)
	m.events = register(reg, m.events)
	m.requests = register(reg, m.requests)
	return m
}

// register registers c, or returns the collector already registered under
// its name: after a reload the new plugin instance keeps counting where the
// old one stopped.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(T); ok {
				return old
			}
		}
	}
	return c
}
