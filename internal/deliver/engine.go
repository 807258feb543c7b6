package deliver

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure an [Engine]. Zero values take the documented defaults.
type Options struct {
	// Log is where the processed stream is read.
	Log *stream.Log
	// DB holds positions, jobs awaiting retry and dead letters.
	DB *store.DB
	// Registry holds the destination types.
	Registry *Registry
	// Workspace returns the live workspace snapshot.
	Workspace func() *config.Workspace
	// Clock is the engine's time. Default: RealClock.
	Clock Clock
	// Backoff is the retry schedule. Default: DefaultBackoff.
	Backoff Backoff
	// HTTP is the client HTTP destinations use. Default: a client with a
	// connection pool sized for many concurrent requests per host.
	HTTP *http.Client
	// Concurrency is a destination's default concurrency limit. Default: 8.
	Concurrency int
	// MaxRetryAge is a destination's default maximum retry age. Default: 4h.
	MaxRetryAge time.Duration
	// RetryPoll is how often a queue looks for due jobs. Default: 1s.
	RetryPoll time.Duration
	// ConfigPoll is how often the engine looks for a new workspace
	// snapshot. Default: 1s.
	ConfigPoll time.Duration
	// BreakerThreshold is how many failed requests in a row open a
	// destination's breaker. Default: 5.
	BreakerThreshold int
	// BreakerMinOpen and BreakerMaxOpen bound how long an open breaker
	// waits before its probe. Defaults: 1s and 1m.
	BreakerMinOpen, BreakerMaxOpen time.Duration
	// Leases, if set, decide which destinations, and which shards of
	// them, this node delivers for (package lease): a node runs a queue
	// only while it owns its lease, "deliver/<id>" or, for a destination
	// of several shards, "deliver/<id>/<k>-of-<n>", so that the nodes of a
	// cluster share the destinations and each event is sent by one node
	// (beyond what was in flight at a hand-over); a destination's
	// concurrency and rate limit, divided among its shards, then hold
	// cluster-wide. Nil: this node delivers for every destination.
	Leases Leases
	// Refresh, if set, reloads the workspace from the shared store. With
	// Leases, the engine calls it before it starts a queue, so that a node
	// with a stale snapshot does not run a shard count that was just
	// changed.
	Refresh func(ctx context.Context) error
	// Functions, if set, runs the destinations' insert functions before
	// their events are sent; nil: insert functions are not run.
	Functions Inserter
	// Metrics, if set, records every outcome for the delivery-metrics API.
	Metrics    *observe.Recorder
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

func (o *Options) defaults() {
	o.Clock = cmp.Or[Clock](o.Clock, RealClock{})
	if o.Backoff == (Backoff{}) {
		o.Backoff = DefaultBackoff
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{CheckRedirect: noRedirects, Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
		}}
	}
	o.Concurrency = cmp.Or(o.Concurrency, config.DefaultDeliveryConcurrency)
	o.MaxRetryAge = cmp.Or(o.MaxRetryAge, 4*time.Hour)
	o.RetryPoll = cmp.Or(o.RetryPoll, time.Second)
	o.ConfigPoll = cmp.Or(o.ConfigPoll, time.Second)
	o.BreakerThreshold = cmp.Or(o.BreakerThreshold, 5)
	o.BreakerMinOpen = cmp.Or(o.BreakerMinOpen, time.Second)
	o.BreakerMaxOpen = cmp.Or(o.BreakerMaxOpen, time.Minute)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// noRedirects makes a 3xx the answer: following a 301 or 302 would turn
// the POST into a GET without its body, and the event would count as
// delivered while the destination never got it. A 3xx is discarded with
// its Location in the recorded response.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Leases is what the engine needs of package lease's Group.
type Leases interface {
	Want(kind string, names []string)
	Owns(name string) bool
	Leaving() []string
	Release(ctx context.Context, name string) error
	Owners(ctx context.Context) (map[string]string, error)
}

// leaseName is the lease of a queue, by its key (see [shard.key]).
func leaseName(key string) string { return "deliver/" + key }

// Engine runs one queue per enabled destination, or per shard of one,
// and keeps the set in step with the workspace: a destination added,
// changed or removed starts, restarts or stops its queues within
// ConfigPoll.
type Engine struct {
	opts  Options
	log   *stream.Log
	jobs  *jobStore
	clock Clock
	m     *metrics

	mu     sync.Mutex
	queues map[string]*running // by queue key (see [shard.key])
}

type running struct {
	q           *queue
	fingerprint string
	cancel      context.CancelFunc
	done        chan struct{}
}

// New builds an engine; Run starts it.
func New(opts Options) *Engine {
	opts.defaults()
	return &Engine{opts: opts, log: opts.Log, jobs: &jobStore{db: opts.DB}, clock: opts.Clock,
		m: newMetrics(opts.Registerer), queues: make(map[string]*running)}
}

// Run delivers until ctx ends, then stops every queue: senders finish the
// request in hand, the state of finished events is stored, and the rest
// is read again on the next start.
func (e *Engine) Run(ctx context.Context) error {
	defer e.stopAll()
	version := int64(-1)
	gauges := time.NewTicker(5 * time.Second)
	defer gauges.Stop()
	for {
		// With leases, ownership changes without a new snapshot.
		if ws := e.opts.Workspace(); ws.Version != version || e.opts.Leases != nil {
			version = ws.Version
			e.reconcile(ctx, ws)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-gauges.C:
			e.updateGauges(ctx)
		case <-time.After(e.opts.ConfigPoll):
		}
	}
}

// fingerprint is what, when it changes, restarts a destination's queue.
// Filters and transformations are read per event and need no restart.
func fingerprint(d *config.Destination) string {
	b, _ := json.Marshal(struct {
		Type     string
		Name     string
		Sources  []string
		Settings map[string]any
		Delivery any
		Insert   string
	}{d.Type, d.Name, d.Sources, d.Settings, d.Delivery, d.InsertFunction})
	return string(b)
}

func (e *Engine) reconcile(ctx context.Context, ws *config.Workspace) {
	e.mu.Lock()
	defer e.mu.Unlock()
	type wanted struct {
		d  *config.Destination
		sh shard
	}
	want := make(map[string]wanted)
	present := make(map[string]bool, len(ws.Destinations))
	for i := range ws.Destinations {
		d := &ws.Destinations[i]
		present[d.ID] = true
		if d.Enabled {
			for _, sh := range shardsOf(d) {
				want[sh.key(d.ID)] = wanted{d, sh}
			}
		}
	}
	if l := e.opts.Leases; l != nil {
		names := make([]string, 0, len(want))
		for key := range want {
			names = append(names, leaseName(key))
		}
		l.Want("deliver", names)
		for key := range want {
			if !l.Owns(leaseName(key)) {
				delete(want, key)
			}
		}
	}
	var stopping []*running
	for key, r := range e.queues {
		if w, ok := want[key]; !ok || fingerprint(w.d) != r.fingerprint {
			r.cancel()
			stopping = append(stopping, r)
			delete(e.queues, key)
			e.opts.Logger.Info("delivery queue stopped", "destination", r.q.dest.ID, "queue", key)
		}
	}
	// A stopping queue finishes its requests in hand; the API and the
	// other queues do not wait for it, but its successor does (one queue
	// per destination at a time).
	e.mu.Unlock()
	gone := map[string]bool{}
	for _, r := range stopping {
		<-r.done
		e.m.leave(r.q.dest.ID, r.q.sh.k)
		if !present[r.q.dest.ID] {
			gone[r.q.dest.ID] = true
		}
	}
	// A deleted destination's state was reset when it was deleted; what
	// its queues stored since they stopped goes now.
	for id := range gone {
		if err := e.jobs.db.ForgetDeleted(ctx, id); err != nil {
			e.opts.Logger.Warn("removing the delivery state of a deleted destination", "destination", id, "err", err)
		}
	}
	e.mu.Lock()
	// A queue stopped for another node is handed over only now, with its
	// requests finished and its position stored.
	if l := e.opts.Leases; l != nil {
		for _, name := range l.Leaving() {
			key, ok := strings.CutPrefix(name, "deliver/")
			if _, running := e.queues[key]; ok && !running {
				if err := l.Release(ctx, name); err != nil {
					e.opts.Logger.Warn("handing over a destination's queue", "queue", key, "err", err)
				}
			}
		}
	}
	var gate *layoutGate
	if e.opts.Leases != nil {
		for key := range want {
			if _, ok := e.queues[key]; !ok {
				// Read outside the lock: the API does not wait on the
				// store or the KV.
				e.mu.Unlock()
				gate = e.newLayoutGate(ctx)
				e.mu.Lock()
				break
			}
		}
	}
	for key, w := range want {
		if _, ok := e.queues[key]; ok {
			continue
		}
		if gate != nil && !gate.free(w.d.ID, w.sh.n) {
			continue // the next round tries again
		}
		q := e.newQueue(ctx, w.d, w.sh)
		qctx, cancel := context.WithCancel(ctx)
		r := &running{q: q, fingerprint: fingerprint(w.d), cancel: cancel, done: make(chan struct{})}
		e.queues[key] = r
		go func() {
			defer close(r.done)
			for {
				err := q.run(qctx)
				if qctx.Err() != nil {
					return
				}
				q.log.Error("delivery queue failed; restarting", "err", err)
				if sleep(qctx, RealClock{}, time.Second) != nil {
					return
				}
			}
		}()
		e.opts.Logger.Info("delivery queue started", "destination", w.d.ID, "queue", key, "type", w.d.Type, "batch", q.batch, "concurrency", q.conc)
	}
	// A destination none of whose queues runs here any more (not one
	// restarting) leaves this node's metrics.
	for _, r := range stopping {
		if !e.runsHere(r.q.dest.ID) {
			e.m.forget(r.q.dest.ID)
		}
	}
}

// runsHere reports whether a queue of destination id runs on this node.
// e.mu is held.
func (e *Engine) runsHere(id string) bool {
	for _, r := range e.queues {
		if r.q.dest.ID == id {
			return true
		}
	}
	return false
}

// layoutGate keeps a destination's shard counts from running at the
// same time: a queue of n shards starts only when the shared store's
// workspace says n (a node with a stale snapshot does not start an old
// count) and no node holds a lease of another count (the old count's
// queues have stopped and stored their positions). With both, a record
// is sent by one queue even while delivery.shards changes.
type layoutGate struct {
	ws     *config.Workspace
	owners map[string]string
	err    error
}

func (e *Engine) newLayoutGate(ctx context.Context) *layoutGate {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	g := &layoutGate{}
	if e.opts.Refresh != nil {
		if g.err = e.opts.Refresh(ctx); g.err != nil {
			e.opts.Logger.Warn("reloading the workspace before starting delivery queues", "err", g.err)
			return g
		}
	}
	g.ws = e.opts.Workspace()
	if g.owners, g.err = e.opts.Leases.Owners(ctx); g.err != nil {
		e.opts.Logger.Warn("reading the cluster's leases before starting delivery queues", "err", g.err)
	}
	return g
}

func (g *layoutGate) free(dest string, n int) bool {
	if g.err != nil {
		return false
	}
	current := 0
	for i := range g.ws.Destinations {
		if d := &g.ws.Destinations[i]; d.ID == dest && d.Enabled {
			current = shardCount(d)
		}
	}
	if current != n {
		return false
	}
	for name := range g.owners {
		key, ok := strings.CutPrefix(name, "deliver/")
		if !ok {
			continue
		}
		if id, sh, err := parseKey(key); err == nil && id == dest && sh.n != n {
			return false
		}
	}
	return true
}

func (e *Engine) newQueue(ctx context.Context, d *config.Destination, sh shard) *queue {
	dest := *d
	logger := e.opts.Logger.With("destination", dest.ID)
	if sh.n > 1 {
		logger = logger.With("shard", sh.key(""))
	}
	q := &queue{e: e, dest: dest, sh: sh, name: sh.key(dest.ID), log: logger, m: e.m.forDestination(dest.ID, sh.k),
		conc:     sh.part(cmp.Or(dest.Delivery.Concurrency, e.opts.Concurrency)),
		maxAge:   cmp.Or(time.Duration(dest.Delivery.MaxRetryAge), e.opts.MaxRetryAge),
		inflight: make(map[string]*item),
		track:    newTracker(0, nil),
	}
	q.brk = newBreaker(e.clock, e.opts.BreakerThreshold, e.opts.BreakerMinOpen, e.opts.BreakerMaxOpen, q.m.breakerState)
	q.lim = newLimiter(e.clock, dest.Delivery.RateLimit/float64(sh.n))
	if share := dest.Delivery.RateLimit / float64(sh.n); sh.n > 1 && share > 0 {
		// A shard's first request waits for its share like the next
		// ones: n shards must not each start with a whole token.
		q.lim.tokens = min(q.lim.tokens, share)
	}
	typ, ok := e.opts.Registry.Lookup(dest.Type)
	if !ok {
		typ = &Type{Name: dest.Type, MaxBatch: 1}
		q.newErr = fmt.Errorf("unknown destination type %q (known: %v)", dest.Type, e.opts.Registry.Names())
	} else {
		q.d, q.newErr = typ.New(ctx, Config{ID: dest.ID, Settings: dest.Settings, HTTP: e.opts.HTTP, Logger: logger, DB: e.opts.DB, Concurrency: q.conc})
		if q.newErr != nil {
			q.d = nil
			q.newErr = fmt.Errorf("destination %q: invalid settings: %w", dest.ID, q.newErr)
		} else if dest.InsertFunction != "" && e.opts.Functions != nil {
			q.d = &insertDestination{next: q.d, id: dest.ID, run: e.opts.Functions, workspace: e.opts.Workspace}
		}
	}
	if q.newErr != nil {
		logger.Error("destination cannot be built; its events are discarded as invalid_settings", "err", q.newErr)
	}
	q.typ, q.route, q.batch = typ, newRouting(&q.dest, typ), typ.batchSize(dest.Settings)
	q.work = make(chan []*item, q.conc)
	q.window = 256 + 4*q.conc
	q.writes = make(chan written, 4*q.batch*q.conc)
	return q
}

func (e *Engine) stopAll() {
	e.mu.Lock()
	var stopping []*running
	for id, r := range e.queues {
		r.cancel()
		stopping = append(stopping, r)
		delete(e.queues, id)
	}
	e.mu.Unlock()
	for _, r := range stopping {
		<-r.done
	}
}

func (e *Engine) updateGauges(ctx context.Context) {
	e.mu.Lock()
	ids := make([]string, 0, len(e.queues))
	for _, r := range e.queues {
		if !slices.Contains(ids, r.q.dest.ID) {
			ids = append(ids, r.q.dest.ID)
		}
	}
	e.mu.Unlock()
	for _, id := range ids {
		if n, err := e.jobs.countJobs(ctx, id); err == nil {
			e.m.jobs.WithLabelValues(id).Set(float64(n))
		}
		if n, err := e.jobs.countDead(ctx, deadFilter{Destination: id}); err == nil {
			e.m.dead.WithLabelValues(id).Set(float64(n))
		}
	}
}

// inFlight returns the jobs being tried now for a message id.
func (e *Engine) inFlight(dest, messageID string) []JobState {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []JobState
	for _, r := range e.queues {
		id := r.q.dest.ID
		if dest != "" && id != dest {
			continue
		}
		r.q.mu.Lock()
		for _, it := range r.q.inflight {
			if it.ev.MessageID == messageID {
				out = append(out, jobState(id, StateExecuting, it.job))
			}
		}
		r.q.mu.Unlock()
	}
	return out
}

// enabledDestinations returns the ids of the workspace's enabled
// destinations.
func (e *Engine) enabledDestinations() []string {
	ws := e.opts.Workspace()
	out := []string{}
	for _, d := range ws.Destinations {
		if d.Enabled {
			out = append(out, d.ID)
		}
	}
	return out
}
