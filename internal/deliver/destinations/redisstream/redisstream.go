package redisstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/settings"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// MaxBatch is the most events one Send appends, in one pipeline.
const MaxBatch = 500

// The fields of every stream entry.
const (
	FieldMessageID = "message_id"
	FieldSourceID  = "source_id"
	FieldType      = "type"
	FieldEvent     = "event"
)

// Type is the "redis_stream" destination type.
var Type = &deliver.Type{
	Name:         "redis_stream",
	Integrations: []string{"Redis"},
	MaxBatch:     MaxBatch,
	New: func(ctx context.Context, cfg deliver.Config) (deliver.Destination, error) {
		return New(ctx, cfg)
	},
}

// Destination appends events to a Redis stream. It is safe for concurrent
// use.
type Destination struct {
	settings Settings
	key      settings.Template
	client   *redis.Client

	closeOnce sync.Once
	closeErr  error
}

// New checks cfg's settings and builds the client. It does not connect:
// the first Send does, so a server that is down does not fail New.
func New(ctx context.Context, cfg deliver.Config) (*Destination, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := ParseSettings(cfg.Settings)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(s.Stream)
	if err != nil {
		return nil, &settings.Error{Key: "stream", Err: err}
	}
	o, err := s.options()
	if err != nil {
		return nil, &settings.Error{Key: "url", Err: err}
	}
	// One attempt per Send: the engine owns retries, with backoff, and
	// counts them. A retry inside the client could also append twice.
	o.MaxRetries = -1
	o.DialerRetries = 1
	if o.DialTimeout == 0 {
		o.DialTimeout = s.Timeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = s.Timeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = s.Timeout
	}
	o.ContextTimeoutEnabled = true
	o.PoolTimeout = s.Timeout
	// No CLIENT SETINFO nor maintenance-notification handshake: a round
	// trip each on every new connection, for features a producer does
	// not use.
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &Destination{settings: s, key: key, client: redis.NewClient(o)}, nil
}

// Close closes the connection pool. It is safe to call more than once.
func (d *Destination) Close() error {
	d.closeOnce.Do(func() {
		if err := d.client.Close(); err != nil {
			d.closeErr = fmt.Errorf("closing the Redis client: %w", err)
		}
	})
	return d.closeErr
}

// Send appends each event to its stream in one pipeline and returns one
// Result per event, in order. It returns within the timeout setting, or
// sooner when ctx ends, with Retry results for what was not confirmed.
func (d *Destination) Send(ctx context.Context, events []*deliver.Event) []deliver.Result {
	results := make([]deliver.Result, len(events))
	if len(events) == 0 {
		return results
	}
	if err := ctx.Err(); err != nil {
		r := classify(err)
		for i := range results {
			results[i] = r
		}
		return results
	}
	ctx, cancel := context.WithTimeout(ctx, d.settings.Timeout)
	defer cancel()

	args := make([]*redis.XAddArgs, len(events))
	cmds := make([]*redis.StringCmd, len(events))
	pipe := d.client.Pipeline()
	for i, e := range events {
		args[i] = d.xaddArgs(e)
		cmds[i] = pipe.XAdd(ctx, args[i])
	}
	// Exec returns the first error; each command has its own reply.
	_, execErr := pipe.Exec(ctx)
	for i, c := range cmds {
		err := c.Err()
		if err == nil && c.Val() == "" {
			// No error and no entry id: go-redis (v9.23) returns a
			// connection's failed initialisation, such as a refused
			// AUTH, from Exec only, leaving the commands untouched.
			err = execErr
			if err == nil {
				err = errors.New("redis answered XADD without an entry id")
			}
		}
		if err != nil {
			results[i] = classify(fmt.Errorf("appending to stream %q: %w", args[i].Stream, err))
			results[i].Request = record(args[i])
			continue
		}
		results[i] = deliver.Result{Outcome: deliver.Delivered}
	}
	return results
}

// xaddArgs returns the XADD that appends e.
func (d *Destination) xaddArgs(e *deliver.Event) *redis.XAddArgs {
	a := &redis.XAddArgs{
		Stream: renderKey(d.key, e.SourceID, e.Type),
		Values: []any{FieldMessageID, e.MessageID, FieldSourceID, e.SourceID, FieldType, e.Type, FieldEvent, e.JSON},
	}
	if d.settings.MaxLen > 0 {
		a.MaxLen, a.Approx = d.settings.MaxLen, true
	}
	return a
}

// classify maps an error of one XADD to a Result.
func classify(err error) deliver.Result {
	if _, ok := errors.AsType[redis.Error](err); ok {
		// An error reply. Those that Redis documents as passing are
		// retried; any other will be the same next time.
		r := deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonDestinationError, Error: err.Error()}
		if transientReply(err) {
			r.Outcome = deliver.Retry
		}
		return r
	}
	switch {
	case errors.Is(err, redis.ErrPoolTimeout):
		return deliver.Result{Outcome: deliver.Retry, Reason: deliver.ReasonTimeout, Error: err.Error()}
	case errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolExhausted):
		return deliver.Result{Outcome: deliver.Retry, Reason: deliver.ReasonConnection, Error: err.Error()}
	case errors.Is(err, context.Canceled):
		return deliver.Result{Outcome: deliver.Retry, Reason: deliver.ReasonConnection,
			Error: "stopped before Redis answered: " + err.Error()}
	}
	// Refused, reset, timed out, DNS, TLS: deliver's rules for transports.
	return deliver.ClassifyError(err)
}

// transientReply reports whether an error reply may pass: the server is
// loading its data, busy with a script, failing over, out of memory for
// now, or has too many clients.
func transientReply(err error) bool {
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) || redis.IsNoReplicasError(err) || redis.HasErrorPrefix(err, "BUSY")
}

// record renders an XADD for the dead-letter store, bounded by
// [deliver.MaxRecorded].
func record(a *redis.XAddArgs) []byte {
	var b bytes.Buffer
	b.WriteString("XADD ")
	b.WriteString(strconv.Quote(a.Stream))
	if a.MaxLen > 0 {
		fmt.Fprintf(&b, " MAXLEN ~ %d", a.MaxLen)
	}
	b.WriteString(" *")
	vals := a.Values.([]any)
	for i := 0; i+1 < len(vals); i += 2 {
		fmt.Fprintf(&b, "\n%s %s", vals[i], vals[i+1])
		if b.Len() > deliver.MaxRecorded {
			break
		}
	}
	if b.Len() > deliver.MaxRecorded {
		b.Truncate(deliver.MaxRecorded)
	}
	return b.Bytes()
}
