package function

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// Bounds of what one call may do.
const (
	// MaxLogBytes is how much console output one call keeps; the rest is
	// cut, with a note saying so (Segment's tester keeps 4 KB).
	MaxLogBytes = 4 << 10
	// MaxFetches is how many requests one call may make.
	MaxFetches = 100
	// MaxEmits is how many messages one source function call may emit.
	MaxEmits = 1000
	// maxTimers bounds the timers a call may have pending.
	maxTimers = 1000
)

// call is the state of one call on an interpreter.
type call struct {
	// parent is the caller's context; ctx is parent bounded by the
	// deadline, made when the call first waits (fetch, timers): most
	// calls never wait, and a context with a timer costs a few µs.
	parent   context.Context
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
	logs     bytes.Buffer
	logsCut  bool
	emitted  []Emitted
	fetches  int
	timers   []*timer
	timerSeq int
	heap0    uint64
	// interrupted is what the runner's monitor interrupted the call for
	// (errTimeout, errMemory), nil while it has not; under Runner.mu.
	interrupted error
	// loading: the top-level code runs, not a handler (what it would
	// emit would go nowhere).
	loading bool
	// stop is set by a native that must end the call (too many fetches):
	// the call fails with it even if the code catches the error thrown.
	stop *Outcome
}

type timer struct {
	id    int
	at    time.Time
	fn    goja.Callable
	every time.Duration // setInterval's period; 0 for setTimeout
}

// Emitted is one message a source function emitted with Segment.track(…)
// and the others: its type and the object as the function built it, JSON.
type Emitted struct {
	Type string
	JSON []byte
}

// log is console.log and its siblings: the line goes to the call's logs,
// cut at MaxLogBytes.
func (v *vm) log(level, msg string) {
	c := v.call
	if c == nil || c.logsCut {
		return
	}
	line := level + ": " + msg + "\n"
	if level == "log" {
		line = msg + "\n"
	}
	if room := MaxLogBytes - c.logs.Len(); len(line) > room {
		cut := max(room, 0)
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		c.logs.WriteString(line[:cut])
		c.logs.WriteString("\n[logs cut at 4 KB]\n")
		c.logsCut = true
		return
	}
	c.logs.WriteString(line)
}

// emit is Segment.track(…) and the other calls of source functions: the
// message is kept, as JSON, for the caller to ingest once the call ends.
func (v *vm) emit(typ string, msg goja.Value) goja.Value {
	c := v.call
	if c == nil || c.loading {
		panic(v.rt.NewTypeError("Segment." + typ + " may only be called while a request is handled"))
	}
	if len(c.emitted) >= MaxEmits {
		panic(v.rt.NewTypeError(fmt.Sprintf("Segment.%s: one call may emit at most %d messages", typ, MaxEmits)))
	}
	obj, ok := msg.(*goja.Object)
	if !ok {
		panic(v.rt.NewTypeError(fmt.Sprintf("Segment.%s takes an object, not %s", typ, describeValue(msg))))
	}
	j, err := v.strfy(goja.Undefined(), obj)
	if err != nil {
		panic(err)
	}
	c.emitted = append(c.emitted, Emitted{Type: typ, JSON: []byte(j.String())})
	return goja.Undefined()
}

func describeValue(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	if goja.IsNull(v) {
		return "null"
	}
	return "a " + v.ExportType().String()
}

// timer is setTimeout (fn set), setInterval (fn set, repeat) and
// clearTimeout/clearInterval (fn null, the id in ms).
func (v *vm) timer(fn goja.Value, ms float64, repeat bool) goja.Value {
	c := v.call
	if c == nil {
		panic(v.rt.NewTypeError("timers may only be set while the function runs"))
	}
	if goja.IsNull(fn) || goja.IsUndefined(fn) {
		id := int(ms)
		for i, t := range c.timers {
			if t.id == id {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				break
			}
		}
		return goja.Undefined()
	}
	f, ok := goja.AssertFunction(fn)
	if !ok {
		panic(v.rt.NewTypeError("setTimeout takes a function"))
	}
	if len(c.timers) >= maxTimers {
		panic(v.rt.NewTypeError(fmt.Sprintf("at most %d timers may be pending", maxTimers)))
	}
	c.timerSeq++
	d := time.Duration(max(ms, 0) * float64(time.Millisecond))
	t := &timer{id: c.timerSeq, at: time.Now().Add(d), fn: f}
	if repeat {
		t.every = max(d, time.Millisecond) // as Node: at least 1 ms
		t.at = time.Now().Add(t.every)
	}
	c.timers = append(c.timers, t)
	return v.rt.ToValue(c.timerSeq)
}

// context is the call's context, bounded by its deadline.
func (c *call) context() context.Context {
	if c.ctx == nil {
		parent := c.parent
		if parent == nil {
			parent = context.Background()
		}
		c.ctx, c.cancel = context.WithDeadline(parent, c.deadline)
	}
	return c.ctx
}

// expired reports whether the call's time is up or its caller gave up.
func (c *call) expired(now time.Time) bool {
	return now.After(c.deadline) || (c.parent != nil && c.parent.Err() != nil)
}

// nextTimer removes and returns the timer due first, nil when none.
func (c *call) nextTimer() *timer {
	if len(c.timers) == 0 {
		return nil
	}
	first := 0
	for i, t := range c.timers {
		if t.at.Before(c.timers[first].at) {
			first = i
		}
	}
	t := c.timers[first]
	c.timers = append(c.timers[:first], c.timers[first+1:]...)
	return t
}

// fetchResult is what __fetch returns to the prelude's fetch.
type fetchResult struct {
	Status     int        `json:"status"`
	StatusText string     `json:"statusText"`
	Headers    [][]string `json:"headers"`
	Body       string     `json:"body"`
	URL        string     `json:"url"`
}

// fetch makes one HTTP request for the prelude's fetch: to an allowed
// host, within the call's deadline, the response body bounded.
func (v *vm) fetch(rawURL, method string, headers [][]string, body goja.Value) goja.Value {
	c := v.call
	if c == nil || v.runner == nil {
		panic(v.fetchError("fetch is not available while the function loads"))
	}
	c.fetches++
	if c.fetches > MaxFetches {
		c.stop = &Outcome{Status: Discard, Class: "FetchError", Message: fmt.Sprintf("one call may make at most %d requests", MaxFetches)}
		panic(v.fetchError(c.stop.Message))
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		panic(v.rt.NewTypeError(fmt.Sprintf("fetch: %q is not an absolute http(s) URL", rawURL)))
	}
	if !hostAllowed(v.prog.spec.AllowedHosts, u.Host) {
		panic(v.rt.NewTypeError(fmt.Sprintf("fetch: host %q is not in the function's allowed hosts %v", u.Host, v.prog.spec.AllowedHosts)))
	}
	var rd io.Reader
	if body != nil && !goja.IsNull(body) && !goja.IsUndefined(body) {
		rd = strings.NewReader(body.String())
	}
	ctx := c.context()
	req, err := http.NewRequestWithContext(context.WithValue(ctx, hostsKey{}, v.prog.spec.AllowedHosts), method, u.String(), rd)
	if err != nil {
		panic(v.rt.NewTypeError(fmt.Sprintf("fetch: %v", err)))
	}
	for _, h := range headers {
		if len(h) == 2 {
			req.Header.Add(h[0], h[1])
		}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "Conflux-Functions/1")
	}
	resp, err := v.runner.opts.HTTP.Do(req)
	if rr := (*redirectRefused)(nil); errors.As(err, &rr) {
		panic(v.rt.NewTypeError(fmt.Sprintf("fetch %s: %v", u.Redacted(), rr)))
	}
	if err != nil {
		if ctx.Err() != nil {
			v.rt.Interrupt(errTimeout)
		}
		panic(v.fetchError(fmt.Sprintf("request to %s failed: %v", u.Redacted(), errors.Unwrap(err))))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, v.runner.opts.MaxResponseBytes+1))
	if err != nil {
		panic(v.fetchError(fmt.Sprintf("reading the response of %s: %v", u.Redacted(), err)))
	}
	if int64(len(b)) > v.runner.opts.MaxResponseBytes {
		panic(v.fetchError(fmt.Sprintf("the response of %s is larger than %d bytes", u.Redacted(), v.runner.opts.MaxResponseBytes)))
	}
	out := fetchResult{Status: resp.StatusCode, StatusText: http.StatusText(resp.StatusCode), Body: string(b), URL: u.String()}
	for k, vs := range resp.Header {
		for _, val := range vs {
			out.Headers = append(out.Headers, []string{k, val})
		}
	}
	o := v.rt.NewObject()
	must(o.Set("status", out.Status))
	must(o.Set("statusText", out.StatusText))
	must(o.Set("body", out.Body))
	must(o.Set("url", out.URL))
	hs := make([]any, len(out.Headers))
	for i, h := range out.Headers {
		hs[i] = v.rt.NewArray(h[0], h[1])
	}
	must(o.Set("headers", v.rt.NewArray(hs...)))
	return o
}

// fetchError is the error a failed fetch throws: a FetchError, as
// node-fetch names it, which retries when the code does not catch it.
func (v *vm) fetchError(msg string) *goja.Object {
	e := v.rt.NewGoError(errors.New(msg))
	must(e.Set("name", "FetchError"))
	must(e.Set("message", msg))
	return e
}

// digest hashes data (a Latin-1 byte string) with alg, keyed when key is
// not null (HMAC), and encodes the sum: hex, base64, base64url, latin1 or
// binary, or "buffer" (Latin-1, for Buffer).
func (v *vm) digest(alg string, key goja.Value, data, enc string) string {
	newHash, ok := map[string]func() hash.Hash{
		"md5": md5.New, "sha1": sha1.New, "sha256": sha256.New, "sha384": sha512.New384, "sha512": sha512.New,
	}[strings.ToLower(alg)]
	if !ok {
		panic(v.rt.NewTypeError(fmt.Sprintf("Digest method not supported: %q (md5, sha1, sha256, sha384, sha512)", alg)))
	}
	var h hash.Hash
	if key == nil || goja.IsNull(key) || goja.IsUndefined(key) {
		h = newHash()
	} else {
		h = hmac.New(newHash, latin1Bytes(key.String()))
	}
	h.Write(latin1Bytes(data))
	if enc == "buffer" {
		enc = "latin1"
	}
	out, err := encodeBytes(h.Sum(nil), enc)
	if err != nil {
		panic(v.rt.NewTypeError(err.Error()))
	}
	return out
}

// bytes converts s from one encoding to another (utf8, latin1/binary,
// base64, base64url, hex), as Buffer, atob and btoa need.
func (v *vm) bytes(s, from, to string) string {
	var b []byte
	switch strings.ToLower(from) {
	case "utf8", "utf-8":
		b = []byte(s)
	case "latin1", "binary":
		b = latin1Bytes(s)
	case "base64", "base64url":
		t := strings.TrimRight(strings.NewReplacer("-", "+", "_", "/").Replace(s), "=")
		var err error
		if b, err = base64.RawStdEncoding.DecodeString(t); err != nil {
			panic(v.rt.NewTypeError("the string to be decoded is not correctly encoded (base64)"))
		}
	case "hex":
		var err error
		if b, err = hex.DecodeString(s); err != nil {
			panic(v.rt.NewTypeError("the string to be decoded is not correctly encoded (hex)"))
		}
	default:
		panic(v.rt.NewTypeError(fmt.Sprintf("unknown encoding %q", from)))
	}
	out, err := encodeBytes(b, to)
	if err != nil {
		panic(v.rt.NewTypeError(err.Error()))
	}
	return out
}

func encodeBytes(b []byte, enc string) (string, error) {
	switch strings.ToLower(enc) {
	case "hex":
		return hex.EncodeToString(b), nil
	case "base64":
		return base64.StdEncoding.EncodeToString(b), nil
	case "base64url":
		return base64.RawURLEncoding.EncodeToString(b), nil
	case "latin1", "binary":
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r), nil
	case "utf8", "utf-8":
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	}
	return "", fmt.Errorf("unknown encoding %q (hex, base64, base64url, latin1, utf8)", enc)
}

// latin1Bytes is the bytes of a string whose characters are all below 256;
// a greater character keeps its low byte, as Node's "binary" does.
func latin1Bytes(s string) []byte {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = append(b, byte(r))
	}
	return b
}

// newUUID is crypto.randomUUID: a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
