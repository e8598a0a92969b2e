package supervisor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the supervisor's Prometheus metrics, in a registry of their own (the
// supervisor runs in its own process; eci-node serves them with its own, see Gatherer).
type Metrics struct {
	Registry   *prometheus.Registry
	calls      *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	blocked    *prometheus.CounterVec
	containers prometheus.Gauge
}

// NewMetrics registers the supervisor's metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eci_supervisor_trapped_syscalls_total",
			Help: "Syscalls trapped by eci's seccomp-notify supervisor, by syscall, action (allow, audit, deny, emulate) and pod namespace.",
		}, []string{"syscall", "action", "namespace"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eci_supervisor_decision_seconds",
			Help:    "Time from receiving a trapped syscall to answering it, by action.",
			Buckets: prometheus.ExponentialBuckets(2e-6, 4, 10),
		}, []string{"action"}),
		blocked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eci_supervisor_mounts_blocked_total",
			Help: "Mount-family calls the supervisor refused, by the container mount they would have changed (or \"(new filesystem)\" for a filesystem type eci does not mount).",
		}, []string{"path"}),
		containers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eci_supervisor_containers",
			Help: "Containers whose trapped syscalls the supervisor currently answers.",
		}),
	}
	m.Registry.MustRegister(m.calls, m.latency, m.blocked, m.containers)
	return m
}

// action names a decision for the metrics.
func action(d Decision) string {
	switch {
	case d.Verdict == Deny:
		return "deny"
	case d.Verdict == Perform:
		return "emulate"
	case d.Audit:
		return "audit"
	}
	return "allow"
}

func (m *Metrics) observe(namespace, syscall string, d Decision, took time.Duration) {
	a := action(d)
	m.calls.WithLabelValues(syscall, a, namespace).Inc()
	m.latency.WithLabelValues(a).Observe(took.Seconds())
	if d.path != "" && d.Verdict == Deny {
		m.blocked.WithLabelValues(d.path).Inc()
	}
}
