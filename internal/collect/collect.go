// Package collect is the Tracking API: the HTTP endpoints Segment's SDKs
// send to (/v1/track, /v1/batch, /v1/t, …), the settings endpoint
// analytics-next loads, and the source debugger. It authenticates the write
// key, bounds and parses the body, normalizes the events (package event),
// and answers 200 only after the log has them durably.
//
// It does not deduplicate, validate against tracking plans or route: those
// are the processing stage's, after the log.
package collect

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/prometheus/client_golang/prometheus"
)

// Appender is the durable log as the Tracking API needs it.
type Appender interface {
	// Append writes count framed records and returns once they are durable.
	// It may be called concurrently. Any error means the records must not
	// be acknowledged to the client. It does not return before it is done
	// with data.
	Append(ctx context.Context, data []byte, count int) error
}

// Suppressions says which users a regulation suppresses: their events are
// dropped before they are stored.
type Suppressions interface {
	// Empty reports whether nobody is suppressed (a fast path).
	Empty() bool
	// Suppressed reports whether the user is. Called concurrently.
	Suppressed(userID []byte) bool
}

// Gate says whether the log may take writes now (for example, whether the
// disk has room). A non-nil error makes the API answer 503.
type Gate interface {
	Writable() error
}

// Options configure the Tracking API.
type Options struct {
	// Limits bound requests. Default: event.DefaultLimits().
	Limits event.Limits
	// RetryAfter is sent with 503 answers. Default: 5s.
	RetryAfter time.Duration
	// Logger for request errors that are the server's fault.
	Logger *slog.Logger
	// Registerer receives the API's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Suppressions, when set, drops suppressed users' events.
	Suppressions Suppressions
	// Metrics, when set, counts every event received, rejected (with its
	// reason) and suppressed, by type and name, for the delivery metrics.
	Metrics *observe.Recorder
	// Functions, when set, runs source functions at
	// /v1/functions/{source id}; nil: that endpoint answers 404.
	Functions SourceFunctions
}

// API serves the Tracking API. Its handlers may be called concurrently.
type API struct {
	opts      Options
	workspace func() *config.Workspace
	log       Appender
	gate      Gate
	m         *metrics

	payloads sync.Pool // *event.Payload
	bufs     sync.Pool // *[]byte, request bodies and record buffers
}

// New returns the Tracking API over the workspace snapshot function, the
// log, and a gate (nil: always writable).
func New(opts Options, workspace func() *config.Workspace, log Appender, gate Gate) *API {
	if opts.Limits == (event.Limits{}) {
		opts.Limits = event.DefaultLimits()
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &API{opts: opts, workspace: workspace, log: log, gate: gate, m: newMetrics(opts.Registerer)}
}

// Register adds the Tracking API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /v1/{kind}", a.cors(http.HandlerFunc(a.serveEvents)))
	mux.Handle("POST /v1/functions/{id}", a.cors(http.HandlerFunc(a.serveFunction)))
	mux.Handle("POST /v1/m", a.cors(http.HandlerFunc(a.serveMetrics)))
	mux.Handle("OPTIONS /v1/", a.cors(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
	mux.Handle("GET /v1/projects/{writeKey}/settings", a.cors(http.HandlerFunc(a.serveSettings)))
}

// cors lets browsers call the API from any page, as Segment's does:
// analytics-next posts text/plain (no preflight), but a custom header or
// Basic auth makes the browser ask first.
func (a *API) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if origin := r.Header.Get("Origin"); origin != "" {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Add("Vary", "Origin")
		} else {
			h.Set("Access-Control-Allow-Origin", "*")
		}
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
				h.Add("Vary", "Access-Control-Request-Headers")
			} else {
				h.Set("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, Authorization, X-Retry-Count")
			}
			h.Set("Access-Control-Max-Age", "86400")
		}
		next.ServeHTTP(w, r)
	})
}

// serveMetrics accepts analytics-next's telemetry (/v1/m) and discards it.
func (a *API) serveMetrics(w http.ResponseWriter, r *http.Request) {
	buf := a.getBuf()
	defer a.putBuf(buf)
	_, _ = readBody(r, *buf, a.opts.Limits.MaxBatchBytes) // drained and ignored
	writeSuccess(w, nil)
}

func (a *API) getBuf() *[]byte {
	if b, ok := a.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (a *API) putBuf(b *[]byte) {
	if cap(*b) <= 4<<20 {
		*b = (*b)[:0]
		a.bufs.Put(b)
	}
}
