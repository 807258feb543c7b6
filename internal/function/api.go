package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/confluxcdp/conflux/internal/httpapi"
)

// ErrNotFound is what a [Specs] lookup wraps when there is no such
// function or version.
var ErrNotFound = errors.New("no such function")

// Specs finds stored function versions for the tester.
type Specs interface {
	// FunctionSpec returns version (0: the latest saved) of function id,
	// wrapping ErrNotFound when there is none.
	FunctionSpec(ctx context.Context, id string, version int) (Spec, error)
}

// API is the function tester and the functions' logs, under the Config
// API's auth: a function version (saved, deployed or not, or code sent
// inline) runs on a sample event or request, as Segment's tester does —
// fetch reaches the function's allowed hosts for real, Segment.track(…)
// emits nothing into the log, and the answer shows the outcome, the
// console output and what the function returned or emitted.
type API struct {
	run   *Runner
	specs Specs
}

// NewAPI returns the tester over run and specs.
func NewAPI(run *Runner, specs Specs) *API { return &API{run: run, specs: specs} }

// Register adds the routes, each wrapped by auth.
func (a *API) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("POST /api/v1/functions/{id}/test", auth(http.HandlerFunc(a.testStored)))
	mux.Handle("POST /api/v1/functions/test", auth(http.HandlerFunc(a.testInline)))
	mux.Handle("GET /api/v1/functions/{id}/logs", auth(http.HandlerFunc(a.logs)))
}

// maxTestBody bounds a tester request.
const maxTestBody = 1 << 20

// testInput is what a tester request runs the function on: one of event
// (a destination or insert function's event), events (a destination
// function's batch) or request (a source function's HTTP request).
type testInput struct {
	Event    json.RawMessage   `json:"event,omitempty"`
	Events   []json.RawMessage `json:"events,omitempty"`
	Request  *testRequest      `json:"request,omitempty"`
	Settings map[string]any    `json:"settings,omitempty"`
}

type testRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	// Body is the request body: a JSON string is sent as its text, any
	// other JSON value as JSON.
	Body json.RawMessage `json:"body"`
}

// testResult is the tester's answer.
type testResult struct {
	Function string          `json:"function,omitempty"`
	Version  int             `json:"version,omitempty"`
	Status   string          `json:"status"`
	Error    *testError      `json:"error"`
	Logs     string          `json:"logs"`
	Emitted  []testEmitted   `json:"emitted,omitempty"`
	Event    json.RawMessage `json:"event,omitempty"`
	Results  []testOutcome   `json:"results,omitempty"`
	Duration float64         `json:"duration_ms"`
}

type testError struct {
	Class   string `json:"class"`
	Message string `json:"message"`
}

type testEmitted struct {
	Type    string          `json:"type"`
	Message json.RawMessage `json:"message"`
}

type testOutcome struct {
	Status string     `json:"status"`
	Error  *testError `json:"error"`
}

func errorOf(o Outcome) *testError {
	if o.Status == OK {
		return nil
	}
	return &testError{Class: o.Class, Message: o.Message}
}

func (a *API) testStored(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Version int `json:"version"`
		testInput
	}
	if !httpapi.DecodeJSON(w, r, maxTestBody, &body) {
		return
	}
	id := r.PathValue("id")
	spec, err := a.specs.FunctionSpec(r.Context(), id, body.Version)
	if errors.Is(err, ErrNotFound) {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", err.Error())
		return
	}
	if err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "internal_error", fmt.Sprintf("reading function %q: %v", id, err))
		return
	}
	a.test(w, r, spec, body.testInput)
}

func (a *API) testInline(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID           string   `json:"id"`
		Kind         Kind     `json:"kind"`
		Code         string   `json:"code"`
		AllowedHosts []string `json:"allowed_hosts"`
		Timeout      string   `json:"timeout"`
		testInput
	}
	if !httpapi.DecodeJSON(w, r, maxTestBody, &body) {
		return
	}
	spec := Spec{ID: body.ID, Kind: body.Kind, Code: body.Code, AllowedHosts: body.AllowedHosts}
	if spec.ID == "" {
		spec.ID = "test"
	}
	if body.Timeout != "" {
		d, err := time.ParseDuration(body.Timeout)
		if err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("timeout %q is not a duration: write it like 5s", body.Timeout))
			return
		}
		spec.Timeout = d
	}
	a.test(w, r, spec, body.testInput)
}

// test compiles spec (with the request's settings, when it has some) and
// runs it on the input its kind takes.
func (a *API) test(w http.ResponseWriter, r *http.Request, spec Spec, in testInput) {
	if in.Settings != nil {
		spec.Settings = in.Settings
	}
	p, err := Compile(spec)
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_function", err.Error())
		return
	}
	ctx := r.Context()
	res := testResult{Function: spec.ID, Version: spec.Version}
	start := time.Now()
	switch spec.Kind {
	case KindSource:
		if in.Request == nil {
			httpapi.WriteError(w, http.StatusBadRequest, "validation_error", "a source function is tested with a request: {\"request\": {\"method\": \"POST\", \"headers\": {…}, \"body\": …}}")
			return
		}
		req, err := in.Request.build()
		if err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, "validation_error", err.Error())
			return
		}
		out := a.run.OnRequest(ctx, p, req)
		res.Status, res.Error, res.Logs = out.Status.String(), errorOf(out.Outcome), out.Logs
		for _, e := range out.Emitted {
			res.Emitted = append(res.Emitted, testEmitted{Type: e.Type, Message: e.JSON})
		}
	case KindInsert:
		ev, typ, err := testEvent(in.Event)
		if err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, "validation_error", err.Error())
			return
		}
		out := a.run.Insert(ctx, p, EventIn{Type: typ, JSON: ev})
		res.Status, res.Error, res.Logs, res.Event = out.Status.String(), errorOf(out.Outcome), out.Logs, out.JSON
	case KindDestination:
		raw := in.Events
		if in.Event != nil {
			raw = append([]json.RawMessage{in.Event}, raw...)
		}
		if len(raw) == 0 {
			httpapi.WriteError(w, http.StatusBadRequest, "validation_error", "a destination function is tested with an event: {\"event\": {\"type\": \"track\", …}} or {\"events\": […]}")
			return
		}
		evs := make([]EventIn, len(raw))
		for i, e := range raw {
			b, typ, err := testEvent(e)
			if err != nil {
				httpapi.WriteError(w, http.StatusBadRequest, "validation_error", fmt.Sprintf("events[%d]: %v", i, err))
				return
			}
			evs[i] = EventIn{Type: typ, JSON: b}
		}
		out := a.run.Deliver(ctx, p, evs)
		res.Logs, res.Status = out.Logs, OK.String()
		for _, o := range out.Outcomes {
			res.Results = append(res.Results, testOutcome{Status: o.Status.String(), Error: errorOf(o)})
			if o.Status != OK && res.Error == nil {
				res.Status, res.Error = o.Status.String(), errorOf(o)
			}
		}
	}
	res.Duration = float64(time.Since(start).Microseconds()) / 1000
	httpapi.WriteJSON(w, http.StatusOK, res)
}

// testEvent checks a sample event: a JSON object with a string type.
func testEvent(raw json.RawMessage) ([]byte, string, error) {
	if raw == nil {
		return nil, "", errors.New(`the function is tested with an event: {"event": {"type": "track", …}}`)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, "", errors.New("the event must be a JSON object")
	}
	typ, ok := m["type"].(string)
	if !ok || typ == "" {
		return nil, "", errors.New(`the event needs a "type": track, identify, page, screen, group, alias or delete`)
	}
	return raw, typ, nil
}

func (t *testRequest) build() (Request, error) {
	req := Request{Method: t.Method, URL: t.URL, Headers: http.Header{}}
	if req.Method == "" {
		req.Method = http.MethodPost
	}
	if req.URL == "" {
		req.URL = "http://localhost/v1/functions/test"
	}
	for k, v := range t.Headers {
		req.Headers.Set(k, v)
	}
	if len(t.Body) > 0 {
		var s string
		if err := json.Unmarshal(t.Body, &s); err == nil {
			req.Body = []byte(s)
		} else {
			req.Body = t.Body
			if req.Headers.Get("Content-Type") == "" {
				req.Headers.Set("Content-Type", "application/json")
			}
		}
	}
	return req, nil
}

// logs answers the console output of a function's recent calls on this
// node, newest first: ?limit= (1–100, default 100).
func (a *API) logs(w http.ResponseWriter, r *http.Request) {
	if err := httpapi.CheckParams(r.URL.Query(), "limit"); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_parameter", err.Error())
		return
	}
	limit, err := httpapi.QueryLimit(r.URL.Query().Get("limit"), logRingSize, logRingSize)
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_parameter", err.Error())
		return
	}
	entries := a.run.Logs(r.PathValue("id"))
	if len(entries) > limit {
		entries = entries[:limit]
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"function": r.PathValue("id"), "logs": entries, "count": len(entries)})
}
