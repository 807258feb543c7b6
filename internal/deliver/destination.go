package deliver

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/store"
)

// Event is one event on its way to one destination: its JSON as the
// destination must get it (after the destination's transformations and
// filters) and the keys the engine tracks it by.
type Event struct {
	// MessageID is the event's messageId; every request carries it so that
	// receivers can drop the repeats that at-least-once delivery allows.
	MessageID string
	// SourceID is the source the event came from.
	SourceID string
	// Type is the Segment event type: track, identify, page, screen,
	// group or alias.
	Type string
	// Name is a track's event name, or a page's or screen's name ("" for
	// the other types), for the delivery metrics.
	Name string
	// ReceivedAt is when Conflux accepted the event; an event older than
	// its destination's maximum retry age is expired instead of sent.
	ReceivedAt time.Time
	// JSON is the event, one compact JSON object.
	JSON []byte
	// Attempt is 1 on the first attempt, 2 on the first retry, and so on.
	Attempt int
}

// Outcome is what one attempt did to one event.
type Outcome uint8

// The outcomes of an attempt.
const (
	// Delivered: the destination accepted the event.
	Delivered Outcome = iota + 1
	// Retry: the attempt failed in a way that may pass later (timeout,
	// connection reset, 5xx, 429, 408); the event is retried with backoff
	// until its maximum age.
	Retry
	// Discard: the destination will never accept the event as it is
	// (another 4xx, invalid settings, unsupported event type); it goes to
	// the dead-letter store with the reason.
	Discard
	// Dropped: the destination's insert function (or a destination
	// function) dropped the event on purpose; it is finished, counted as
	// filtered, like an event a destination filter drops.
	Dropped
)

// String returns "delivered", "retry" or "discard".
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Discard:
		return "discard"
	case Dropped:
		return "dropped"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Reasons a [Result] may name beside an HTTP status ("http_<code>").
const (
	ReasonTimeout              = "timeout"
	ReasonConnection           = "connection"
	ReasonInvalidSettings      = "invalid_settings"
	ReasonUnsupportedEventType = "unsupported_event_type"
	ReasonInvalidEvent         = "invalid_event"
	ReasonExpired              = "expired"
	ReasonDestinationError     = "destination_error"
)

// MaxRecorded bounds the request and response bodies a [Result] keeps, and
// so what the dead-letter store holds per attempt.
const MaxRecorded = 8 << 10

// Result is the outcome of one attempt for one event.
type Result struct {
	Outcome Outcome
	// StatusCode is the HTTP status the destination answered; 0 when there
	// was none (a timeout, a broker, a refusal before sending).
	StatusCode int
	// Reason is a short machine word: "http_<status>" or one of the Reason
	// constants.
	Reason string
	// Error is the human explanation, e.g. the destination's error message.
	Error string
	// Request and Response are what was sent and answered, each at most
	// MaxRecorded bytes; a batch's results may share them.
	Request  []byte
	Response []byte
	// RetryAfter is how long the destination asked to be left alone
	// (Retry-After, or a rate-limit reset); 0 when it did not say.
	RetryAfter time.Duration
}

// Destination sends events to one configured destination. The engine
// calls Send from up to its concurrency limit of goroutines at once.
type Destination interface {
	// Send attempts to deliver events (at most the type's MaxBatch) and
	// returns one Result per event, in the same order. It returns when
	// ctx ends, with Retry results for what it could not finish.
	Send(ctx context.Context, events []*Event) []Result
	// Close releases connections; Send is not called after it.
	Close() error
}

// Config is what a destination type builds one destination from.
type Config struct {
	// ID is the destination's id.
	ID string
	// Settings are the destination's settings from the workspace.
	Settings map[string]any
	// HTTP is the client HTTP destinations send with: it carries the
	// engine's transport (connection pool, dial timeout). Destinations set
	// their own per-request timeout through the request's context.
	HTTP *http.Client
	// Logger is scoped to the destination.
	Logger *slog.Logger
	// DB is the state store, for destinations that keep a record of their
	// own (a warehouse's sync history); nil when checking settings.
	DB *store.DB
	// Concurrency is how many Sends the engine may have in flight at once:
	// a destination that gathers concurrent Sends into one load knows from
	// it when every sender is waiting. 0 when checking settings.
	Concurrency int
}

// WithDefaults returns c with a nil HTTP client or logger replaced by
// http.DefaultClient and a logger that discards: the engine always fills
// both, tests and callers of a type's New directly need not.
func (c Config) WithDefaults() Config {
	if c.HTTP == nil {
		c.HTTP = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Type is a kind of destination: webhook, amplitude, …. A destination
// package exports one, and the server registers them all in a [Registry].
type Type struct {
	// Name is the value of a destination's type field, e.g. "webhook".
	Name string
	// Integrations are the names an event's integrations object may use
	// for destinations of this type (case-sensitive, as in Segment), e.g.
	// "Webhooks". The destination's own name and id are matched too.
	Integrations []string
	// MaxBatch is the most events one Send may carry; 1 for APIs that
	// take one event per request. A destination may take fewer per call:
	// see BatchSize.
	MaxBatch int
	// BatchSize, if set, returns how many events the destination with
	// these settings wants per Send (at most MaxBatch); nil: MaxBatch.
	BatchSize func(settings map[string]any) int
	// Deletes, if set, reports whether a destination of this type with
	// these settings takes deletion requests (events of type delete, from
	// the regulations that delete users' data: see
	// [Engine.ForwardDeletion]); nil: it does not.
	Deletes func(settings map[string]any) bool
	// New builds a destination, checking its settings; an error here
	// discards the destination's events with reason invalid_settings.
	New func(ctx context.Context, cfg Config) (Destination, error)
}

// Registry maps type names to destination types. It is filled once at
// start-up and read-only after that.
type Registry struct {
	types map[string]*Type
}

// NewRegistry returns a registry holding types. It panics on a duplicate
// or incomplete type: that is a programming error.
func NewRegistry(types ...*Type) *Registry {
	r := &Registry{types: make(map[string]*Type, len(types))}
	for _, t := range types {
		if t.Name == "" || t.New == nil || t.MaxBatch < 1 {
			panic(fmt.Sprintf("deliver: destination type %q is incomplete", t.Name))
		}
		if _, dup := r.types[t.Name]; dup {
			panic(fmt.Sprintf("deliver: destination type %q registered twice", t.Name))
		}
		r.types[t.Name] = t
	}
	return r
}

// Lookup returns the type named name.
func (r *Registry) Lookup(name string) (*Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Names returns the registered type names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Check builds and closes a destination of type typ with settings, so that
// the Config API can refuse a destination that would discard every event.
func (r *Registry) Check(ctx context.Context, typ string, settings map[string]any) error {
	t, ok := r.types[typ]
	if !ok {
		return fmt.Errorf("%w %q (known: %v)", config.ErrUnknownType, typ, r.Names())
	}
	d, err := t.New(ctx, Config{ID: "check", Settings: settings, HTTP: http.DefaultClient, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	return d.Close()
}

// batchSize is how many events one Send carries for a destination of type
// t with settings.
func (t *Type) batchSize(settings map[string]any) int {
	n := t.MaxBatch
	if t.BatchSize != nil {
		n = min(max(t.BatchSize(settings), 1), t.MaxBatch)
	}
	return n
}

// answersTo reports whether an integrations-object key names this type.
func (t *Type) answersTo(key string) bool { return slices.Contains(t.Integrations, key) }
