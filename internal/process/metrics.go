package process

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events       *prometheus.CounterVec
	groups       prometheus.Counter
	groupSeconds prometheus.Histogram
	lag          prometheus.Gauge
	position     prometheus.Gauge
	dedupErrors  prometheus.Counter
	expired      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_process_events_total",
			Help: "Ingest records handled by the processing stage, by source and outcome (processed, duplicate, blocked, invalid, too_large, forwarded).",
		}, []string{"source", "outcome"}),
		groups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conflux_process_groups_total", Help: "Groups of ingest messages processed and committed.",
		}),
		groupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conflux_process_group_duration_seconds", Help: "Time from a group's preparation to its commit (publish, sync, commit).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "conflux_process_lag_messages", Help: "Ingest messages not yet read by the processing stage.",
		}),
		position: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "conflux_process_position", Help: "Last ingest sequence of the last group written and committed.",
		}),
		dedupErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conflux_process_dedup_errors_total", Help: "Dedup lookups that failed (the event was let through).",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conflux_process_expired_messages_total", Help: "Ingest messages the log's retention removed before the stage read them.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.groups, m.groupSeconds, m.lag, m.position, m.dedupErrors, m.expired)
	}
	return m
}

func (m *metrics) add(k tallyKey, n int) {
	if n > 0 {
		m.events.WithLabelValues(k.source, string(k.outcome)).Add(float64(n))
	}
}
