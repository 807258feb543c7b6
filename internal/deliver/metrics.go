package deliver

import (
	"strconv"
	"sync"

	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's Prometheus series, labelled by destination.
type metrics struct {
	events   *prometheus.CounterVec
	attempts *prometheus.CounterVec
	requests *prometheus.HistogramVec
	latency  *prometheus.HistogramVec
	lag      *prometheus.GaugeVec
	jobs     *prometheus.GaugeVec
	dead     *prometheus.GaugeVec
	breaker  *prometheus.GaugeVec
	expired  *prometheus.CounterVec

	// shardBreakers are the breaker states of each destination's shards
	// running here: its gauge shows the worst.
	mu            sync.Mutex
	shardBreakers map[string]map[int]breakerState
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{shardBreakers: map[string]map[int]breakerState{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_deliver_events_total",
			Help: "Events by destination and outcome: delivered, retried (an attempt failed and a retry is scheduled), discarded, expired, or skipped by integrations, filtered or sampled.",
		}, []string{"destination", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_deliver_attempts_total",
			Help: "Delivery attempts of events by destination, result (delivered, retry, discard) and reason (http_<status>, timeout, connection, …; empty when delivered).",
		}, []string{"destination", "result", "reason"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "conflux_deliver_request_duration_seconds",
			Help:    "Time a destination took to answer one request (one batch).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"destination"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "conflux_deliver_latency_seconds",
			Help:    "End-to-end latency of delivered events: receivedAt to the destination's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 14),
		}, []string{"destination"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "conflux_deliver_lag_messages",
			Help: "Messages of the processed stream after the one a destination's queue read last.",
		}, []string{"destination"}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "conflux_deliver_retry_jobs",
			Help: "Events awaiting retry per destination.",
		}, []string{"destination"}),
		dead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "conflux_deliver_dead_letters",
			Help: "Events in the dead-letter store per destination (discarded or expired, not replayed).",
		}, []string{"destination"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "conflux_deliver_breaker_state",
			Help: "A destination's circuit breaker: 0 closed, 1 half-open (probing), 2 open.",
		}, []string{"destination"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conflux_deliver_expired_messages_total",
			Help: "Processed messages the log's retention removed before a destination's queue read them (their events never reached it).",
		}, []string{"destination"}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.attempts, m.requests, m.latency, m.lag, m.jobs, m.dead, m.breaker, m.expired)
	}
	return m
}

// queueMetrics are one destination's series.
type queueMetrics struct {
	m        *metrics
	dest     string
	shard    int
	requests prometheus.Observer
	latency  prometheus.Observer
	lag      prometheus.Gauge
	// expiredMessages counts processed messages lost to retention.
	expiredMessages prometheus.Counter
	counters        map[string]prometheus.Counter
}

func (m *metrics) forDestination(dest string, shard int) *queueMetrics {
	q := &queueMetrics{m: m, dest: dest, shard: shard,
		requests:        m.requests.WithLabelValues(dest),
		latency:         m.latency.WithLabelValues(dest),
		lag:             m.lag.WithLabelValues(dest),
		expiredMessages: m.expired.WithLabelValues(dest),
		counters:        make(map[string]prometheus.Counter),
	}
	// The delivery metrics' outcome names, and the reasons an event is
	// skipped.
	for _, o := range []string{observe.Delivered, observe.Retried, observe.Discarded, observe.Expired,
		string(skipIntegrations), string(skipFiltered), string(skipSampled), string(skipInsertFunction)} {
		q.counters[o] = m.events.WithLabelValues(dest, o)
	}
	return q
}

func (q *queueMetrics) events(outcome string) { q.counters[outcome].Inc() }
func (q *queueMetrics) skipped(reason string) { q.counters[reason].Inc() }
func (q *queueMetrics) breakerState(s breakerState) {
	q.m.mu.Lock()
	defer q.m.mu.Unlock()
	states := q.m.shardBreakers[q.dest]
	if states == nil {
		states = map[int]breakerState{}
		q.m.shardBreakers[q.dest] = states
	}
	states[q.shard] = s
	q.m.showBreaker(q.dest)
}

// leave drops a stopped shard's breaker from its destination's gauge.
func (m *metrics) leave(dest string, shard int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if states := m.shardBreakers[dest]; states != nil {
		delete(states, shard)
		m.showBreaker(dest)
	}
}

// showBreaker sets dest's gauge to its worst shard's state; m.mu is held.
func (m *metrics) showBreaker(dest string) {
	worst := breakerClosed
	for _, st := range m.shardBreakers[dest] {
		worst = max(worst, st)
	}
	m.breaker.WithLabelValues(dest).Set(float64(worst))
}

func (q *queueMetrics) attempt(r Result) {
	reason := r.Reason
	if r.Outcome == Delivered {
		reason = ""
	} else if reason == "" && r.StatusCode != 0 {
		reason = "http_" + strconv.Itoa(r.StatusCode)
	}
	q.m.attempts.WithLabelValues(q.dest, r.Outcome.String(), reason).Inc()
}

// forget deletes a removed destination's series.
func (m *metrics) forget(dest string) {
	m.mu.Lock()
	delete(m.shardBreakers, dest)
	m.mu.Unlock()
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.events, m.attempts, m.requests, m.latency, m.lag, m.jobs, m.dead, m.breaker, m.expired} {
		v.DeletePartialMatch(prometheus.Labels{"destination": dest})
	}
}
