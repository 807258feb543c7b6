package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// HTTPRequest is one request an HTTP destination sends.
type HTTPRequest struct {
	Method string // default POST
	URL    string
	Header http.Header
	Body   []byte
	// Timeout bounds the whole exchange; 0: the caller's context only.
	Timeout time.Duration
}

// HTTPResponse is what came back: the status and headers, and the body
// read up to MaxRecorded bytes (a destination that needs more, such as a
// batch API's per-event errors, reads within that bound).
type HTTPResponse struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// SendHTTP sends req with client and classifies the answer the way every
// HTTP destination does (see [ClassifyStatus] and [ClassifyError]). It
// returns the response (nil when none came) and the Result for the whole
// request, with the request and response recorded, bounded.
func SendHTTP(ctx context.Context, client *http.Client, req HTTPRequest) (*HTTPResponse, Result) {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	method := req.Method
	if method == "" {
		method = http.MethodPost
	}
	hr, err := http.NewRequestWithContext(ctx, method, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return nil, Result{Outcome: Discard, Reason: ReasonInvalidSettings, Error: fmt.Sprintf("building the request to %q: %v", req.URL, err)}
	}
	for k, vs := range req.Header {
		hr.Header[k] = vs
	}
	resp, err := client.Do(hr)
	if err != nil {
		r := ClassifyError(err)
		r.Request = RecordRequest(hr, req.Body)
		return nil, r
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxRecorded))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	out := &HTTPResponse{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}
	r := Result{Outcome: ClassifyStatus(resp.StatusCode), StatusCode: resp.StatusCode}
	if r.Outcome != Delivered {
		// Only a failure is kept, so only a failure is recorded.
		r.Request, r.Response = RecordRequest(hr, req.Body), RecordResponse(resp, body)
		r.Reason = "http_" + strconv.Itoa(resp.StatusCode)
		r.Error = fmt.Sprintf("%s answered %d %s", hr.URL.Host, resp.StatusCode, summarize(body))
		if readErr != nil {
			r.Error += fmt.Sprintf(" (reading the body: %v)", readErr)
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		if r.RetryAfter == 0 && resp.StatusCode == http.StatusTooManyRequests {
			// A 429 that does not say how long still means "slow down":
			// the destination pauses a second.
			r.RetryAfter = DefaultThrottle
		}
	}
	return out, r
}

// DefaultThrottle is how long a destination pauses after a 429 that has
// no Retry-After.
const DefaultThrottle = time.Second

// ClassifyStatus maps an HTTP status to an outcome: 2xx delivered; 408,
// 429 and 5xx retried; every other status discarded (Segment's documented
// policy: no retry on authentication failures and other 4xx; a 3xx is not
// followed, see the engine's client).
func ClassifyStatus(code int) Outcome {
	switch {
	case code >= 200 && code < 300:
		return Delivered
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return Retry
	}
	return Discard
}

// ClassifyError maps a transport error to a Result: timeouts and
// connection failures are retried; a malformed URL or an unsupported
// scheme is discarded as invalid settings.
func ClassifyError(err error) Result {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return Result{Outcome: Retry, Reason: ReasonTimeout, Error: err.Error()}
	case errors.Is(err, context.Canceled):
		return Result{Outcome: Retry, Reason: ReasonConnection, Error: "stopped before the destination answered: " + err.Error()}
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return Result{Outcome: Retry, Reason: ReasonConnection, Error: err.Error()}
	case strings.Contains(err.Error(), "unsupported protocol scheme"), strings.Contains(err.Error(), "no Host in request URL"),
		strings.Contains(err.Error(), "invalid header field"):
		return Result{Outcome: Discard, Reason: ReasonInvalidSettings, Error: err.Error()}
	}
	// DNS failures, TLS handshakes and the like may pass later.
	return Result{Outcome: Retry, Reason: ReasonConnection, Error: err.Error()}
}

// ParseRetryAfter reads a Retry-After header (seconds or an HTTP date)
// relative to now; 0 when absent or unreadable. It is capped at an hour so
// that a wrong header cannot park a destination for days.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// RecordRequest renders an outgoing request for the dead-letter store: the
// request line, the headers (credentials masked) and the body, bounded by
// MaxRecorded.
func RecordRequest(r *http.Request, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL.Redacted())
	writeHeaders(&b, r.Header)
	b.WriteByte('\n')
	b.Write(body)
	return bound(b.Bytes())
}

// RecordResponse renders a response (status, headers, body) for the
// dead-letter store, bounded by MaxRecorded.
func RecordResponse(resp *http.Response, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n", resp.Status)
	writeHeaders(&b, resp.Header)
	b.WriteByte('\n')
	b.Write(body)
	return bound(b.Bytes())
}

func writeHeaders(b *bytes.Buffer, h http.Header) {
	for _, k := range sortedKeys(h) {
		for _, v := range h[k] {
			if secretHeader(k) {
				v = "xxxxx"
			}
			fmt.Fprintf(b, "%s: %s\n", k, v)
		}
	}
}

// secretHeader reports whether a header's value is masked in recorded
// exchanges: credentials by their usual names, and any header whose name
// suggests one (X-Api-Token, X-Auth-User, X-Signature, …).
func secretHeader(k string) bool {
	k = strings.ToLower(k)
	switch k {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	for _, w := range []string{"token", "key", "secret", "auth", "signature", "password", "session"} {
		if strings.Contains(k, w) {
			return !strings.HasPrefix(k, "idempotency-")
		}
	}
	return false
}

func bound(b []byte) []byte {
	if len(b) > MaxRecorded {
		b = b[:MaxRecorded]
	}
	return bytes.Clone(b)
}

// summarize returns the start of a response body for an error message.
func summarize(body []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD"))
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
