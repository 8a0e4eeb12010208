package webhooks

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
	m.requests = register(reg, m.requests)
	m.messages = register(reg, m.messages)
	m.delivery = register(reg, m.delivery)
	m.rejected = register(reg, m.rejected)
	m.templateErrors = register(reg, m.templateErrors)
	m.batched = register(reg, m.batched)
	m.commands = register(reg, m.commands)
	return m
}

// register registers c, or returns the collector already registered under
// its name: after a reload the new instance counts on.
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
