// Package webhook is the webhook destination: it POSTs each event (or,
// with batch_size > 1, a JSON array of events) to a URL, with custom
// headers, an Idempotency-Key carrying the messageId, and an HMAC-SHA256
// signature of the body when a secret is set.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
)

// SignatureHeader carries the hex HMAC-SHA256 of the request body, keyed
// by the destination's secret, so that a receiver can tell the request
// came from this Conflux.
const SignatureHeader = "X-Signature"

// MaxBatchSize bounds batch_size.
const MaxBatchSize = 1000

// Type is the webhook destination type.
var Type = &deliver.Type{
	Name:         "webhook",
	Integrations: []string{"Webhooks", "Webhook"},
	MaxBatch:     MaxBatchSize,
	BatchSize: func(s map[string]any) int {
		n, _ := intSetting(s, "batch_size", 1)
		return n
	},
	New: newWebhook,
}

type webhook struct {
	url     string
	headers http.Header
	secret  []byte
	timeout time.Duration
	batch   int
	http    *http.Client
}

func newWebhook(_ context.Context, cfg deliver.Config) (deliver.Destination, error) {
	s := cfg.Settings
	for k := range s {
		switch k {
		case "url", "headers", "secret", "timeout", "batch_size":
		default:
			return nil, fmt.Errorf("settings.%s: unknown setting (want url, headers, secret, timeout, batch_size)", k)
		}
	}
	w := &webhook{headers: http.Header{}, http: cfg.HTTP, timeout: 10 * time.Second}
	raw, _ := s["url"].(string)
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("settings.url: %q is not an http or https URL", raw)
	}
	w.url = raw
	if h, ok := s["headers"]; ok {
		m, ok := h.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("settings.headers: want a mapping of header names to strings")
		}
		for k, v := range m {
			sv, ok := v.(string)
			if !ok || !validHeaderName(k) || !validHeaderValue(sv) {
				return nil, fmt.Errorf("settings.headers.%s: want a header name (letters, digits and !#$%%&'*+-.^_`|~) and a string value without control characters", k)
			}
			w.headers.Set(k, sv)
		}
	}
	if v, ok := s["secret"]; ok {
		sv, ok := v.(string)
		if !ok || sv == "" {
			return nil, fmt.Errorf("settings.secret: want a non-empty string (leave it out to send unsigned requests)")
		}
		w.secret = []byte(sv)
	}
	if v, ok := s["timeout"]; ok {
		sv, _ := v.(string)
		d, err := time.ParseDuration(sv)
		if err != nil || d < time.Millisecond || d > 5*time.Minute {
			return nil, fmt.Errorf("settings.timeout: %v is not a duration between 1ms and 5m, such as \"10s\"", v)
		}
		w.timeout = d
	}
	if w.batch, err = intSetting(s, "batch_size", 1); err != nil {
		return nil, err
	}
	return w, nil
}

func intSetting(s map[string]any, key string, def int) (int, error) {
	v, ok := s[key]
	if !ok {
		return def, nil
	}
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case int64:
		n = int(x)
	case float64:
		n = int(x)
		if float64(n) != x {
			n = 0
		}
	case string: // from an environment reference, ${BATCH}
		n, _ = strconv.Atoi(x)
	}
	if n < 1 || n > MaxBatchSize {
		return def, fmt.Errorf("settings.%s: %v is not a whole number from 1 to %d", key, v, MaxBatchSize)
	}
	return n, nil
}

// Send posts the events: one request per event when batch_size is 1 (the
// body is the event), else one request whose body is the JSON array.
func (w *webhook) Send(ctx context.Context, events []*deliver.Event) []deliver.Result {
	if w.batch == 1 {
		out := make([]deliver.Result, len(events))
		for i, ev := range events {
			out[i] = w.post(ctx, ev.JSON, ev.MessageID)
		}
		return out
	}
	var body bytes.Buffer
	body.Grow(len(events) * 1024)
	body.WriteByte('[')
	h := sha256.New()
	for i, ev := range events {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(ev.JSON)
		h.Write([]byte(ev.MessageID))
		h.Write([]byte{0})
	}
	body.WriteByte(']')
	// A batch's key is derived from its messageIds: a retried batch of the
	// same events has the same key; receivers drop repeats by each event's
	// messageId.
	r := w.post(ctx, body.Bytes(), "batch-"+hex.EncodeToString(h.Sum(nil))[:32])
	out := make([]deliver.Result, len(events))
	for i := range out {
		out[i] = r
	}
	return out
}

func (w *webhook) post(ctx context.Context, body []byte, key string) deliver.Result {
	h := w.headers.Clone()
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Conflux-Webhook/1")
	h.Set("Idempotency-Key", key)
	if w.secret != nil {
		m := hmac.New(sha256.New, w.secret)
		m.Write(body)
		h.Set(SignatureHeader, hex.EncodeToString(m.Sum(nil)))
	}
	_, r := deliver.SendHTTP(ctx, w.http, deliver.HTTPRequest{URL: w.url, Header: h, Body: body, Timeout: w.timeout})
	return r
}

// validHeaderName reports whether k is an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !ok && (c > 127 || !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c))) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v has no control characters but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Close has nothing to release: the HTTP client is the engine's.
func (w *webhook) Close() error { return nil }
