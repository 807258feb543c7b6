package mixpanel

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/confluxcdp/conflux/internal/deliver"
)

// Type is the Mixpanel destination type, for the server's registry.
// Segment's integrations object may name it "Mixpanel" or, as Segment's
// docs call the cloud-mode destination, "Mixpanel (Legacy)".
var Type = &deliver.Type{
	Name:         "mixpanel",
	Integrations: []string{"Mixpanel", "Mixpanel (Legacy)"},
	MaxBatch:     maxBatch,
	BatchSize:    batchSize,
	New:          New,
}

// Request body limits: /import takes 10 MB of uncompressed JSON; for
// /engage and /groups Mixpanel documents no total, so batches stay under
// the 2 MB that its older ingestion limits gave. A 413 splits a batch
// further in any case.
const (
	maxImportBody  = 10_000_000
	maxProfileBody = 2_000_000
)

// New builds a Mixpanel destination from cfg, checking its settings (see
// [ParseSettings]).
func New(_ context.Context, cfg deliver.Config) (deliver.Destination, error) {
	s, err := ParseSettings(cfg.Settings)
	if err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	client, logger := cfg.HTTP, cfg.Logger
	d := &destination{s: s, client: client, log: logger}
	d.maxBody = [numEndpoints]int{importAPI: maxImportBody, engageAPI: maxProfileBody, groupsAPI: maxProfileBody}
	user, password, withProject := s.importAuth()
	d.urls[importAPI] = s.baseURL() + "/import?strict=1"
	if withProject {
		d.urls[importAPI] += "&project_id=" + url.QueryEscape(s.ProjectID)
	}
	d.urls[engageAPI] = s.baseURL() + "/engage?verbose=1"
	d.urls[groupsAPI] = s.baseURL() + "/groups?verbose=1"
	d.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	return d, nil
}

// destination sends to one Mixpanel project. It holds no mutable state:
// Send may be called from any number of goroutines at once.
type destination struct {
	s       Settings
	client  *http.Client
	log     *slog.Logger
	urls    [numEndpoints]string
	auth    string // /import's Authorization header
	maxBody [numEndpoints]int
}

var _ deliver.Destination = (*destination)(nil)

// record is one mapped event on its way: its position in the Send, its
// JSON and, for /import, its $insert_id.
type record struct {
	idx      int
	body     []byte
	insertID string
}

// Send maps events and sends them: track, page and screen calls to
// /import in strict mode, identify calls to /engage, group calls to
// /groups, each in as few requests as the size limits allow. It returns
// each event's own Result, in order: an /import answer that refuses some
// events (400 with failed_records) discards exactly those. It is safe for
// concurrent use; when ctx ends, what was not sent is retried.
func (d *destination) Send(ctx context.Context, events []*deliver.Event) []deliver.Result {
	results := make([]deliver.Result, len(events))
	var batches [numEndpoints][]record
	for i, ev := range events {
		m, res := d.mapEvent(ev)
		if res != nil {
			results[i] = *res
			continue
		}
		batches[m.to] = append(batches[m.to], record{idx: i, body: m.body, insertID: m.insertID})
	}
	for to, recs := range batches {
		d.sendAll(ctx, endpoint(to), recs, results)
	}
	return results
}

// Close implements [deliver.Destination]; the HTTP client is the
// engine's, so there is nothing to release.
func (d *destination) Close() error { return nil }

// sendAll sends recs to one endpoint in requests under its body limit.
// After a request that is to be retried as a whole (429, 5xx, timeout),
// the rest are not sent but retried with it: Mixpanel's rate limit is per
// project, and the engine's backoff is the place to wait.
func (d *destination) sendAll(ctx context.Context, to endpoint, recs []record, results []deliver.Result) {
	for len(recs) > 0 {
		n, size := 0, 2 // the brackets
		for n < len(recs) && (n == 0 || size+1+len(recs[n].body) <= d.maxBody[to]) {
			size += len(recs[n].body) + 1
			n++
		}
		if stop := d.post(ctx, to, recs[:n], results); stop != nil {
			fill(results, recs[n:], notSent(*stop))
			return
		}
		recs = recs[n:]
	}
}

// post sends recs in one request and records each one's Result. It
// returns the Result when the whole request is to be retried, so that
// the caller stops sending.
func (d *destination) post(ctx context.Context, to endpoint, recs []record, results []deliver.Result) *deliver.Result {
	if err := ctx.Err(); err != nil {
		r := deliver.ClassifyError(err)
		fill(results, recs, r)
		return &r
	}
	var body bytes.Buffer
	body.Grow(2 + len(recs)*(len(recs[0].body)+1))
	body.WriteByte('[')
	for i, rec := range recs {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(rec.body)
	}
	body.WriteByte(']')
	h := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}
	if to == importAPI {
		h.Set("Authorization", d.auth)
	}
	resp, r := deliver.SendHTTP(ctx, d.client, deliver.HTTPRequest{URL: d.urls[to], Header: h, Body: body.Bytes(), Timeout: d.s.Timeout})
	switch {
	case resp == nil || r.Outcome == deliver.Retry:
		fill(results, recs, r)
		return &r
	case resp.StatusCode == http.StatusRequestEntityTooLarge && len(recs) > 1:
		half := len(recs) / 2
		d.log.Debug("splitting a request Mixpanel found too large", "endpoint", to.String(), "records", len(recs), "bytes", body.Len())
		if stop := d.post(ctx, to, recs[:half], results); stop != nil {
			fill(results, recs[half:], notSent(*stop))
			return stop
		}
		return d.post(ctx, to, recs[half:], results)
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		r.Error = "the event alone is more than Mixpanel takes in one request: " + r.Error
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		r.Error = "Mixpanel refused the credentials (check the settings): " + r.Error
	case to == importAPI && resp.StatusCode == http.StatusBadRequest:
		d.importRefusals(recs, resp, r, results)
		return nil
	case to != importAPI && r.Outcome == deliver.Delivered:
		r = profileAnswer(resp, r)
	}
	fill(results, recs, r)
	return nil
}

// failedRecord is one entry of a strict /import 400's failed_records.
type failedRecord struct {
	Index *int `json:"index"`
	// The reference names it insert_id; older pages show $insert_id.
	InsertID       string `json:"insert_id"`
	LegacyInsertID string `json:"$insert_id"`
	Field          string `json:"field"`
	Message        string `json:"message"`
}

func (f failedRecord) insertID() string { return first(f.InsertID, f.LegacyInsertID) }

// importAnswer is the body of a strict /import 400.
type importAnswer struct {
	Error    string         `json:"error"`
	Imported *int           `json:"num_records_imported"`
	Failed   []failedRecord `json:"failed_records"`
}

// importRefusals classifies a strict /import 400. Mixpanel documents it
// as a partial success: the events named in failed_records were refused,
// the others imported. So the named ones are discarded with Mixpanel's
// message and the rest delivered — unless the answer does not account
// for every event (its body cut at [deliver.MaxRecorded], or
// num_records_imported short), in which case the events it did not name
// are retried: their $insert_id makes a resend harmless. A 400 that names
// no event we sent refused the request as a whole.
func (d *destination) importRefusals(recs []record, resp *deliver.HTTPResponse, r deliver.Result, results []deliver.Result) {
	ans, complete := parseImportAnswer(resp.Body)
	failed := make(map[int]failedRecord, len(ans.Failed))
	for _, f := range ans.Failed {
		pos := -1
		if f.Index != nil && *f.Index >= 0 && *f.Index < len(recs) && (f.insertID() == "" || f.insertID() == recs[*f.Index].insertID) {
			pos = *f.Index
		} else if id := f.insertID(); id != "" {
			for i, rec := range recs {
				if _, done := failed[i]; !done && rec.insertID == id {
					pos = i
					break
				}
			}
		}
		if pos >= 0 {
			failed[pos] = f
		}
	}
	if len(failed) == 0 {
		fill(results, recs, r)
		return
	}
	unsure := !complete || (ans.Imported != nil && *ans.Imported+len(failed) < len(recs))
	for i, rec := range recs {
		res := deliver.Result{StatusCode: resp.StatusCode, Request: r.Request, Response: r.Response}
		if f, ok := failed[i]; ok {
			res.Outcome, res.Reason = deliver.Discard, r.Reason
			res.Error = fmt.Sprintf("Mixpanel refused the event: %s", first(f.Message, ans.Error, "failed validation"))
			if f.Field != "" && f.Message == "" {
				res.Error += " (" + f.Field + ")"
			}
		} else if unsure {
			res.Outcome, res.Reason = deliver.Retry, r.Reason
			res.Error = "Mixpanel's answer refused some events of the request without saying whether it imported this one; resending it (its $insert_id makes that safe)"
		} else {
			res.Outcome = deliver.Delivered
		}
		results[rec.idx] = res
	}
}

// parseImportAnswer reads a strict /import 400's body. When the body does
// not parse whole (SendHTTP keeps at most MaxRecorded bytes of it), it
// takes the failed records that come before the cut, and says the answer
// is incomplete.
func parseImportAnswer(body []byte) (ans importAnswer, complete bool) {
	if err := json.Unmarshal(body, &ans); err == nil {
		return ans, true
	}
	ans = importAnswer{}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ans, false
	}
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return ans, false
		}
		switch key {
		case "failed_records":
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return ans, false
			}
			for dec.More() {
				var f failedRecord
				if err := dec.Decode(&f); err != nil {
					return ans, false
				}
				ans.Failed = append(ans.Failed, f)
			}
			if _, err := dec.Token(); err != nil {
				return ans, false
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return ans, false
			}
			if key == "num_records_imported" {
				var n int
				if json.Unmarshal(skip, &n) == nil {
					ans.Imported = &n
				}
			}
		}
	}
	return ans, false
}

// profileAnswer classifies a 200 from /engage or /groups, which Mixpanel
// answers even when it refuses the updates: the body says. With
// verbose=1 it is {"status": 1} or {"status": 0, "error": "…"}; without,
// 1 or 0. A refusal is permanent (a wrong token, a malformed update) and
// covers the request: Mixpanel does not say which update failed.
func profileAnswer(resp *deliver.HTTPResponse, r deliver.Result) deliver.Result {
	b := bytes.TrimSpace(resp.Body)
	var v struct {
		Status json.RawMessage `json:"status"`
		Error  string          `json:"error"`
	}
	refused := string(b) == "0"
	if !refused && json.Unmarshal(b, &v) == nil {
		s := string(bytes.TrimSpace(v.Status))
		refused = s == "0" || s == `"0"`
	}
	if refused {
		r.Outcome, r.Reason = deliver.Discard, deliver.ReasonDestinationError
		r.Error = "Mixpanel refused the profile updates: " + first(v.Error, "it answered status 0 without a reason")
	}
	return r
}

// notSent is the Result of records left unsent after a request answered
// r, to be retried with it.
func notSent(r deliver.Result) deliver.Result {
	return deliver.Result{Outcome: deliver.Retry, Reason: r.Reason, RetryAfter: r.RetryAfter,
		Error: "not sent: an earlier request of the batch was answered: " + r.Error}
}

func fill(results []deliver.Result, recs []record, r deliver.Result) {
	for _, rec := range recs {
		results[rec.idx] = r
	}
}
