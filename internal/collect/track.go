package collect

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/klauspost/compress/gzip"
)

// Error codes of the Tracking API besides event's request errors.
const (
	codeUnauthorized = "unauthorized"
	codeUnavailable  = "unavailable"
	codeNotFound     = "not_found"
	codeEncoding     = "unsupported_encoding"
)

// successBody is what every SDK expects on 200.
type successBody struct {
	Success bool `json:"success"`
	// Rejected lists the events of a batch that were not accepted and why.
	Rejected []event.Rejection `json:"rejected,omitempty"`
}

func writeSuccess(w http.ResponseWriter, rej []event.Rejection) {
	if len(rej) == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"success":true}`+"\n")
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, successBody{Success: true, Rejected: rej})
}

// serveEvents handles /v1/{identify,track,page,screen,group,alias} and their
// one-letter forms (one event), and /v1/{batch,b,import} (a batch).
func (a *API) serveEvents(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("kind")
	pathType, endpoint := "", "batch"
	switch kind {
	case "batch", "b", "import":
	default:
		t, ok := event.TypeFromPath(kind)
		if !ok {
			httpapi.WriteError(w, http.StatusNotFound, codeNotFound, fmt.Sprintf("no endpoint /v1/%s: use identify, track, page, screen, group, alias or batch", kind))
			return
		}
		pathType, endpoint = t, t
	}
	start := a.opts.Now()
	status := a.handle(w, r, pathType)
	a.m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	a.m.duration.WithLabelValues(endpoint).Observe(a.opts.Now().Sub(start).Seconds())
}

// handle serves one request and returns the status it answered.
func (a *API) handle(w http.ResponseWriter, r *http.Request, pathType string) int {
	limit := a.opts.Limits.MaxBatchBytes
	if pathType != "" {
		limit = a.opts.Limits.MaxEventBytes
	}
	bodyBuf := a.getBuf()
	defer a.putBuf(bodyBuf)
	body, err := readBody(r, *bodyBuf, limit)
	*bodyBuf = body[:0]
	if err != nil {
		return fail(w, err)
	}
	a.m.bytes.Add(float64(len(body)))

	p, _ := a.payloads.Get().(*event.Payload)
	if p == nil {
		p = new(event.Payload)
	}
	defer a.payloads.Put(p)
	if err := p.Parse(body, pathType, a.opts.Limits); err != nil {
		return fail(w, err)
	}

	ws := a.workspace()
	now := a.opts.Now()
	src, err := authenticate(r, p.WriteKey, ws, now)
	if err != nil {
		return fail(w, err)
	}
	if a.gate != nil {
		if err := a.gate.Writable(); err != nil {
			return a.unavailable(w, err)
		}
	}

	meta := event.Meta{SourceID: src.ID, ReceivedAt: now}
	if sup := a.opts.Suppressions; sup != nil && !sup.Empty() {
		meta.Suppressed = sup.Suppressed
	}
	if ip := httpapi.ClientIP(r, ws.TrustedProxies); ip.IsValid() {
		meta.IP = ip.String()
	}
	recBuf := a.getBuf()
	defer a.putBuf(recBuf)
	recs, n, rej := p.AppendRecords(*recBuf, meta, a.opts.Limits, nil)
	*recBuf = recs[:0]
	// Suppressed events are dropped silently, as Segment does: counted, but
	// not reported to the client.
	suppressed := 0
	var outcomes map[int]string // for the delivery metrics: index → rejection reason
	if a.opts.Metrics != nil && len(rej) > 0 {
		outcomes = make(map[int]string, len(rej))
		for _, rj := range rej {
			outcomes[rj.Index] = rj.Reason
		}
	}
	kept := rej[:0]
	for _, rj := range rej {
		if rj.Reason == event.ReasonSuppressed {
			suppressed++
			continue
		}
		a.m.rejected.WithLabelValues(src.ID, rj.Reason).Inc()
		kept = append(kept, rj)
	}
	rej = kept
	if suppressed > 0 {
		a.m.suppressed.WithLabelValues(src.ID).Add(float64(suppressed))
	}
	if pathType != "" && len(rej) == 1 {
		if a.opts.Metrics != nil {
			a.observe(p, src.ID, outcomes)
		}
		httpapi.WriteError(w, http.StatusBadRequest, rej[0].Reason, rej[0].Message)
		return http.StatusBadRequest
	}
	if n > 0 {
		if err := a.log.Append(r.Context(), recs, n); err != nil {
			return a.unavailable(w, err)
		}
		a.m.accepted.WithLabelValues(src.ID).Add(float64(n))
	}
	if a.opts.Metrics != nil {
		a.observe(p, src.ID, outcomes)
	}
	writeSuccess(w, rej)
	return http.StatusOK
}

// unavailable answers 503 with Retry-After: the SDKs retry, and nothing
// that was not durably written is acknowledged.
func (a *API) unavailable(w http.ResponseWriter, err error) int {
	if !errors.Is(err, stream.ErrBusy) {
		a.opts.Logger.Warn("ingest unavailable", "err", err)
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(a.opts.RetryAfter.Seconds()+0.5)))
	httpapi.WriteError(w, http.StatusServiceUnavailable, codeUnavailable, "the log cannot take events right now; retry later: "+err.Error())
	return http.StatusServiceUnavailable
}

// requestError is a 4xx answer.
type requestError struct {
	status        int
	code, message string
}

func (e *requestError) Error() string { return e.message }

func fail(w http.ResponseWriter, err error) int {
	status, code, msg := http.StatusBadRequest, event.CodeInvalidBody, err.Error()
	if re, ok := errors.AsType[*requestError](err); ok {
		status, code, msg = re.status, re.code, re.message
	} else if ee, ok := errors.AsType[*event.Error](err); ok {
		code, msg = ee.Code, ee.Message
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="conflux"`)
	}
	httpapi.WriteError(w, status, code, msg)
	return status
}

// readBody reads r's body into buf (reused), decompressing gzip, and fails
// with a payload_too_large event.Error past limit bytes (after
// decompression, so a small gzip bomb is refused like a large body).
func readBody(r *http.Request, buf []byte, limit int) ([]byte, error) {
	var src io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return buf, &event.Error{Code: event.CodeInvalidBody, Message: "Content-Encoding is gzip but the body is not: " + err.Error()}
		}
		defer zr.Close()
		src = zr
	default:
		return buf, &requestError{status: http.StatusUnsupportedMediaType, code: codeEncoding,
			message: fmt.Sprintf("Content-Encoding %q is not supported: send gzip or no encoding", enc)}
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, &event.Error{Code: event.CodeTooLarge, Message: fmt.Sprintf("body is larger than %d bytes", limit)}
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, &event.Error{Code: event.CodeInvalidBody, Message: "reading the body: " + err.Error()}
		}
	}
}

// authenticate finds the source of a request: the write key is the user
// name of Basic auth (with or without the trailing colon), or — without
// Basic auth, or with a Bearer token — the writeKey of the body.
func authenticate(r *http.Request, bodyKey string, ws *config.Workspace, now time.Time) (*config.Source, error) {
	key, where := bodyKey, "writeKey in the body"
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, cred, _ := strings.Cut(auth, " ")
		if strings.EqualFold(scheme, "Basic") {
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
			if err != nil {
				return nil, &requestError{http.StatusUnauthorized, codeUnauthorized, "Authorization: Basic credentials are not base64"}
			}
			user, _, _ := strings.Cut(string(raw), ":")
			key, where = user, "write key in Basic auth"
		}
	}
	if key == "" {
		return nil, &requestError{http.StatusUnauthorized, codeUnauthorized,
			"no write key: send it as the user name of Basic auth, or as writeKey in the body"}
	}
	src, ok := ws.SourceByWriteKey(key, now)
	if !ok {
		return nil, &requestError{http.StatusUnauthorized, codeUnauthorized, "unknown " + where}
	}
	return src, nil
}

// observe counts a request's events for the delivery metrics, once they
// are durable: each received, rejected (with its reason) or suppressed,
// by type and name. rejected maps an event's index to its rejection
// reason (suppressed ones included).
func (a *API) observe(p *event.Payload, source string, rejected map[int]string) {
	counts := make(map[observe.Key]int64, 4)
	for i := range p.Len() {
		typ, name := p.Describe(i)
		k := observe.Key{Source: source, EventType: typ, EventName: name, Outcome: observe.Received}
		switch reason, ok := rejected[i]; {
		case !ok:
		case reason == event.ReasonSuppressed:
			k.Outcome = observe.Suppressed
		default:
			k.Outcome, k.Reason = observe.Rejected, reason
		}
		counts[k]++
	}
	a.opts.Metrics.AddAll(counts)
}
