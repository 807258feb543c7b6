package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
)

// Options configure a [Runner]; zero fields take the defaults.
type Options struct {
	// HTTP is the client fetch sends with; nil: a client of its own.
	HTTP *http.Client
	// Logger receives the functions' console output at debug level, and
	// the runner's own problems.
	Logger *slog.Logger
	// MemoryLimit is how much the process's live heap may grow while one
	// call runs before the call is stopped (default 128 MiB; negative: no
	// limit). See [Runner] for how it is measured.
	MemoryLimit int64
	// MaxResponseBytes bounds the body of a response fetch reads (default
	// 10 MiB).
	MaxResponseBytes int64
	// PoolSize is how many idle interpreters are kept per program (default
	// 16).
	PoolSize int
	// Metrics, when set, counts calls and their outcomes.
	Metrics *Metrics
}

// Runner executes [Program]s. Each call runs on an interpreter of its own
// (taken from a pool per program), under the program's time limit: a
// monitor goroutine looks at the running calls every 10 ms and interrupts
// those whose time is up (or whose caller's context ended), even in an
// infinite loop; fetch's requests and timers end with the limit exactly.
// The monitor keeps the memory limit too, from the live heap the garbage
// collector last measured: a call during which the live heap grew by more
// than the limit is interrupted (garbage does not count, so a busy process
// whose heap swings between collections does not stop calls; a call that
// keeps what it allocates is stopped after a collection or two). Natives
// that grow a value in one step (String.prototype.repeat, fill, typed
// arrays, JSON.stringify, …) refuse results over 64 Mi elements. The code
// has no file system, process or network access other than fetch to its
// allowed hosts.
//
// A Runner is safe for concurrent use.
type Runner struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	pools    map[string]*pool // by program hash
	inflight map[*vm]*call
	logs     map[string]*LogRing // by function id
	closed   bool
	ownHTTP  bool // the client is the runner's: Close closes its connections

	// heap is the live heap as the monitor last read it: a call's start
	// takes it rather than reading the runtime's metrics itself.
	heap atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

type pool struct {
	idle     chan *vm
	lastUsed time.Time
}

// NewRunner starts a runner; Close stops it.
func NewRunner(opts Options) *Runner {
	ownHTTP := opts.HTTP == nil
	if ownHTTP {
		opts.HTTP = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	opts.HTTP = allowListClient(opts.HTTP)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MemoryLimit == 0 {
		opts.MemoryLimit = 128 << 20
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = 10 << 20
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 16
	}
	r := &Runner{opts: opts, log: opts.Logger, pools: map[string]*pool{}, inflight: map[*vm]*call{},
		logs: map[string]*LogRing{}, ownHTTP: ownHTTP, stop: make(chan struct{}), done: make(chan struct{})}
	r.heap.Store(heapBytes())
	go r.monitor()
	return r
}

// Close interrupts the calls running (they end as timed out, to be
// retried), stops the runner's monitor, drops its interpreters and, unless
// Options.HTTP was given, closes fetch's idle connections; calls made
// after Close retry at once. Close may be called more than once.
func (r *Runner) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	for v, c := range r.inflight {
		if c.interrupted == nil {
			c.interrupted = errTimeout
			v.rt.Interrupt(errTimeout)
		}
	}
	r.pools = map[string]*pool{}
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	if r.ownHTTP {
		r.opts.HTTP.CloseIdleConnections()
	}
}

// get returns an interpreter loaded with p.
func (r *Runner) get(p *Program) (*vm, error) {
	r.mu.Lock()
	pl, ok := r.pools[p.hash]
	if !ok {
		pl = &pool{idle: make(chan *vm, r.opts.PoolSize)}
		r.pools[p.hash] = pl
	}
	pl.lastUsed = time.Now()
	r.mu.Unlock()
	select {
	case v := <-pl.idle:
		return v, nil
	default:
	}
	v := newVM(r)
	if err := v.load(p); err != nil {
		return nil, err
	}
	return v, nil
}

func (r *Runner) put(v *vm) {
	if v.broken {
		return
	}
	r.mu.Lock()
	pl, ok := r.pools[v.prog.hash]
	r.mu.Unlock()
	if !ok {
		return
	}
	select {
	case pl.idle <- v:
	default:
	}
}

// hostsKey is the context key of the allowed hosts of a fetch's request.
type hostsKey struct{}

// allowListClient is a copy of c that follows a redirect only to a host
// the function may fetch: without it, an allowed host answering 302 would
// lead fetch anywhere.
func allowListClient(c *http.Client) *http.Client {
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if hosts, ok := req.Context().Value(hostsKey{}).([]string); ok && !hostAllowed(hosts, req.URL.Host) {
			return &redirectRefused{host: req.URL.Host}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cc
}

// redirectRefused is a redirect to a host not allowed.
type redirectRefused struct{ host string }

func (e *redirectRefused) Error() string {
	return fmt.Sprintf("redirected to host %q, which is not in the function's allowed hosts", e.host)
}

// heapBytes is the live heap: the bytes of the objects the last garbage
// collection marked (those allocated while it marked count too).
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// monitor keeps the time and memory limits of running calls, and drops
// the pools of programs unused for ten minutes (older versions, deleted
// functions).
func (r *Runner) monitor() {
	defer close(r.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case now := <-tick.C:
			h := heapBytes()
			r.heap.Store(h)
			r.mu.Lock()
			for v, c := range r.inflight {
				// Growth counts from the lowest live heap seen during the
				// call: at its start, the last collection's figure may still
				// count garbage of earlier work, collected since.
				c.heap0 = min(c.heap0, h)
				switch {
				case c.interrupted != nil:
					// Again each tick: code that catches nothing can still
					// run after the first (a getter read when the call failed).
					v.rt.Interrupt(c.interrupted)
				case c.expired(now):
					c.interrupted = errTimeout
					v.rt.Interrupt(errTimeout)
				case r.opts.MemoryLimit > 0 && h > c.heap0 && h-c.heap0 > uint64(r.opts.MemoryLimit):
					c.interrupted = errMemory
					v.rt.Interrupt(errMemory)
				}
			}
			if now.Sub(lastSweep) > time.Minute {
				lastSweep = now
				for h, pl := range r.pools {
					if now.Sub(pl.lastUsed) > 10*time.Minute {
						delete(r.pools, h)
					}
				}
			}
			r.mu.Unlock()
		}
	}
}

// invoke calls the handler named name of p with args (built on the
// interpreter) and waits for the promise it returns, running timers,
// within the program's time limit. done, when not nil, reads the result
// on the interpreter before it goes back to the pool.
func (r *Runner) invoke(ctx context.Context, p *Program, name string, args func(v *vm) ([]goja.Value, error),
	done func(v *vm, c *call, res goja.Value) Outcome) (*call, Outcome) {
	start := time.Now()
	c := &call{deadline: start.Add(p.spec.Timeout)}
	out := r.invokeOn(ctx, p, c, name, args, done)
	if r.opts.Metrics != nil {
		r.opts.Metrics.observe(p, out, time.Since(start))
	}
	if c.logs.Len() > 0 {
		r.ring(p.spec.ID).add(LogEntry{Time: start.UTC(), Version: p.spec.Version, Status: out.Status.String(), Text: c.logs.String()})
		r.log.Debug("function logs", "function", p.spec.ID, "version", p.spec.Version, "logs", c.logs.String())
	}
	return c, out
}

func (r *Runner) invokeOn(ctx context.Context, p *Program, c *call, name string, args func(v *vm) ([]goja.Value, error),
	done func(v *vm, c *call, res goja.Value) Outcome) Outcome {
	if ctx.Err() != nil { // the caller is gone: not worth starting
		return Outcome{Status: Retry, Class: ClassTimeout, Message: "the caller gave up before the call started: " + ctx.Err().Error()}
	}
	v, err := r.get(p)
	if err != nil {
		return Outcome{Status: Discard, Class: "Error", Message: "loading the function: " + err.Error()}
	}
	fn := v.handler(name)
	if fn == nil {
		r.put(v)
		return Outcome{Status: Discard, Class: ClassNoHandler, Message: "the function does not define " + name}
	}
	c.parent = ctx
	v.call = c
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Outcome{Status: Retry, Class: "Error", Message: "the function runner is closed"}
	}
	c.heap0 = r.heap.Load()
	r.inflight[v] = c
	r.mu.Unlock()

	out := func() Outcome {
		var a []goja.Value
		if perr := v.protect(func() { a, err = args(v) }); perr != nil {
			err = perr
		}
		if err != nil {
			return Outcome{Status: Discard, Class: "InvalidEventPayload", Message: err.Error()}
		}
		res, err := fn(goja.Undefined(), a...)
		if err == nil {
			res, err = v.await(res)
		}
		if c.stop != nil {
			return *c.stop
		}
		if err != nil {
			return v.outcomeOf(err)
		}
		if done != nil {
			// done reads the result from Go: getters and proxies may run.
			var o Outcome
			if err := v.protect(func() { o = done(v, c, res) }); err != nil {
				return v.outcomeOf(err)
			}
			return o
		}
		return Outcome{Status: OK}
	}()

	r.mu.Lock()
	delete(r.inflight, v)
	intr := c.interrupted
	r.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
	if intr != nil {
		// The interrupt may have come as the call ended, or while Go code
		// (reading the result) ran: the call is over its limit all the same.
		v.broken = true // its state may be half-changed
		if out.Status == OK || (out.Class != ClassTimeout && out.Class != ClassMemoryLimit) {
			out = v.outcomeOf(&goja.InterruptedError{})
			if intr == errMemory {
				out = Outcome{Status: Discard, Class: ClassMemoryLimit, Message: errMemory.Error()}
			}
		}
	}
	if out.Class == ClassTimeout || out.Class == ClassMemoryLimit {
		v.broken = true
	}
	v.rt.ClearInterrupt()
	v.call = nil
	r.put(v)
	return out
}

var promiseType = reflect.TypeOf((*goja.Promise)(nil))

// rejection is a promise rejected with reason.
type rejection struct{ reason goja.Value }

func (e *rejection) Error() string { return "the promise was rejected: " + e.reason.String() }

// await settles val when it is a promise: pending, it runs the call's
// timers in order until the promise settles or none is left.
func (v *vm) await(val goja.Value) (goja.Value, error) {
	for {
		// Not Export: of an object it copies every property out, running
		// getters, that may throw (a Go panic here) or be slow.
		obj, ok := val.(*goja.Object)
		if !ok || obj.ExportType() != promiseType {
			return val, nil
		}
		p := obj.Export().(*goja.Promise)
		switch p.State() {
		case goja.PromiseStateFulfilled:
			return p.Result(), nil
		case goja.PromiseStateRejected:
			return nil, &rejection{reason: p.Result()}
		}
		t := v.call.nextTimer()
		if t == nil {
			return nil, &rejection{reason: v.rt.ToValue("the handler's promise never settles: it waits for something that does not happen")}
		}
		if d := time.Until(t.at); d > 0 {
			select {
			case <-time.After(d):
			case <-v.call.context().Done():
				return nil, &goja.InterruptedError{}
			}
		}
		if t.every > 0 { // an interval: due again, unless its callback clears it
			t.at = time.Now().Add(t.every)
			v.call.timers = append(v.call.timers, t)
		}
		if _, err := t.fn(goja.Undefined()); err != nil {
			return nil, err
		}
	}
}
