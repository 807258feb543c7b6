package collect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/function"
	"github.com/confluxcdp/conflux/internal/httpapi"
)

// SourceFunctions runs source functions: the Tracking API asks it to turn
// a request to /v1/functions/{source id} into events.
type SourceFunctions interface {
	OnRequest(ctx context.Context, p *function.Program, req function.Request) function.SourceResult
}

// Error codes of the source-function endpoint.
const (
	codeFunctionError  = "function_error"
	codeFunctionRetry  = "function_retry"
	codeInvalidEmitted = "invalid_emitted_event"
)

// serveFunction handles a call to a source function: the source's
// function runs onRequest on the request, and the messages it emits go
// into the log as the Tracking API's events do (the same limits,
// suppressions and durability: 200 only once the log has them). It is all
// or nothing: when the function fails, or one of its messages is not a
// valid event, nothing is written and the answer says why — 400 for a
// ValidationError, InvalidEventPayload, EventNotSupported or
// InvalidSettings thrown, 503 with Retry-After for a RetryError or a
// timeout (webhook senders retry), 500 for any other error. Like Segment's
// function URLs, the endpoint takes no write key: the source id is the
// address, and the function checks what it must (a signature header).
func (a *API) serveFunction(w http.ResponseWriter, r *http.Request) {
	status := a.handleFunction(w, r)
	a.m.requests.WithLabelValues("function", strconv.Itoa(status)).Inc()
}

func (a *API) handleFunction(w http.ResponseWriter, r *http.Request) int {
	id := r.PathValue("id")
	ws := a.workspace()
	src, ok := ws.Source(id)
	prog, hasFn := ws.SourceFunction(id)
	if !ok || !hasFn || a.opts.Functions == nil {
		httpapi.WriteError(w, http.StatusNotFound, codeNotFound, fmt.Sprintf("no source function %q: the source does not exist or has no function", id))
		return http.StatusNotFound
	}
	bodyBuf := a.getBuf()
	defer a.putBuf(bodyBuf)
	body, err := readBody(r, *bodyBuf, a.opts.Limits.MaxBatchBytes)
	*bodyBuf = body[:0]
	if err != nil {
		return fail(w, err)
	}
	if a.gate != nil {
		if err := a.gate.Writable(); err != nil {
			return a.unavailable(w, err)
		}
	}
	protocol, host := publicAddress(r, ws.PublicURL, httpapi.IsTrustedPeer(r, ws.TrustedProxies))
	res := a.opts.Functions.OnRequest(r.Context(), prog, function.Request{
		Method: r.Method, URL: protocol + "://" + host + r.URL.RequestURI(), Headers: r.Header.Clone(), Body: body,
	})
	switch res.Status {
	case function.OK:
	case function.Retry:
		w.Header().Set("Retry-After", strconv.Itoa(int(a.opts.RetryAfter.Seconds()+0.5)))
		httpapi.WriteError(w, http.StatusServiceUnavailable, codeFunctionRetry, res.Err().Error())
		return http.StatusServiceUnavailable
	default:
		status, code := http.StatusInternalServerError, codeFunctionError
		switch res.Class {
		case "ValidationError", "InvalidEventPayload", "EventNotSupported", "InvalidSettings":
			status, code = http.StatusBadRequest, res.Class
		}
		httpapi.WriteError(w, status, code, res.Err().Error())
		return status
	}
	if len(res.Emitted) == 0 {
		writeSuccess(w, nil)
		return http.StatusOK
	}
	batch, objects, err := emittedBatch(res.Emitted)
	if err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, codeFunctionError, err.Error())
		return http.StatusInternalServerError
	}
	if objects > 0 {
		a.opts.Logger.Debug("a source function set objects; Conflux keeps no objects, they are dropped", "source", src.ID, "objects", objects)
	}
	if batch == nil {
		writeSuccess(w, nil)
		return http.StatusOK
	}
	return a.ingestEmitted(w, r, batch, src.ID)
}

// emittedBatch builds a Tracking API batch from a source function's
// messages, each with its type; Segment.set objects (warehouse objects,
// which Conflux does not keep) are counted and left out.
func emittedBatch(emitted []function.Emitted) (batch []byte, objects int, err error) {
	msgs := make([]map[string]any, 0, len(emitted))
	for i, e := range emitted {
		if e.Type == "set" {
			objects++
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(e.JSON, &m); err != nil {
			return nil, 0, fmt.Errorf("message %d the function emitted is not a JSON object: %w", i, err)
		}
		m["type"] = e.Type
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil, objects, nil
	}
	batch, err = json.Marshal(map[string]any{"batch": msgs})
	return batch, objects, err
}

// ingestEmitted writes a source function's batch to the log, all of it or,
// when one message is not a valid event, none of it.
func (a *API) ingestEmitted(w http.ResponseWriter, r *http.Request, batch []byte, sourceID string) int {
	p, _ := a.payloads.Get().(*event.Payload)
	if p == nil {
		p = new(event.Payload)
	}
	defer a.payloads.Put(p)
	if err := p.Parse(batch, "", a.opts.Limits); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, codeInvalidEmitted, "the function's messages are not a valid batch: "+err.Error())
		return http.StatusBadRequest
	}
	meta := event.Meta{SourceID: sourceID, ReceivedAt: a.opts.Now()}
	if sup := a.opts.Suppressions; sup != nil && !sup.Empty() {
		meta.Suppressed = sup.Suppressed
	}
	recBuf := a.getBuf()
	defer a.putBuf(recBuf)
	recs, n, rej := p.AppendRecords(*recBuf, meta, a.opts.Limits, nil)
	*recBuf = recs[:0]
	var outcomes map[int]string
	for _, rj := range rej {
		if rj.Reason == event.ReasonSuppressed {
			if outcomes == nil {
				outcomes = map[int]string{}
			}
			outcomes[rj.Index] = rj.Reason
			continue
		}
		a.m.rejected.WithLabelValues(sourceID, rj.Reason).Inc()
		httpapi.WriteError(w, http.StatusBadRequest, codeInvalidEmitted,
			fmt.Sprintf("message %d the function emitted is not a valid event (%s): %s; nothing was written", rj.Index, rj.Reason, rj.Message))
		return http.StatusBadRequest
	}
	if len(outcomes) > 0 {
		a.m.suppressed.WithLabelValues(sourceID).Add(float64(len(outcomes)))
	}
	if n > 0 {
		if err := a.log.Append(r.Context(), recs, n); err != nil {
			return a.unavailable(w, err)
		}
		a.m.accepted.WithLabelValues(sourceID).Add(float64(n))
	}
	if a.opts.Metrics != nil {
		a.observe(p, sourceID, outcomes)
	}
	writeSuccess(w, nil)
	return http.StatusOK
}
