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
	"net/http"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/settings"
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
	BatchSize:    batchSize,
	New:          newWebhook,
}

// knownSettings are the keys a webhook's settings may hold.
var knownSettings = []string{"url", "headers", "secret", "timeout", "batch_size"}

type webhook struct {
	url     string
	headers http.Header
	secret  []byte
	timeout time.Duration
	batch   int
	http    *http.Client
}

func newWebhook(_ context.Context, cfg deliver.Config) (deliver.Destination, error) {
	r := settings.New(cfg.Settings, knownSettings...)
	w := &webhook{headers: http.Header{}, http: cfg.WithDefaults().HTTP}
	w.url = r.String("url", "")
	if w.url == "" {
		r.Problemf("url", "required: an http or https URL")
	}
	r.CheckURL("url", w.url, "http", "https")
	for k, v := range r.StringMap("headers") {
		switch {
		case !validHeaderName(k):
			r.Problemf("headers."+k, "not a header name: want letters, digits and !#$%%&'*+-.^_`|~")
		case !validHeaderValue(v):
			r.Problemf("headers."+k, "must be a string without control characters")
		default:
			w.headers.Set(k, v)
		}
	}
	if secret := r.Secret("secret"); secret != "" {
		w.secret = []byte(secret.Value())
	} else if r.Has("secret") {
		r.Problemf("secret", "must not be empty (leave it out to send unsigned requests)")
	}
	w.timeout = r.Duration("timeout", 10*time.Second)
	r.CheckDuration("timeout", w.timeout, time.Millisecond, 5*time.Minute)
	w.batch = readBatchSize(r)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return w, nil
}

// readBatchSize reads the batch_size setting: 1 when it is absent.
func readBatchSize(r *settings.Reader) int {
	n := r.Int("batch_size", 1)
	r.CheckInt("batch_size", n, 1, MaxBatchSize)
	return n
}

// batchSize is [Type]'s BatchSize: the batch_size setting, or 1 when it is
// not valid (New refuses it then).
func batchSize(s map[string]any) int {
	r := settings.New(s)
	if n := readBatchSize(r); r.Err() == nil {
		return n
	}
	return 1
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
