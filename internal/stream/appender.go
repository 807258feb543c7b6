package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrBusy means the appender already holds as many bytes waiting for the
// log as it may: the caller should ask its client to retry later.
var ErrBusy = errors.New("log append queue is full")

// ErrClosed means the appender has stopped and takes no more appends.
var ErrClosed = errors.New("log appender is stopped")

// Header names of log messages. docs/format/envelope.md describes them.
const (
	// HeaderFormat names the framing of the message body ("records/1").
	HeaderFormat = "Conflux-Format"
	// HeaderCount is the number of records in the message.
	HeaderCount = "Conflux-Count"
	// FormatRecords is the value of HeaderFormat for event records.
	FormatRecords = "records/1"
)

// AppenderOptions configure an [Appender].
type AppenderOptions struct {
	// Subject the messages are published to. Default: IngestSubject.
	Subject string
	// MaxMessageBytes bounds one group commit. Default: 4 MiB.
	MaxMessageBytes int
	// MaxPendingBytes bounds the bytes waiting to be written; an Append
	// beyond it fails at once with ErrBusy. Default: 128 MiB.
	MaxPendingBytes int64
	// AckTimeout bounds the wait for the log's acknowledgement of one
	// message. Default: 10s.
	AckTimeout time.Duration
	// Registerer receives the appender's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Appender writes records to the log with group commit: the records of
// all Appends that arrive while one message is being written and synced go
// out together in the next message, and every waiting Append returns when
// that message is acknowledged. One sync then serves many requests, which
// is what makes "synced before the ack" affordable.
type Appender struct {
	js   jetstream.JetStream
	opts AppenderOptions

	queue   chan *appendReq
	pending atomic.Int64
	stopped chan struct{}
	once    sync.Once
	bufPool sync.Pool
	// mu orders enqueueing against stopping: Appends enqueue under the
	// read lock, and close drains the queue under the write lock after
	// setting closed, so no request is left in the queue with nobody to
	// answer it.
	mu     sync.RWMutex
	closed bool

	mAppends  prometheus.Counter
	mFailures prometheus.Counter
	mRecords  prometheus.Histogram
	mBytes    prometheus.Histogram
	mLatency  prometheus.Histogram
	mPending  prometheus.GaugeFunc
}

type appendReq struct {
	data  []byte
	count int
	done  chan error
}

// NewAppender returns an appender writing to js. Run must be running for
// Appends to complete.
func NewAppender(js jetstream.JetStream, opts AppenderOptions) *Appender {
	if opts.Subject == "" {
		opts.Subject = IngestSubject
	}
	if opts.MaxMessageBytes <= 0 || opts.MaxMessageBytes > MaxMessageBytes {
		opts.MaxMessageBytes = 4 << 20
	}
	if opts.MaxPendingBytes <= 0 {
		opts.MaxPendingBytes = 128 << 20
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	a := &Appender{
		js:      js,
		opts:    opts,
		queue:   make(chan *appendReq, 4096),
		stopped: make(chan struct{}),
		mAppends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conflux_log_appends_total", Help: "Messages written to the log by group commit.",
		}),
		mFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conflux_log_append_failures_total", Help: "Group commits the log did not acknowledge.",
		}),
		mRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conflux_log_append_records", Help: "Records per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		mBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conflux_log_append_bytes", Help: "Bytes per group commit.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 8),
		}),
		mLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conflux_log_append_duration_seconds", Help: "Time from publishing a group commit to its acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	a.mPending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "conflux_log_append_pending_bytes", Help: "Bytes waiting to be written to the log.",
	}, func() float64 { return float64(a.pending.Load()) })
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(a.mAppends, a.mFailures, a.mRecords, a.mBytes, a.mLatency, a.mPending)
	}
	return a
}

// Append writes data — count records framed by package event — to the log
// and returns once the log has acknowledged them, as durably as its sync
// mode promises. It fails with ErrBusy when too much is already waiting,
// with ErrClosed after Run has returned, and with the log's error when the
// write fails; on any error the caller must not report success to its
// client (the records may or may not be in the log).
//
// Append does not return before the appender is done with data, even if
// ctx ends first, so the caller may reuse data once it returns.
func (a *Appender) Append(ctx context.Context, data []byte, count int) error {
	n := int64(len(data))
	// One request alone is always let through, however large.
	if p := a.pending.Add(n); p > a.opts.MaxPendingBytes && p != n {
		a.pending.Add(-n)
		return ErrBusy
	}
	r := &appendReq{data: data, count: count, done: make(chan error, 1)}
	if err := a.enqueue(ctx, r); err != nil {
		a.pending.Add(-n)
		return err
	}
	return <-r.done
}

// enqueue hands r to Run, or fails when the appender has stopped or ctx
// ends first. Once it succeeds, r.done is certain to receive an answer.
func (a *Appender) enqueue(ctx context.Context, r *appendReq) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return ErrClosed
	}
	select {
	case a.queue <- r:
		return nil
	case <-a.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run writes group commits until ctx ends, then fails what is still queued
// with ErrClosed and returns. Callers stop their writers first (e.g. the
// HTTP server's graceful shutdown) so that nothing is queued by then.
func (a *Appender) Run(ctx context.Context) error {
	defer a.close()
	var batch []*appendReq
	for {
		var first *appendReq
		select {
		case <-ctx.Done():
			return nil
		case first = <-a.queue:
		}
		batch = append(batch[:0], first)
		size, count := len(first.data), first.count
	gather:
		for size < a.opts.MaxMessageBytes {
			select {
			case r := <-a.queue:
				if size+len(r.data) > a.opts.MaxMessageBytes {
					// It does not fit: write what we have, and start the
					// next message with it.
					a.write(ctx, batch, size, count)
					batch, size, count = append(batch[:0], r), len(r.data), r.count
					continue
				}
				batch = append(batch, r)
				size += len(r.data)
				count += r.count
			default:
				break gather
			}
		}
		a.write(ctx, batch, size, count)
	}
}

func (a *Appender) close() {
	// Closing stopped first releases Appends blocked on a full queue, so
	// that the write lock below can be had.
	a.once.Do(func() { close(a.stopped) })
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for {
		select {
		case r := <-a.queue:
			a.pending.Add(-int64(len(r.data)))
			r.done <- ErrClosed
		default:
			return
		}
	}
}

// write publishes one message holding the batch's data and completes
// every request of the batch with the outcome.
func (a *Appender) write(ctx context.Context, batch []*appendReq, size, count int) {
	var buf []byte
	if len(batch) == 1 {
		buf = batch[0].data
	} else {
		bp, _ := a.bufPool.Get().(*[]byte)
		if bp == nil {
			b := make([]byte, 0, a.opts.MaxMessageBytes)
			bp = &b
		}
		buf = (*bp)[:0]
		for _, r := range batch {
			buf = append(buf, r.data...)
		}
		defer a.bufPool.Put(bp)
	}
	msg := &nats.Msg{
		Subject: a.opts.Subject,
		Data:    buf,
		Header:  nats.Header{HeaderFormat: []string{FormatRecords}, HeaderCount: []string{strconv.Itoa(count)}},
	}
	start := time.Now()
	// The ack wait is bounded by AckTimeout, not by the caller's context:
	// once published, the outcome must be learnt, not abandoned.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.AckTimeout)
	_, err := a.js.PublishMsg(pctx, msg)
	cancel()
	if err != nil {
		a.mFailures.Inc()
		err = fmt.Errorf("appending %d records (%d bytes) to %s: %w", count, size, a.opts.Subject, err)
	} else {
		a.mAppends.Inc()
		a.mRecords.Observe(float64(count))
		a.mBytes.Observe(float64(size))
		a.mLatency.Observe(time.Since(start).Seconds())
	}
	for _, r := range batch {
		a.pending.Add(-int64(len(r.data)))
		r.done <- err
	}
}
