// Package functiondest is the destination function destination (type
// "function"): the delivery engine hands its events to a JavaScript
// destination function (onTrack, onIdentify, …, onBatch), with the
// engine's retries, concurrency, rate limit and breaker like any other
// destination. Its settings name the function: {"function": "<id>"}, and
// optionally batch_size (1–400, default 20) for a function with onBatch.
// A function with onDelete gets the deletion requests of regulations
// (SUPPRESS_WITH_DELETE, DELETE_ONLY) as events of type delete.
package functiondest

import (
	"context"
	"fmt"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/settings"
	"github.com/confluxcdp/conflux/internal/function"
)

// Name is the destination type's name.
const Name = "function"

// Batch bounds (spec §9: 20 by default, at most 400).
const (
	DefaultBatchSize = 20
	MaxBatchSize     = 400
)

// Runner runs destination functions; [function.Runner] is one.
type Runner interface {
	Deliver(ctx context.Context, p *function.Program, events []function.EventIn) function.DeliverResult
}

// Runtime is what the type runs functions with. Its zero value makes a type
// that checks settings but cannot send (for `conflux check`).
type Runtime struct {
	Run Runner
	// Workspace returns the live workspace, whose deployed functions are
	// looked up on every Send: a new version takes effect at once.
	Workspace func() *config.Workspace
}

var knownSettings = []string{"function", "batch_size"}

// NewType returns the destination type over rt.
func NewType(rt Runtime) *deliver.Type {
	return &deliver.Type{
		Name:     Name,
		MaxBatch: MaxBatchSize,
		BatchSize: func(s map[string]any) int {
			r := settings.New(s, knownSettings...)
			id, n := r.String("function", ""), r.Int("batch_size", DefaultBatchSize)
			if rt.Workspace != nil {
				if p, ok := rt.Workspace().Function(id); ok && p.Handles("batch") {
					return n
				}
			}
			return 1
		},
		Deletes: func(s map[string]any) bool {
			if rt.Workspace == nil {
				return false
			}
			id, _ := s["function"].(string)
			p, ok := rt.Workspace().Function(id)
			return ok && p.Handles("delete")
		},
		New: func(_ context.Context, cfg deliver.Config) (deliver.Destination, error) {
			r := settings.New(cfg.Settings, knownSettings...)
			id := r.String("function", "")
			if id == "" {
				r.Problemf("function", "required: the id of a destination function")
			}
			r.CheckInt("batch_size", r.Int("batch_size", DefaultBatchSize), 1, MaxBatchSize)
			if err := r.Err(); err != nil {
				return nil, err
			}
			return &destination{id: id, rt: rt}, nil
		},
	}
}

type destination struct {
	id string
	rt Runtime
}

func (d *destination) Send(ctx context.Context, events []*deliver.Event) []deliver.Result {
	results := make([]deliver.Result, len(events))
	if d.rt.Run == nil || d.rt.Workspace == nil {
		for i := range results {
			results[i] = deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonInvalidSettings, Error: "destination functions cannot run here"}
		}
		return results
	}
	p, ok := d.rt.Workspace().Function(d.id)
	if !ok || p.Kind() != function.KindDestination {
		r := deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonInvalidSettings,
			Error: fmt.Sprintf("destination function %q does not exist, is not deployed, or does not compile", d.id)}
		for i := range results {
			results[i] = r
		}
		return results
	}
	in := make([]function.EventIn, len(events))
	for i, ev := range events {
		in[i] = function.EventIn{Type: ev.Type, JSON: ev.JSON}
	}
	out := d.rt.Run.Deliver(ctx, p, in)
	for i, o := range out.Outcomes {
		results[i] = deliver.FunctionResult(o, out.Logs)
	}
	return results
}

func (d *destination) Close() error { return nil }
