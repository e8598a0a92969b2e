package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	policiesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eci_controller_policies",
		Help: "IsolationPolicy objects by condition (Valid, Ready) and its status (True, False, Unknown).",
	}, []string{"condition", "status"})
	reconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "eci_controller_reconcile_duration_seconds",
		Help:    "Time to reconcile one IsolationPolicy, by result (success or error).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"result"})
	registerOnce sync.Once
)

// policyMetrics keeps each policy's condition statuses so the gauge can be
// recounted after every reconcile. A nil *policyMetrics records nothing. A nil *policyMetrics records nothing.
type policyMetrics struct {
	mu       sync.Mutex
	policies map[string]map[string]metav1.ConditionStatus
}

func newPolicyMetrics() *policyMetrics {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(policiesGauge, reconcileDuration)
	})
	return &policyMetrics{policies: map[string]map[string]metav1.ConditionStatus{}}
}

func (m *policyMetrics) observe(d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "error"
	}
	reconcileDuration.WithLabelValues(result).Observe(d.Seconds())
}

func (m *policyMetrics) record(name string, conds []metav1.Condition) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := map[string]metav1.ConditionStatus{}
	for _, c := range conds {
		s[c.Type] = c.Status
	}
	m.policies[name] = s
	m.publish()
}

func (m *policyMetrics) forget(name string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.policies, name)
	m.publish()
}

func (m *policyMetrics) publish() {
	for _, cond := range []string{ConditionValid, ConditionReady} {
		counts := map[metav1.ConditionStatus]int{}
		for _, s := range m.policies {
			st, ok := s[cond]
			if !ok {
				st = metav1.ConditionUnknown
			}
			counts[st]++
		}
		for _, st := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			policiesGauge.WithLabelValues(cond, string(st)).Set(float64(counts[st]))
		}
	}
}
