package amplitude

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
)

// Type is the Amplitude destination type, for the server's
// [deliver.Registry]. Events name it "Amplitude" in their integrations
// object, as in Segment.
var Type = &deliver.Type{
	Name:         "amplitude",
	Integrations: []string{"Amplitude"},
	MaxBatch:     MaxBatch,
	BatchSize:    batchSize,
	New:          New,
}

// Amplitude's documented request-size limits and waits.
const (
	// httpAPIMaxBytes is HTTP V2's request-size limit ("under 1 MB"),
	// counted in decimal megabytes to stay on the safe side.
	httpAPIMaxBytes = 1_000_000
	// batchAPIMaxBytes is the Batch Event Upload API's limit (20 MB).
	batchAPIMaxBytes = 20_000_000
	// throttleWait is how long Amplitude asks a throttled user or device
	// to pause: 30 s, over which it averages the events-per-second rate.
	throttleWait = 30 * time.Second
	// quotaWait is how long a user or device over its daily quota waits:
	// the rolling 24 hours are re-evaluated in one-hour steps.
	quotaWait = time.Hour
	// maxResends bounds how many times one Send sends the rest of a batch
	// again after Amplitude rejected some of its events (400 or 429).
	maxResends = 3
)

// maskedKey replaces the API key in what a Result records.
const maskedKey = "xxxxx"

// New builds an Amplitude destination from cfg. It returns an error
// wrapping [ErrInvalidSettings], naming each bad setting, when the settings
// are not usable. It makes no request: an API key is only checked by the
// first upload, whose 400 "Invalid API key" discards that batch.
func New(_ context.Context, cfg deliver.Config) (deliver.Destination, error) {
	s, err := ParseSettings(cfg.Settings)
	if err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	client, logger := cfg.HTTP, cfg.Logger
	u := s.requestURL()
	maxBytes := httpAPIMaxBytes
	if pu, err := url.Parse(u); err == nil && strings.HasSuffix(strings.TrimSuffix(pu.Path, "/"), "/batch") {
		maxBytes = batchAPIMaxBytes
	}
	key, _ := json.Marshal(s.APIKey.Value())
	d := &destination{
		client:      client,
		logger:      logger,
		url:         u,
		timeout:     s.Timeout,
		maxBytes:    maxBytes,
		apiKey:      s.APIKey.Value(),
		prefix:      `{"api_key":` + string(key) + `,"events":[`,
		suffix:      "]}",
		minIDLength: DefaultMinIDLength,
	}
	if s.MinIDLength > 0 {
		d.minIDLength = s.MinIDLength
		d.suffix = `],"options":{"min_id_length":` + strconv.Itoa(s.MinIDLength) + "}}"
	}
	return d, nil
}

// batchSize is [Type]'s BatchSize: the batch_size setting, or the default
// when the settings are invalid (New refuses those anyway).
func batchSize(settings map[string]any) int {
	s, err := ParseSettings(settings)
	if err != nil {
		return DefaultBatchSize
	}
	return s.BatchSize
}

// destination is one configured Amplitude destination. It is immutable
// after New, so Send may run in many goroutines at once.
type destination struct {
	client      *http.Client
	logger      *slog.Logger
	url         string
	timeout     time.Duration
	maxBytes    int
	apiKey      string
	prefix      string // the request body up to the first event
	suffix      string // the request body after the last event
	minIDLength int
}

// item is one event of a batch on its way: its index in Send's events and
// results, and its Amplitude form.
type item struct {
	index int
	mapped
}

// Send maps events to Amplitude events, uploads them in one request (more
// when Amplitude asks for smaller requests or rejects some events) and
// returns one Result per event, in order. It honours ctx: when ctx ends,
// the events not yet accepted get Retry results.
func (d *destination) Send(ctx context.Context, events []*deliver.Event) []deliver.Result {
	results := make([]deliver.Result, len(events))
	items := make([]item, 0, len(events))
	for i, e := range events {
		m, res, ok := mapEvent(e, d.minIDLength)
		if !ok {
			results[i] = res
			continue
		}
		items = append(items, item{index: i, mapped: m})
	}
	d.upload(ctx, items, results)
	return results
}

// Close implements [deliver.Destination]; the connections belong to the
// engine's client, so there is nothing to release. It is safe to call
// more than once.
func (d *destination) Close() error { return nil }

// upload sends items and writes their results. It splits a batch whose
// body is over the API's limit (or that Amplitude answered 413) in halves,
// and sends the rest of a batch again after Amplitude rejected some of its
// events, at most maxResends times.
func (d *destination) upload(ctx context.Context, items []item, results []deliver.Result) {
	var last deliver.Result
	for round := 0; len(items) > 0; round++ {
		if err := ctx.Err(); err != nil {
			r := deliver.ClassifyError(err)
			setAll(results, items, r)
			return
		}
		body := d.body(items)
		if len(body) > d.maxBytes || len(items) > MaxBatch {
			if len(items) == 1 {
				results[items[0].index] = invalid("the event is %d bytes encoded, more than the %d bytes Amplitude takes in one request", len(items[0].json), d.maxBytes)
				return
			}
			d.split(ctx, items, results)
			return
		}
		if round > maxResends {
			last.Outcome, last.RetryAfter = deliver.Retry, 0
			last.Error = fmt.Sprintf("not sent again: Amplitude rejected other events of the batch %d times in a row; last answer: %s", round, last.Error)
			setAll(results, items, last)
			return
		}
		resp, r := deliver.SendHTTP(ctx, d.client, deliver.HTTPRequest{
			URL:     d.url,
			Header:  http.Header{"Content-Type": {"application/json"}, "Accept": {"*/*"}},
			Body:    body,
			Timeout: d.timeout,
		})
		d.mask(&r, body)
		var again bool
		items, again = d.classify(items, resp, r, results)
		if again {
			d.split(ctx, items, results)
			return
		}
		last = r
	}
}

// split uploads the two halves of items one after the other.
func (d *destination) split(ctx context.Context, items []item, results []deliver.Result) {
	half := len(items) / 2
	d.logger.Debug("splitting a batch for Amplitude", "events", len(items))
	d.upload(ctx, items[:half], results)
	d.upload(ctx, items[half:], results)
}

// body is the request body for items.
func (d *destination) body(items []item) []byte {
	n := len(d.prefix) + len(d.suffix) + len(items)
	for _, it := range items {
		n += len(it.json)
	}
	b := make([]byte, 0, n)
	b = append(b, d.prefix...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.json...)
	}
	return append(b, d.suffix...)
}

// mask removes the API key from what r records: the body is recorded with
// the key replaced, and any echo of the key (Amplitude's "Invalid API key"
// answer quotes it) is replaced in the response and the error.
func (d *destination) mask(r *deliver.Result, body []byte) {
	if r.Request != nil {
		masked := make([]byte, 0, deliver.MaxRecorded)
		masked = append(masked, `{"api_key":"`+maskedKey+`","events":[`...)
		rest := body[len(d.prefix):]
		masked = append(masked, rest[:min(len(rest), deliver.MaxRecorded)]...)
		hr, err := http.NewRequest(http.MethodPost, d.url, nil)
		if err == nil {
			hr.Header.Set("Accept", "*/*")
			hr.Header.Set("Content-Type", "application/json")
			r.Request = deliver.RecordRequest(hr, masked)
		} else {
			r.Request = nil
		}
	}
	if d.apiKey != "" {
		r.Request = bytes.ReplaceAll(r.Request, []byte(d.apiKey), []byte(maskedKey))
		r.Response = bytes.ReplaceAll(r.Response, []byte(d.apiKey), []byte(maskedKey))
		r.Error = strings.ReplaceAll(r.Error, d.apiKey, maskedKey)
	}
}

// answer is the body of Amplitude's error responses (InvalidRequestError,
// SilencedDeviceID, PayloadTooLargeError, TooManyRequestsForDeviceError).
type answer struct {
	Code                       int                `json:"code"`
	Error                      string             `json:"error"`
	MissingField               string             `json:"missing_field"`
	EventsWithInvalidFields    map[string][]int   `json:"events_with_invalid_fields"`
	EventsWithMissingFields    map[string][]int   `json:"events_with_missing_fields"`
	EventsWithInvalidIDLengths map[string][]int   `json:"events_with_invalid_id_lengths"`
	SilencedEvents             []int              `json:"silenced_events"`
	EPSThreshold               float64            `json:"eps_threshold"`
	ThrottledUsers             map[string]float64 `json:"throttled_users"`
	ThrottledDevices           map[string]float64 `json:"throttled_devices"`
	ThrottledEvents            []int              `json:"throttled_events"`
	ExceededDailyQuotaUsers    map[string]float64 `json:"exceeded_daily_quota_users"`
	ExceededDailyQuotaDevices  map[string]float64 `json:"exceeded_daily_quota_devices"`
}

// classify writes the results of one answered (or failed) request for
// items and returns the items to send again at once: the events Amplitude
// did not object to when it rejected the request for others. split
// reports a 413 for more than one event: the caller sends the halves.
func (d *destination) classify(items []item, resp *deliver.HTTPResponse, r deliver.Result, results []deliver.Result) (again []item, split bool) {
	if resp == nil {
		setAll(results, items, r)
		return nil, false
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		r.Outcome = deliver.Delivered
		setAll(results, items, r)
		return nil, false
	case code == http.StatusRequestEntityTooLarge:
		if len(items) > 1 {
			return items, true
		}
		r.Error += " (one event alone is too large)"
		setAll(results, items, r)
		return nil, false
	case code == http.StatusBadRequest:
		return d.rejected(items, resp, r, results)
	case code == http.StatusTooManyRequests:
		return d.throttled(items, resp, r, results)
	}
	setAll(results, items, r)
	return nil, false
}

// rejected handles a 400. Amplitude rejects the whole request; when it
// names the events at fault, those are discarded (and throttled ones
// retried later) and the others returned to be sent again. A 400 about
// the request itself discards every event. A body too long to read whole
// (MaxRecorded) with several events is bisected instead, since discarding
// a batch for a few bad events would lose good ones.
func (d *destination) rejected(items []item, resp *deliver.HTTPResponse, r deliver.Result, results []deliver.Result) ([]item, bool) {
	var a answer
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		if len(resp.Body) >= deliver.MaxRecorded && len(items) > 1 {
			return items, true
		}
		setAll(results, items, r)
		return nil, false
	}
	if a.MissingField != "" || strings.HasPrefix(a.Error, "Invalid API key") {
		setAll(results, items, r)
		return nil, false
	}
	faults := map[int][]string{} // index → what Amplitude found wrong
	note := func(what string, byField map[string][]int) {
		for _, field := range slices.Sorted(maps.Keys(byField)) {
			for _, i := range byField[field] {
				if i >= 0 && i < len(items) {
					faults[i] = append(faults[i], what+" "+field)
				}
			}
		}
	}
	note("invalid", a.EventsWithInvalidFields)
	note("missing", a.EventsWithMissingFields)
	note("invalid length of", a.EventsWithInvalidIDLengths)
	for _, i := range a.SilencedEvents {
		if i >= 0 && i < len(items) {
			faults[i] = append(faults[i], "device_id silenced by Amplitude")
		}
	}
	throttled := indexSet(a.ThrottledEvents, len(items))
	if len(faults) == 0 && len(throttled) == 0 {
		setAll(results, items, r)
		return nil, false
	}
	var again []item
	for i, it := range items {
		switch {
		case faults[i] != nil:
			res := r
			res.Error = fmt.Sprintf("Amplitude rejected this event (%s): %s", strings.Join(faults[i], ", "), r.Error)
			results[it.index] = res
		case throttled[i]:
			results[it.index] = d.throttledResult(it, a, r)
		default:
			again = append(again, it)
		}
	}
	d.logger.Debug("Amplitude rejected some events of a batch", "rejected", len(faults), "throttled", len(throttled), "resent", len(again))
	return again, false
}

// throttled handles a 429. Amplitude rejects the whole request; the events
// of throttled users and devices are retried later, the others returned
// to be sent again at once. When the answer names no event, every event is
// retried later.
func (d *destination) throttled(items []item, resp *deliver.HTTPResponse, r deliver.Result, results []deliver.Result) ([]item, bool) {
	var a answer
	_ = json.Unmarshal(resp.Body, &a) // an unreadable answer throttles everything
	hit := indexSet(a.ThrottledEvents, len(items))
	if len(hit) == 0 {
		for i, it := range items {
			if (it.userID != "" && a.ThrottledUsers[it.userID] > 0) || (it.deviceID != "" && a.ThrottledDevices[it.deviceID] > 0) || overQuota(it, a) {
				hit[i] = true
			}
		}
	}
	if len(hit) == 0 {
		r.RetryAfter = max(r.RetryAfter, throttleWait)
		setAll(results, items, r)
		return nil, false
	}
	var again []item
	for i, it := range items {
		if hit[i] {
			results[it.index] = d.throttledResult(it, a, r)
		} else {
			again = append(again, it)
		}
	}
	d.logger.Debug("Amplitude throttled some events of a batch", "throttled", len(hit), "resent", len(again))
	return again, false
}

// throttledResult is the Retry result of an event whose user or device
// Amplitude throttled.
func (d *destination) throttledResult(it item, a answer, r deliver.Result) deliver.Result {
	r.Outcome = deliver.Retry
	if overQuota(it, a) {
		r.RetryAfter = max(r.RetryAfter, quotaWait)
		r.Error = "the event's user or device is over Amplitude's daily quota: " + r.Error
	} else {
		r.RetryAfter = max(r.RetryAfter, throttleWait)
		r.Error = "Amplitude throttled the event's user or device: " + r.Error
	}
	return r
}

// overQuota reports whether the answer lists the item's user or device as
// over its daily quota.
func overQuota(it item, a answer) bool {
	_, user := a.ExceededDailyQuotaUsers[it.userID]
	_, device := a.ExceededDailyQuotaDevices[it.deviceID]
	return (user && it.userID != "") || (device && it.deviceID != "")
}

// setAll gives every item the result r.
func setAll(results []deliver.Result, items []item, r deliver.Result) {
	for _, it := range items {
		results[it.index] = r
	}
}

// indexSet is the set of the indexes in list that fall in [0, n).
func indexSet(list []int, n int) map[int]bool {
	set := make(map[int]bool, len(list))
	for _, i := range list {
		if i >= 0 && i < n {
			set[i] = true
		}
	}
	return set
}
