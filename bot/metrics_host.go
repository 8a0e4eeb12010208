package bot

import (
	"github.com/prometheus/client_golang/prometheus"

	"crier/plugins"
)

// hostMetrics are the metrics of the message chain and the plugin host.
type hostMetrics struct {
	chainDepth     prometheus.Gauge
	chainDropped   prometheus.Counter
	chainStopped   *prometheus.CounterVec
	pluginFailures *prometheus.CounterVec
	pluginIQ       *prometheus.CounterVec
	pluginActions  *prometheus.CounterVec
	pluginRunning  *prometheus.GaugeVec
	storeErrors    *prometheus.CounterVec
	// [ha]: leading now, leaderships lost, events a standby left alone.
	haLeader         prometheus.Gauge
	haLostLeadership prometheus.Counter
	haStandbyEvents  prometheus.Counter
	haRenew          prometheus.Histogram
	haRenewFailures  prometheus.Counter
	haInstances      prometheus.Gauge
	haFenced         prometheus.Counter
}

func newHostMetrics(reg prometheus.Registerer) *hostMetrics {
	m := &hostMetrics{
		chainDepth:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "crier_chain_queue_depth", Help: "Events waiting for the message chain."}),
		chainDropped:     prometheus.NewCounter(prometheus.CounterOpts{Name: "crier_chain_dropped_total", Help: "Events dropped because the message chain's queue was full."}),
		chainStopped:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_chain_stopped_total", Help: "Events a chain link stopped before the rules, by link."}, []string{"link"}),
		pluginFailures:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_plugin_failures_total", Help: "Plugins disabled by a failure, by plugin and reason (panic, blocked, start)."}, []string{"plugin", "reason"}),
		pluginIQ:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_plugin_iq_total", Help: "iq requests handed to plugins, by plugin and result (result, error, panic, busy, timeout)."}, []string{"plugin", "result"}),
		pluginActions:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_plugin_actions_total", Help: "Room actions asked by plugins, by action and result (requested, refused, done, failed)."}, []string{"action", "result"}),
		pluginRunning:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "crier_plugin_running", Help: "1 for each plugin that runs, 0 for one configured but disabled or failed."}, []string{"plugin"}),
		haLeader:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "crier_ha_leader", Help: "1 while this instance leads ([ha]; always 0 without it)."}),
		haLostLeadership: prometheus.NewCounter(prometheus.CounterOpts{Name: "crier_ha_leadership_lost_total", Help: "Times this instance stopped leading ([ha])."}),
		haStandbyEvents:  prometheus.NewCounter(prometheus.CounterOpts{Name: "crier_ha_standby_events_total", Help: "Events a standby left to the leader ([ha])."}),
		haRenew: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "crier_ha_lease_renew_seconds", Help: "Time each renewal of the leader's lease took ([ha]).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		haRenewFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "crier_ha_lease_renew_failures_total", Help: "Renewals of the leader's lease that failed ([ha]; the leader steps down when none succeeds in time)."}),
		haInstances:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "crier_ha_instances", Help: "Instances of this [ha] bucket seen alive, this one included (0 without [ha])."}),
		haFenced:        prometheus.NewCounter(prometheus.CounterOpts{Name: "crier_ha_fencing_refusals_total", Help: "Writes of this instance's to the shared state that NATS refused because a newer leader raised the fence ([ha]; the instance steps down)."}),
		storeErrors:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crier_state_errors_total", Help: "State store operations that failed, by operation."}, []string{"op"}),
	}
	// Every series exists from the first scrape, at zero.
	for _, n := range plugins.Names() {
		m.chainStopped.WithLabelValues(n)
		m.pluginRunning.WithLabelValues(n)
		for _, r := range []string{"panic", "blocked", "start"} {
			m.pluginFailures.WithLabelValues(n, r)
		}
		for _, r := range []string{"result", "error", "panic", "busy", "timeout"} {
			m.pluginIQ.WithLabelValues(n, r)
		}
	}
	for k := plugins.ActKick; k <= plugins.ActConfigure; k++ {
		for _, r := range []string{"requested", "refused", "done", "failed"} {
			m.pluginActions.WithLabelValues(k.String(), r)
		}
	}
	for _, op := range []string{"view", "update"} {
		m.storeErrors.WithLabelValues(op)
	}
	for _, c := range []prometheus.Collector{m.chainDepth, m.chainDropped, m.chainStopped, m.pluginFailures, m.pluginIQ, m.pluginActions, m.pluginRunning, m.storeErrors, m.haLeader, m.haLostLeadership, m.haStandbyEvents, m.haRenew, m.haRenewFailures, m.haInstances, m.haFenced} {
		reg.MustRegister(c)
	}
	return m
}
