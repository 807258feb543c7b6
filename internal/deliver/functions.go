package deliver

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/function"
)

// Inserter runs insert functions; [function.Runner] is one.
type Inserter interface {
	Insert(ctx context.Context, p *function.Program, ev function.EventIn) function.InsertResult
}

// Reasons of the results of functions (besides the shared ones).
const (
	ReasonFunctionRetry = "function_retry"
	ReasonFunctionError = "function_error"
	ReasonMemoryLimit   = "memory_limit"
)

// FunctionResult is the delivery result of a function's outcome for one
// event (spec §9's outcome table): a RetryError, a timeout or a fetch that
// could not connect retry; a DropEvent is Dropped; the other errors
// discard, with the reason the class names (EventNotSupported:
// unsupported_event_type; InvalidEventPayload and ValidationError:
// invalid_event; InvalidSettings: invalid_settings; an onBatch status
// NNN: http_NNN; anything else: function_error). logs, the call's console
// output, is kept as the attempt's response.
func FunctionResult(o function.Outcome, logs string) Result {
	if o.Status == function.OK {
		return Result{Outcome: Delivered}
	}
	r := Result{Error: o.Err().Error(), Response: bound([]byte(logs))}
	switch o.Status {
	case function.Retry:
		r.Outcome = Retry
	case function.Drop:
		r.Outcome = Dropped
	default:
		r.Outcome = Discard
	}
	switch o.Class {
	case "EventNotSupported", function.ClassNoHandler:
		r.Reason = ReasonUnsupportedEventType
	case "InvalidEventPayload", "ValidationError", function.ClassBadReturn:
		r.Reason = ReasonInvalidEvent
	case "InvalidSettings":
		r.Reason = ReasonInvalidSettings
	case function.ClassTimeout:
		r.Reason = ReasonTimeout
	case "FetchError":
		r.Reason = ReasonConnection
	case function.ClassMemoryLimit:
		r.Reason = ReasonMemoryLimit
	case "RetryError":
		r.Reason = ReasonFunctionRetry
	case "DropEvent":
		r.Reason = string(skipInsertFunction)
	default:
		if code, ok := strings.CutPrefix(o.Class, "Status"); ok {
			if n, err := strconv.Atoi(code); err == nil {
				r.StatusCode, r.Reason = n, "http_"+code
				break
			}
		}
		r.Reason = ReasonFunctionError
	}
	return r
}

// insertDestination runs a destination's insert function on each event
// and sends on what it returns. The function deployed now is looked up on
// every Send, so that a new version takes effect without a restart.
type insertDestination struct {
	next      Destination
	id        string
	run       Inserter
	workspace func() *config.Workspace
}

func (d *insertDestination) Send(ctx context.Context, events []*Event) []Result {
	p := d.workspace().DestinationInsertFunction(d.id)
	if p == nil {
		return d.next.Send(ctx, events)
	}
	results := make([]Result, len(events))
	pass := make([]*Event, 0, len(events))
	at := make([]int, 0, len(events))
	for i, ev := range events {
		res := d.run.Insert(ctx, p, function.EventIn{Type: ev.Type, JSON: ev.JSON})
		if res.Status == function.OK {
			if _, err := event.PeekKeys(res.JSON); err != nil {
				res.Outcome = function.Outcome{Status: function.Discard, Class: function.ClassBadReturn,
					Message: "the returned event is not readable: " + err.Error()}
			}
		}
		if res.Status != function.OK {
			results[i] = FunctionResult(res.Outcome, res.Logs)
			results[i].Error = fmt.Sprintf("insert function %s (version %d): %s", p.ID(), p.Version(), results[i].Error)
			continue
		}
		changed := *ev // the event itself stays as it was, for a retry
		changed.JSON = res.JSON
		pass = append(pass, &changed)
		at = append(at, i)
	}
	if len(pass) == 0 {
		return results
	}
	sent := d.next.Send(ctx, pass)
	if len(sent) != len(pass) {
		r := Result{Outcome: Retry, Reason: ReasonDestinationError, Error: fmt.Sprintf("destination returned %d results for %d events", len(sent), len(pass))}
		for _, i := range at {
			results[i] = r
		}
		return results
	}
	for j, i := range at {
		results[i] = sent[j]
	}
	return results
}

func (d *insertDestination) Close() error { return d.next.Close() }
