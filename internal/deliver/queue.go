package deliver

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/confluxcdp/conflux/internal/stream"
)

// item is one event in a queue: read from the log (seq > 0) or loaded
// from delivery_jobs (job != nil).
type item struct {
	ev  Event
	seq uint64
	idx int
	job *job
}

// failedJob is the job state of an item after a failed (or expired)
// attempt: a new job, first tried now, or the item's job carried on.
func (it *item) failedJob(attempts int, now time.Time) job {
	j := job{ID: it.jobID(), MessageID: it.ev.MessageID, SourceID: it.ev.SourceID, Type: it.ev.Type, Event: it.ev.JSON,
		ReceivedAt: it.ev.ReceivedAt, Attempts: attempts, FirstAttemptAt: now}
	if it.job != nil {
		j.FirstAttemptAt, j.ReplayID = it.job.FirstAttemptAt, it.job.ReplayID
	}
	return j
}

func (it *item) jobID() string {
	if it.job != nil {
		return it.job.ID
	}
	return strconv.FormatUint(it.seq, 10) + "." + strconv.Itoa(it.idx)
}

// written is a batch of state writes and the items they finish.
type written struct {
	ops   []op
	items []*item
}

// queue delivers to one destination, or one shard of it: a reader of the
// processed stream from the queue's own position, a retrier of its due
// jobs, senders up to its concurrency, and a writer of its state. Nothing
// it does waits on another queue.
type queue struct {
	e    *Engine
	dest config.Destination
	sh   shard
	name string // sh.key(dest.ID): the queue's position, lease and name
	// inherit is what another shard count of the destination finished
	// (set by run before the reader starts; read only afterwards).
	inherit *inherited
	settled bool // the writer found nothing left to inherit
	typ     *Type
	route   *routing
	d       Destination // nil when New failed: every event is discarded
	newErr  error
	batch   int
	conc    int
	maxAge  time.Duration
	window  int // most processed messages open at once
	brk     *breaker
	lim     *limiter
	track   *tracker
	log     *slog.Logger
	m       *queueMetrics
	work    chan []*item
	writes  chan written

	mu       sync.Mutex
	inflight map[string]*item // job id → item, for jobs being tried
	// loading is held by the retrier while it reads due jobs and marks
	// them in flight, and by the writer while it clears finished ones: a
	// read that began before a job's row was deleted must not see the
	// job cleared from inflight, or it would send the job again.
	loading sync.Mutex
	// polls counts the retrier's loads, for tests that wait for a queue to
	// settle (see idle).
	polls atomic.Int64
	// started is set once the queue knows its position: from then on,
	// events that arrive are its.
	started atomic.Bool
	saved   position // the position last stored
}

func (q *queue) run(ctx context.Context) error {
	own, err := q.start(ctx)
	if err != nil {
		return err
	}
	pos := own.seq
	q.track.reset(pos, own.done)
	q.saved = position{seq: pos}
	q.settled = false
	q.started.Store(true)
	defer q.started.Store(false)

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var workers sync.WaitGroup
	for range q.conc {
		workers.Go(func() { q.sender(ctx) })
	}
	workers.Go(func() { q.reader(ctx, pos+1) })
	workers.Go(func() { q.retrier(ctx) })
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); q.writer() }()

	<-ctx.Done()
	workers.Wait()
	close(q.writes)
	<-writerDone
	if q.d != nil {
		if err := q.d.Close(); err != nil {
			q.log.Warn("closing destination", "err", err)
		}
	}
	return nil
}

// start returns the queue's stored position. A destination without any
// gets, for all its shards at once, the end of the log (it is sent the
// events that arrive from now on); a new shard count gets where the old
// one stood, and the old one's positions say what not to send again.
func (q *queue) start(ctx context.Context) (*storedPosition, error) {
	jobs, db := q.e.jobs, q.e.jobs.db.SQL()
	for attempt := 0; ; attempt++ {
		rows, err := jobs.positions(ctx, db, q.dest.ID)
		if err != nil {
			return nil, err
		}
		for i := range rows {
			if rows[i].shard == q.sh {
				q.inherit = newInherited(rows, q.sh.n)
				return &rows[i], nil
			}
		}
		if attempt > 0 {
			return nil, fmt.Errorf("destination %q: the position of %s was stored but cannot be read back", q.dest.ID, q.name)
		}
		var base uint64
		if len(rows) == 0 {
			if base, err = q.e.log.LastSeq(ctx, stream.ProcessedStream); err != nil {
				return nil, err
			}
		} else {
			base = rows[0].seq
			for _, r := range rows {
				base = min(base, r.seq)
			}
		}
		if err := jobs.initShards(ctx, q.dest.ID, q.sh.n, base, q.e.clock.Now()); err != nil {
			return nil, err
		}
	}
}

// reader reads the processed stream from seq from and feeds the senders.
// When they are all busy (a slow or failing destination) it waits, and so
// the backlog stays in the log, not in memory or in the retry store.
func (q *queue) reader(ctx context.Context, from uint64) {
	for {
		err := q.readFrom(ctx, from)
		if ctx.Err() != nil {
			return
		}
		q.log.Warn("reading the processed stream failed; retrying", "from", from, "err", err)
		// Read again from where every message is finished, once none is
		// open, so that this process sends nothing twice.
		if sleep(ctx, RealClock{}, time.Second) != nil {
			return
		}
		for q.track.unfinished() > 0 {
			if sleep(ctx, RealClock{}, 50*time.Millisecond) != nil {
				return
			}
		}
		from = q.track.position() + 1
	}
}

func (q *queue) readFrom(ctx context.Context, from uint64) error {
	r, err := q.e.log.ReadAlone(ctx, "conflux-deliver-"+q.name, stream.ProcessedStream, from)
	if err != nil {
		return err
	}
	defer r.Close()
	var pending []*item
	flush := func() bool {
		if len(pending) == 0 {
			return true
		}
		select {
		case q.work <- pending:
			pending = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	expect := from
	for {
		msgs, err := r.Next(ctx, 4*stream.MaxMessageBytes, 2*time.Millisecond)
		if err != nil {
			return err
		}
		if first := msgs[0].Seq; first > expect && expect > 1 {
			// The log's retention removed messages this queue had not
			// read (a destination stopped for longer than it): their
			// events are lost to it, and said so.
			q.log.Error("processed messages expired before this destination read them", "from", expect, "to", first-1)
			q.m.expiredMessages.Add(float64(first - expect))
		}
		expect = msgs[len(msgs)-1].Seq + 1
		ws := q.e.opts.Workspace()
		for _, m := range msgs {
			// While the oldest unfinished event waits (an open breaker,
			// a Retry-After, a slow request), read no further than a
			// bounded window, so memory and the tracker stay small. The
			// partial batch goes to the senders first: its events are
			// among the unfinished, and would otherwise never finish.
			for q.track.unfinished() >= q.window {
				if !flush() {
					return ctx.Err()
				}
				if sleep(ctx, RealClock{}, 5*time.Millisecond) != nil {
					return ctx.Err()
				}
			}
			finished := q.track.open(m.Seq)
			idx := 0
			for rec, err := range event.Records(m.Data) {
				if err != nil {
					q.log.Error("a processed message is malformed; its remaining records are skipped", "seq", m.Seq, "err", err)
					break
				}
				i := idx
				idx++
				if !q.sh.has(m.Seq, i) || !q.route.sources[rec.SourceID] || finished(i) || q.inherit.finished(m.Seq, i) {
					continue
				}
				ev, skip, err := q.route.prepare(ws, rec)
				if err != nil {
					q.log.Error("an event cannot be prepared for the destination; it is discarded", "seq", m.Seq, "err", err)
					q.track.add()
					it := &item{ev: ev, seq: m.Seq, idx: i}
					if ev.JSON == nil {
						it.ev.JSON = rec.JSON
					}
					q.settle(it, Result{Outcome: Discard, Reason: ReasonInvalidEvent, Error: err.Error()})
					continue
				}
				if skip != skipNone {
					q.m.skipped(string(skip))
					q.observe(&ev, observe.Filtered, string(skip))
					continue
				}
				q.track.add()
				pending = append(pending, &item{ev: ev, seq: m.Seq, idx: i})
				if len(pending) == q.batch && !flush() {
					q.track.seal()
					return ctx.Err()
				}
			}
			q.track.seal()
			q.m.lag.Set(float64(m.Pending))
		}
		if !flush() {
			return ctx.Err()
		}
	}
}

// retrier feeds the senders the jobs whose retry time has come.
func (q *queue) retrier(ctx context.Context) {
	// A load takes at most limit jobs; when it is full, the next one
	// follows at once (it waits for the senders to take the batches), so
	// that a large backlog of retries drains at the senders' speed.
	limit := max(4*q.batch*q.conc, 1000)
	full := false
	for {
		if !full && sleep(ctx, RealClock{}, q.e.opts.RetryPoll) != nil {
			return
		}
		full = false
		if !q.brk.closed() && q.track.unfinished() > 0 {
			continue // the reader's events probe the breaker
		}
		q.polls.Add(1)
		q.loading.Lock()
		q.mu.Lock()
		busy := len(q.inflight)
		q.mu.Unlock()
		jobs, err := q.e.jobs.due(ctx, q.dest.ID, q.sh, q.e.clock.Now(), limit, busy, func(id string) bool {
			q.mu.Lock()
			defer q.mu.Unlock()
			_, busy := q.inflight[id]
			return busy
		})
		q.mu.Lock()
		for i := range jobs {
			j := &jobs[i]
			var name string
			if k, err := event.PeekKeys(j.Event); err == nil {
				name = eventName(&k)
			}
			q.inflight[j.ID] = &item{job: j, ev: Event{MessageID: j.MessageID, SourceID: j.SourceID, Type: j.Type, Name: name,
				JSON: j.Event, ReceivedAt: j.ReceivedAt, Attempt: j.Attempts + 1}}
		}
		q.mu.Unlock()
		q.loading.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				q.log.Warn("loading due jobs failed", "err", err)
			}
			continue
		}
		full = len(jobs) == limit
		var pending []*item
		for i := range jobs {
			q.mu.Lock()
			it := q.inflight[jobs[i].ID]
			q.mu.Unlock()
			pending = append(pending, it)
			if len(pending) == q.batch || i == len(jobs)-1 {
				select {
				case q.work <- pending:
					pending = nil
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// sender takes batches, waits for the breaker and the rate limit, sends,
// and hands each outcome to the writer.
func (q *queue) sender(ctx context.Context) {
	for {
		var items []*item
		select {
		case <-ctx.Done():
			return
		case items = <-q.work:
		}
		// Events that grew too old while they waited are not sent.
		now := q.e.clock.Now()
		live := items[:0]
		for _, it := range items {
			if q.expired(it, now) {
				q.expire(it, now)
				continue
			}
			live = append(live, it)
		}
		if len(live) == 0 {
			continue
		}
		probe, err := q.brk.wait(ctx)
		if err == nil {
			err = q.lim.wait(ctx)
		}
		if err != nil {
			return // unfinished: read or loaded again after the restart
		}
		// A request started is finished, within sendGrace, even when the
		// queue stops, and its outcome stored: a restart or a hand-over to
		// another node then does not send it again. Past the grace, the
		// outcome is dropped and the events are read again.
		sctx, cancel := graceful(ctx, sendGrace)
		results := q.send(sctx, live)
		graceOver := sctx.Err() != nil
		cancel()
		if graceOver {
			return
		}
		ok, retryAfter := false, time.Duration(0)
		for i, r := range results {
			ok = ok || r.Outcome != Retry
			retryAfter = max(retryAfter, r.RetryAfter)
			q.finish(live[i], r)
		}
		q.brk.record(ok, probe)
		if retryAfter > 0 {
			q.brk.hold(retryAfter)
		}
	}
}

// sendGrace is how long a request in flight may finish after its queue
// stops.
const sendGrace = 5 * time.Second

// graceful returns a context that ends grace after ctx does.
func graceful(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	g, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(g, func() { t.Stop() })
	})
	return g, func() { stop(); cancel() }
}

func (q *queue) send(ctx context.Context, items []*item) []Result {
	evs := make([]*Event, len(items))
	for i, it := range items {
		evs[i] = &it.ev
	}
	start := time.Now()
	var results []Result
	if q.d == nil {
		r := Result{Outcome: Discard, Reason: ReasonInvalidSettings, Error: q.newErr.Error()}
		results = make([]Result, len(items))
		for i := range results {
			results[i] = r
		}
	} else {
		results = q.sendSafely(ctx, evs)
	}
	q.m.requests.Observe(time.Since(start).Seconds())
	if len(results) != len(items) {
		q.log.Error("destination returned the wrong number of results; retrying the batch", "want", len(items), "got", len(results))
		r := Result{Outcome: Retry, Reason: ReasonDestinationError, Error: fmt.Sprintf("destination returned %d results for %d events", len(results), len(items))}
		results = make([]Result, len(items))
		for i := range results {
			results[i] = r
		}
	}
	return results
}

// sendSafely calls Send and turns a panic (a mapping bug on an odd event)
// into retries of the batch, so that one destination's bug neither stops
// the process nor the other destinations.
func (q *queue) sendSafely(ctx context.Context, evs []*Event) (results []Result) {
	defer func() {
		if p := recover(); p != nil {
			q.log.Error("destination panicked; the batch will be retried", "panic", p, "events", len(evs))
			r := Result{Outcome: Retry, Reason: ReasonDestinationError, Error: fmt.Sprintf("the destination panicked: %v", p)}
			results = make([]Result, len(evs))
			for i := range results {
				results[i] = r
			}
		}
	}()
	return q.d.Send(ctx, evs)
}

// ageBase is when an event's maximum retry age starts: when Conflux
// received it; for a replayed event, when it was replayed (a replay is a
// new chance, also for events that expired); for an event without a
// usable receivedAt, its first attempt. Zero: not known yet (a first
// attempt of such an event does not expire).
func ageBase(it *item) time.Time {
	if it.job != nil && (it.job.ReplayID != "" || it.ev.ReceivedAt.IsZero()) {
		return it.job.FirstAttemptAt
	}
	return it.ev.ReceivedAt
}

func (q *queue) expired(it *item, now time.Time) bool {
	base := ageBase(it)
	return !base.IsZero() && now.Sub(base) > q.maxAge
}

// finish records the outcome of an attempt: a delivered log event is
// finished at once; everything else becomes a state write, finished when
// the writer has stored it.
func (q *queue) finish(it *item, r Result) {
	q.m.attempt(r)
	q.settle(it, r)
}

// settle is finish without counting an attempt: for an event that was not
// sent (one that cannot be prepared).
func (q *queue) settle(it *item, r Result) {
	now := q.e.clock.Now()
	switch r.Outcome {
	case Delivered:
		var lat time.Duration
		if !it.ev.ReceivedAt.IsZero() {
			lat = now.Sub(it.ev.ReceivedAt)
			q.m.latency.Observe(lat.Seconds())
		}
		q.m.events(observe.Delivered)
		if q.e.opts.Metrics != nil {
			q.e.opts.Metrics.Delivered(q.key(&it.ev, "", ""), lat)
		}
		q.done(it)
		return
	case Dropped:
		q.m.skipped(string(skipInsertFunction))
		q.observe(&it.ev, observe.Filtered, string(skipInsertFunction))
		q.done(it)
		return
	}
	if q.log.Enabled(context.Background(), slog.LevelDebug) {
		q.log.Debug("attempt failed", "message_id", it.ev.MessageID, "attempt", it.ev.Attempt, "job", it.jobID(),
			"outcome", r.Outcome.String(), "reason", r.Reason, "status", r.StatusCode, "error", r.Error)
	}
	j := it.failedJob(it.ev.Attempt, now)
	j.LastStatus, j.LastReason, j.LastError = r.StatusCode, r.Reason, r.Error
	if it.job == nil {
		j.Shard = q.sh.k // this shard retries it
	}
	o := op{job: j, fromJob: it.job != nil}
	switch {
	case r.Outcome == Retry:
		next := now.Add(q.e.opts.Backoff.Delay(it.ev.Attempt))
		if r.RetryAfter > 0 {
			next = maxTime(next, now.Add(r.RetryAfter))
		}
		base := ageBase(it)
		if base.IsZero() {
			base = now // its first attempt: the job's FirstAttemptAt
		}
		if next.Sub(base) > q.maxAge {
			o.kind, o.dead = opDead, q.deadLetter(&j, r, DeadExpired, now)
			q.count(&it.ev, observe.Expired, r.Reason)
			break
		}
		o.job.NextAttemptAt, o.job.LastRequest, o.job.LastResponse = next, r.Request, r.Response
		o.kind = opSchedule
		if it.job != nil {
			o.kind = opRetry
		}
		q.count(&it.ev, observe.Retried, "attempt."+strconv.Itoa(it.ev.Attempt))
	default:
		o.kind, o.dead = opDead, q.deadLetter(&j, r, DeadDiscarded, now)
		q.count(&it.ev, observe.Discarded, discardReason(r))
	}
	q.writes <- written{ops: []op{o}, items: []*item{it}}
}

// done finishes an event that needs no more attempts: at once when it was
// read from the log, through the writer when it was a job.
func (q *queue) done(it *item) {
	if it.job == nil {
		q.track.done(it.seq, it.idx)
		return
	}
	q.writes <- written{ops: []op{{kind: opDone, job: *it.job, fromJob: true}}, items: []*item{it}}
}

// expire dead-letters an event that grew older than the maximum retry age
// before it could be tried (again), with its last attempt's outcome.
func (q *queue) expire(it *item, now time.Time) {
	q.count(&it.ev, observe.Expired, ReasonExpired)
	j := it.failedJob(it.ev.Attempt-1, now) // expired before this attempt was made
	r := Result{Reason: ReasonExpired, Error: fmt.Sprintf("older than the destination's maximum retry age (%s) before it could be sent", q.maxAge)}
	if it.job != nil {
		r = Result{StatusCode: it.job.LastStatus, Reason: it.job.LastReason,
			Error: fmt.Sprintf("%s (expired waiting for its next attempt: older than the maximum retry age %s)", it.job.LastError, q.maxAge)}
	}
	q.writes <- written{ops: []op{{kind: opDead, job: j, fromJob: it.job != nil, dead: q.deadLetter(&j, r, DeadExpired, now)}}, items: []*item{it}}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (q *queue) deadLetter(j *job, r Result, reason string, now time.Time) *DeadLetter {
	return &DeadLetter{DestinationID: q.dest.ID, MessageID: j.MessageID, SourceID: j.SourceID, EventType: j.Type,
		Event: j.Event, ReceivedAt: j.ReceivedAt, Reason: reason, StatusCode: r.StatusCode, ErrorReason: r.Reason,
		Error: r.Error, Request: r.Request, Response: r.Response, Attempts: j.Attempts, FirstAttemptAt: j.FirstAttemptAt,
		FailedAt: now, ReplayID: j.ReplayID}
}

// writer stores state writes in transactions of up to a few thousand,
// with the position the tracker reached, and then finishes their items.
// It saves the position every 250 ms when it moved (so a crash sends again
// at most what was in flight and what was delivered in the last 250 ms),
// and once more when the queue stops.
func (q *queue) writer() {
	ctx := context.Background() // a write in progress is finished even when the queue stops
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var batch written
		open := true
		select {
		case w, ok := <-q.writes:
			if !ok {
				open = false
				break
			}
			batch = w
		gather:
			for len(batch.ops) < 2000 {
				select {
				case w, ok := <-q.writes:
					if !ok {
						open = false
						break gather
					}
					batch.ops = append(batch.ops, w.ops...)
					batch.items = append(batch.items, w.items...)
				default:
					break gather
				}
			}
		case <-tick.C:
		}
		q.store(ctx, batch)
		if !open {
			q.store(ctx, written{}) // the final position
			return
		}
	}
}

// store writes one batch, retrying until it succeeds: the queue's events
// are not finished, and so not skipped, until it has.
func (q *queue) store(ctx context.Context, w written) {
	var pos *position
	var also []record
	for _, it := range w.items {
		if it.job == nil {
			also = append(also, record{it.seq, it.idx})
		}
	}
	if seq, done := q.track.state(also...); seq != q.saved.seq || !bytes.Equal(done, q.saved.done) {
		pos = &position{seq: seq, done: done}
	}
	if len(w.ops) == 0 && pos == nil {
		return
	}
	for attempt := 1; ; attempt++ {
		err := q.e.jobs.apply(ctx, q.dest.ID, q.name, w.ops, pos, q.e.clock.Now())
		if err == nil {
			break
		}
		q.log.Warn("storing delivery state failed; retrying", "ops", len(w.ops), "attempt", attempt, "err", err)
		time.Sleep(min(time.Duration(attempt)*100*time.Millisecond, 5*time.Second))
	}
	if pos != nil {
		q.saved = *pos
		if !q.settled && len(q.inherit.from) > 0 && pos.seq >= q.inherit.until {
			// Past what the old shard count finished: once every shard
			// is, its positions go.
			if err := q.e.jobs.settleShards(ctx, q.dest.ID, q.sh.n, q.inherit.from); err != nil {
				q.log.Warn("deleting the positions of the destination's earlier shard count", "err", err)
			} else {
				q.settled = true
			}
		}
	}
	q.loading.Lock()
	defer q.loading.Unlock()
	for _, it := range w.items {
		if it.job == nil {
			q.track.done(it.seq, it.idx)
			continue
		}
		q.mu.Lock()
		delete(q.inflight, it.job.ID)
		q.mu.Unlock()
	}
}

// idle reports whether the queue has nothing read or loaded that is not
// finished (stored), and the number of retrier loads so far.
func (q *queue) idle() (bool, int64) {
	q.mu.Lock()
	n := len(q.inflight)
	q.mu.Unlock()
	return n == 0 && q.track.unfinished() == 0, q.polls.Load()
}

// key is the delivery-metrics key of an event's outcome here.
func (q *queue) key(ev *Event, outcome, reason string) observe.Key {
	return observe.Key{Source: ev.SourceID, Destination: q.dest.ID, EventType: ev.Type, EventName: ev.Name,
		Outcome: outcome, Reason: reason}
}

// count counts one outcome of an event (retried, discarded, expired) in
// the destination's Prometheus counter and, when they are on, in the
// delivery metrics.
func (q *queue) count(ev *Event, outcome, reason string) {
	q.m.events(outcome)
	q.observe(ev, outcome, reason)
}

// observe counts one outcome in the delivery metrics (when they are on).
func (q *queue) observe(ev *Event, outcome, reason string) {
	if q.e.opts.Metrics != nil {
		q.e.opts.Metrics.Add(q.key(ev, outcome, reason), 1)
	}
}

// discardReason is a discard's reason in the delivery metrics: the
// status code when there is one ("http_400"), else the reason.
func discardReason(r Result) string {
	if r.StatusCode != 0 {
		return "http_" + strconv.Itoa(r.StatusCode)
	}
	return r.Reason
}
