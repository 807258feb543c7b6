package function

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count function calls by function and outcome.
type Metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the function metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_function_calls_total",
			Help: "Function calls, by function, kind and outcome (ok, retry, discard, drop) and error class.",
		}, []string{"function", "kind", "status", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "conflux_function_call_seconds",
			Help:    "How long function calls took, by function.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 30},
		}, []string{"function"}),
	}
	reg.MustRegister(m.calls, m.duration)
	return m
}

func (m *Metrics) observe(p *Program, o Outcome, d time.Duration) {
	m.calls.WithLabelValues(p.spec.ID, string(p.spec.Kind), o.Status.String(), o.Class).Inc()
	m.duration.WithLabelValues(p.spec.ID).Observe(d.Seconds())
}
