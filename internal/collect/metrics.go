package collect

import "github.com/prometheus/client_golang/prometheus"

// metrics of the Tracking API. Labels are bounded: endpoint is one of the
// route kinds, code an HTTP status, source a configured source id, reason a
// rejection code.
type metrics struct {
	requests   *prometheus.CounterVec   // endpoint, code
	duration   *prometheus.HistogramVec // endpoint
	accepted   *prometheus.CounterVec   // source
	rejected   *prometheus.CounterVec   // source, reason
	suppressed *prometheus.CounterVec   // source
	bytes      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_ingest_requests_total", Help: "Tracking API requests by endpoint and HTTP status.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "conflux_ingest_request_duration_seconds", Help: "Tracking API request latency, body read to response.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"endpoint"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_ingest_events_total", Help: "Events accepted into the log, by source.",
		}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_ingest_events_rejected_total", Help: "Events refused at ingest, by source and reason.",
		}, []string{"source", "reason"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_ingest_events_suppressed_total", Help: "Events dropped at ingest because their user is suppressed, by source.",
		}, []string{"source"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conflux_ingest_bytes_total", Help: "Request body bytes read by the Tracking API, after decompression.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.accepted, m.rejected, m.suppressed, m.bytes)
	}
	return m
}
