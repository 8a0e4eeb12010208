package webhooks

import (
	"github.com/prometheus/client_golang/prometheus"

	"crier/plugins"
)

// metrics are the plugin's Prometheus collectors. The path label is the
// webhook's path.
type metrics struct {
	requests       *prometheus.CounterVec
	messages       *prometheus.CounterVec
	delivery       *prometheus.HistogramVec
	rejected       *prometheus.CounterVec
	templateErrors *prometheus.CounterVec
	batched        *prometheus.CounterVec
	commands       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_webhook_requests_total",
			Help: "Webhook requests, by path and HTTP status code.",
		}, []string{"path", "code"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_webhook_messages_total",
			Help: "Webhook messages (one notification to one recipient), by result: delivered, failed, duplicate, unrouted.",
		}, []string{"path", "result"}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crier_webhook_delivery_seconds",
			Help:    "Time from a webhook request's arrival to its 200: every message acknowledged by the XMPP server.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"path"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_webhook_rejected_total",
			Help: "Webhook requests not answered 200, by path and reason.",
		}, []string{"path", "reason"}),
		templateErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_webhook_template_errors_total",
			Help: "Webhook templates that failed on a request; the default template was used instead.",
		}, []string{"path"}),
		batched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_webhook_batched_total",
			Help: "Webhook messages that waited for the rate limit and went out together with others in one stanza.",
		}, []string{"path"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_webhook_commands_total",
			Help: "Alert commands run (alerts, silence, silences), by result: ok, error.",
		}, []string{"command", "result"}),
	}
	if reg == nil {
		return m
	}
	m.requests = plugins.Collector(reg, m.requests)
	m.messages = plugins.Collector(reg, m.messages)
	m.delivery = plugins.Collector(reg, m.delivery)
	m.rejected = plugins.Collector(reg, m.rejected)
	m.templateErrors = plugins.Collector(reg, m.templateErrors)
	m.batched = plugins.Collector(reg, m.batched)
	m.commands = plugins.Collector(reg, m.commands)
	return m
}
