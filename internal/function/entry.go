package function

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/dop251/goja"
)

// Request is the HTTP request a source function handles.
type Request struct {
	Method string
	// URL is the request's absolute URL.
	URL     string
	Headers http.Header
	Body    []byte
}

// SourceResult is what a source function's call did.
type SourceResult struct {
	Outcome
	// Emitted are the messages it emitted, in order; empty unless OK.
	Emitted []Emitted
	// Logs are its console output.
	Logs string
}

// OnRequest runs onRequest(request, settings) of source function p on req.
// request.json() parses the body (a SyntaxError when it is not JSON),
// request.text() returns it, request.headers is a Headers object and
// request.url a URL. The messages emitted are returned only if the call
// succeeds: a failed call emits nothing.
func (r *Runner) OnRequest(ctx context.Context, p *Program, req Request) SourceResult {
	c, out := r.invoke(ctx, p, "onRequest", func(v *vm) ([]goja.Value, error) {
		obj, err := v.request(req)
		if err != nil {
			return nil, err
		}
		settings, err := v.callSettings()
		if err != nil {
			return nil, err
		}
		return []goja.Value{obj, settings}, nil
	}, nil)
	res := SourceResult{Outcome: out, Logs: c.logs.String()}
	if out.Status == OK {
		res.Emitted = c.emitted
	}
	return res
}

// request builds the request object onRequest gets.
func (v *vm) request(req Request) (goja.Value, error) {
	g := v.rt.GlobalObject()
	pairs := make([]any, 0, len(req.Headers))
	for k, vs := range req.Headers {
		pairs = append(pairs, v.rt.NewArray(k, strings.Join(vs, ", ")))
	}
	headers, err := v.rt.New(g.Get("Headers"), v.rt.NewArray(pairs...))
	if err != nil {
		return nil, fmt.Errorf("building the request's headers: %w", err)
	}
	u, err := v.rt.New(g.Get("URL"), v.rt.ToValue(req.URL))
	if err != nil {
		return nil, fmt.Errorf("building the request's URL %q: %w", req.URL, err)
	}
	body := string(req.Body)
	o := v.rt.NewObject()
	must(o.Set("method", req.Method))
	must(o.Set("url", u))
	must(o.Set("headers", headers))
	must(o.Set("text", func() string { return body }))
	must(o.Set("json", func() goja.Value {
		val, err := v.parse(goja.Undefined(), v.rt.ToValue(body))
		if err != nil {
			panic(err)
		}
		return val
	}))
	return o, nil
}

// EventIn is one event handed to a destination or insert function.
type EventIn struct {
	// Type is the event's type: track, identify, page, screen, group,
	// alias or delete.
	Type string
	// JSON is the event.
	JSON []byte
}

// DeliverResult is what a destination function's call did to its events.
type DeliverResult struct {
	// Outcomes has one outcome per event, in order.
	Outcomes []Outcome
	Logs     string
}

// Deliver runs destination function p on events: all of them in one
// onBatch(events, settings) call when p defines onBatch, else each in its
// type's handler (onTrack(event, settings), …) one after another. An event
// whose type has no handler is EventNotSupported. onBatch may return one
// {status, errormessage} per event, positionally: a 2xx status is OK, 408,
// 429 and 5xx retry, other statuses discard; a missing entry is OK. When
// a call throws, its events all take the thrown error's outcome.
func (r *Runner) Deliver(ctx context.Context, p *Program, events []EventIn) DeliverResult {
	res := DeliverResult{Outcomes: make([]Outcome, len(events))}
	var logs strings.Builder
	if p.handlers["onBatch"] {
		c, out := r.invoke(ctx, p, "onBatch", func(v *vm) ([]goja.Value, error) {
			arr := make([]any, len(events))
			for i, e := range events {
				val, err := v.lazyValue(string(e.JSON))
				if err != nil {
					return nil, fmt.Errorf("event %d is not JSON: %w", i, err)
				}
				arr[i] = val
			}
			settings, err := v.callSettings()
			if err != nil {
				return nil, err
			}
			return []goja.Value{v.rt.NewArray(arr...), settings}, nil
		}, func(v *vm, c *call, val goja.Value) Outcome {
			batchOutcomes(v, val, res.Outcomes)
			return Outcome{Status: OK}
		})
		logs.WriteString(c.logs.String())
		if out.Status != OK {
			for i := range res.Outcomes {
				res.Outcomes[i] = out
			}
		}
		res.Logs = logs.String()
		return res
	}
	for i, e := range events {
		name, ok := eventHandlers[e.Type]
		if !ok || !p.handlers[name] {
			res.Outcomes[i] = Outcome{Status: Discard, Class: "EventNotSupported", Message: fmt.Sprintf("%s is not supported", e.Type)}
			continue
		}
		c, out := r.invoke(ctx, p, name, eventArgs(e), nil)
		logs.WriteString(c.logs.String())
		res.Outcomes[i] = out
	}
	res.Logs = logs.String()
	return res
}

func eventArgs(e EventIn) func(v *vm) ([]goja.Value, error) {
	return func(v *vm) ([]goja.Value, error) {
		val, err := v.lazyValue(string(e.JSON))
		if err != nil {
			return nil, fmt.Errorf("the event is not JSON: %w", err)
		}
		settings, err := v.callSettings()
		if err != nil {
			return nil, err
		}
		return []goja.Value{val, settings}, nil
	}
}

// batchOutcomes reads onBatch's return value into outs (already OK).
func batchOutcomes(v *vm, val goja.Value, outs []Outcome) {
	for i := range outs {
		outs[i] = Outcome{Status: OK}
	}
	obj, ok := val.(*goja.Object)
	if !ok || obj.ClassName() != "Array" {
		return
	}
	n := int(obj.Get("length").ToInteger())
	for i := 0; i < n && i < len(outs); i++ {
		item, ok := obj.Get(fmt.Sprint(i)).(*goja.Object)
		if !ok {
			continue
		}
		st := item.Get("status")
		if st == nil || goja.IsUndefined(st) {
			continue
		}
		code := int(st.ToInteger())
		msg := ""
		if m := item.Get("errormessage"); m != nil && !goja.IsUndefined(m) && !goja.IsNull(m) {
			msg = m.String()
		}
		switch {
		case code >= 200 && code < 300:
		case code == 408 || code == 429 || code >= 500:
			outs[i] = Outcome{Status: Retry, Class: fmt.Sprintf("Status%d", code), Message: msg}
		default:
			outs[i] = Outcome{Status: Discard, Class: fmt.Sprintf("Status%d", code), Message: msg}
		}
	}
}

// InsertResult is what an insert function's call did to one event.
type InsertResult struct {
	Outcome
	// JSON is the event the function returned, when OK.
	JSON []byte
	Logs string
}

// Insert runs insert function p's handler for ev's type. The function
// keeps the event by returning it (changed or not); it drops it by
// throwing DropEvent, by returning nothing, or by having no handler for
// the type. A returned value that is not an object is InvalidReturn.
func (r *Runner) Insert(ctx context.Context, p *Program, ev EventIn) InsertResult {
	name, ok := eventHandlers[ev.Type]
	if !ok || !p.handlers[name] {
		return InsertResult{Outcome: Outcome{Status: Drop, Class: ClassNoHandler, Message: fmt.Sprintf("the function has no handler for %s events", ev.Type)}}
	}
	var out []byte
	c, o := r.invoke(ctx, p, name, eventArgs(ev), func(v *vm, c *call, val goja.Value) Outcome {
		if val == nil || goja.IsUndefined(val) || goja.IsNull(val) {
			return Outcome{Status: Drop, Class: "DropEvent", Message: "the handler returned nothing"}
		}
		obj, ok := val.(*goja.Object)
		if !ok || obj.ClassName() == "Array" {
			return Outcome{Status: Discard, Class: ClassBadReturn, Message: fmt.Sprintf("the handler must return the event, an object; it returned %s", describeValue(val))}
		}
		j, err := v.strfy(goja.Undefined(), obj)
		if err != nil {
			return v.outcomeOf(err)
		}
		out = []byte(j.String())
		return Outcome{Status: OK}
	})
	return InsertResult{Outcome: o, JSON: out, Logs: c.logs.String()}
}
