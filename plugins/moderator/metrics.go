package moderator

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the moderator's Prometheus collectors.
type metrics struct {
	hits         *prometheus.CounterVec
	actions      *prometheus.CounterVec
	failures     *prometheus.CounterVec
	unidentified prometheus.Counter
	exempt       prometheus.Counter
	pruned       prometheus.Counter
	listEntries  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_moderator_hits_total",
			Help: "Detector findings, by detector, rule and mode (enforced or observed).",
		}, []string{"detector", "rule", "mode"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_moderator_actions_total",
			Help: "Moderation actions, by action and result (done, failed, refused, observed).",
		}, []string{"action", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_moderator_failures_total",
			Help: "Failures to act, by action and reason (no_rights, unsupported, no_jid, not_room, busy, server, store, other).",
		}, []string{"action", "reason"}),
		unidentified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crier_moderator_unidentified_total",
			Help: "Events left alone because the sender could not be identified.",
		}),
		exempt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crier_moderator_exempt_total",
			Help: "Messages not checked because the sender is exempt.",
		}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crier_moderator_cases_pruned_total",
			Help: "Cases deleted from the store at the end of case_retention.",
		}),
		listEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "crier_moderator_banlist_entries",
			Help: "Entries of the shared ban list, as last read.",
		}),
	}
	if reg == nil {
		return m
	}
	m.pruned = register(reg, m.pruned)
	m.listEntries = register(reg, m.listEntries)
	m.hits = register(reg, m.hits)
	m.actions = register(reg, m.actions)
	m.failures = register(reg, m.failures)
	m.unidentified = register(reg, m.unidentified)
	m.exempt = register(reg, m.exempt)
	return m
}

// hit counts a finding.
func (m *metrics) hit(detector, rule string, observed bool) {
	mode := "enforced"
	if observed {
		mode = "observed"
	}
	m.hits.WithLabelValues(detector, rule, mode).Inc()
}

// register registers c, or returns the collector already registered under
// its name: after a reload the new instance counts on where the old one
// stopped.
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
