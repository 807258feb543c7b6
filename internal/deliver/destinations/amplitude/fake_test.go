package amplitude

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// fake is an Amplitude ingestion server (HTTP V2 and Batch Event Upload)
// built from Amplitude's documented request and response shapes:
//
//   - POST /2/httpapi and POST /batch, Content-Type application/json, a
//     body {"api_key", "events", "options"}; any other route fails the test;
//   - 400 "Invalid JSON request body", "Request missing required field"
//     with missing_field, "Invalid API key: <key>";
//   - 413 {"code":413,"error":"Payload too large"} over maxBytes or
//     maxEvents;
//   - per event: event_type required (events_with_missing_fields), time an
//     integer (events_with_invalid_fields), IDs shorter than min_id_length
//     (default 5) dropped, an event left without one rejected
//     (events_with_invalid_id_lengths); scripted invalid fields by insert_id;
//     any of them rejects the whole request with 400;
//   - 429 for scripted throttled or over-quota users, with throttled_users,
//     exceeded_daily_quota_users and throttled_events; the whole request is
//     rejected;
//   - 200 {"code":200,"events_ingested",…}, ingesting the events and
//     dropping repeats of an insert_id (Amplitude's deduplication).
//
// It records every request. Scripted statuses (statuses) answer the next
// requests before any validation; hang makes requests wait until the
// client gives up.
type fake struct {
	t      *testing.T
	srv    *httptest.Server
	apiKey string

	mu           sync.Mutex
	maxBytes     int
	maxEvents    int
	throttled    map[string]bool   // user_id → throttled (30 eps)
	overQuota    map[string]bool   // user_id → over the daily quota
	invalidField map[string]string // insert_id → the field Amplitude finds invalid
	statuses     []scripted        // answers for the next requests
	hang         bool
	requests     []fakeRequest
	ingested     []map[string]any
	seen         map[string]bool // insert_ids ingested
}

type scripted struct {
	status int
	header http.Header
	body   string
}

// fakeRequest is one request the fake received.
type fakeRequest struct {
	Path   string
	Header http.Header
	Body   []byte
	Events []map[string]any
	Status int
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, apiKey: "test-api-key-0123456789", maxBytes: 1 << 20, maxEvents: 2000,
		throttled: map[string]bool{}, overQuota: map[string]bool{}, invalidField: map[string]string{},
		seen: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2/httpapi", f.upload)
	mux.HandleFunc("POST /batch", f.upload)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fake Amplitude: unexpected request %s %s", r.Method, r.URL.Path)
		http.Error(w, `{"code":404,"error":"Invalid request path"}`, http.StatusNotFound)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// url is the fake's endpoint for path ("/2/httpapi" or "/batch").
func (f *fake) url(path string) string { return f.srv.URL + path }

func (f *fake) reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(body); err != nil {
		f.t.Errorf("fake Amplitude: writing the answer: %v", err)
	}
}

func (f *fake) upload(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away
	}
	f.mu.Lock()
	req := fakeRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	status, answer, header := f.answer(r, body, &req)
	req.Status = status
	f.requests = append(f.requests, req)
	hang := f.hang
	f.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	for k, vs := range header {
		w.Header()[k] = vs
	}
	if s, ok := answer.(string); ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, s)
		return
	}
	f.reply(w, status, answer)
}

// answer decides the fake's answer to one request; f.mu is held.
func (f *fake) answer(r *http.Request, body []byte, req *fakeRequest) (int, any, http.Header) {
	var peek struct {
		Events []map[string]any `json:"events"`
	}
	if json.Unmarshal(body, &peek) == nil {
		req.Events = peek.Events
	}
	if len(f.statuses) > 0 {
		s := f.statuses[0]
		f.statuses = f.statuses[1:]
		return s.status, s.body, s.header
	}
	if r.Header.Get("Content-Type") != "application/json" {
		return 400, map[string]any{"code": 400, "error": "Invalid content type, expected application/json"}, nil
	}
	if len(body) > f.maxBytes {
		return 413, map[string]any{"code": 413, "error": "Payload too large"}, nil
	}
	var in struct {
		APIKey  *string           `json:"api_key"`
		Events  []json.RawMessage `json:"events"`
		Options struct {
			MinIDLength *int `json:"min_id_length"`
		} `json:"options"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return 400, map[string]any{"code": 400, "error": "Invalid JSON request body"}, nil
	}
	switch {
	case in.APIKey == nil:
		return 400, map[string]any{"code": 400, "error": "Request missing required field", "missing_field": "api_key"}, nil
	case len(in.Events) == 0:
		return 400, map[string]any{"code": 400, "error": "Request missing required field", "missing_field": "events"}, nil
	case *in.APIKey != f.apiKey:
		return 400, map[string]any{"code": 400, "error": "Invalid API key: " + *in.APIKey}, nil
	case len(in.Events) > f.maxEvents:
		return 413, map[string]any{"code": 413, "error": "Payload too large"}, nil
	}
	minLen := 5
	if in.Options.MinIDLength != nil {
		minLen = *in.Options.MinIDLength
	}
	invalid, missing, idLengths := map[string][]int{}, map[string][]int{}, map[string][]int{}
	throttledUsers, quotaUsers := map[string]int{}, map[string]int{}
	var throttledEvents []int
	events := make([]map[string]any, len(in.Events))
	for i, raw := range in.Events {
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			return 400, map[string]any{"code": 400, "error": "Invalid event JSON"}, nil
		}
		events[i] = ev
		if s, _ := ev["event_type"].(string); s == "" {
			missing["event_type"] = append(missing["event_type"], i)
		}
		if t, ok := ev["time"]; ok {
			if n, isNum := t.(float64); !isNum || n != float64(int64(n)) {
				invalid["time"] = append(invalid["time"], i)
			}
		}
		if field, ok := f.invalidField[str2(ev["insert_id"])]; ok {
			invalid[field] = append(invalid[field], i)
		}
		user, device := str2(ev["user_id"]), str2(ev["device_id"])
		if utf8.RuneCountInString(user) < minLen {
			user = ""
		}
		if utf8.RuneCountInString(device) < minLen {
			device = ""
		}
		if user == "" && device == "" {
			idLengths["user_id"] = append(idLengths["user_id"], i)
		}
		switch {
		case user != "" && f.overQuota[user]:
			quotaUsers[user] = 500_200
			throttledEvents = append(throttledEvents, i)
		case user != "" && f.throttled[user]:
			throttledUsers[user] = 40
			throttledEvents = append(throttledEvents, i)
		}
	}
	if len(invalid)+len(missing)+len(idLengths) > 0 {
		a := map[string]any{"code": 400, "error": "Invalid field values on some events"}
		for k, v := range map[string]map[string][]int{"events_with_invalid_fields": invalid,
			"events_with_missing_fields": missing, "events_with_invalid_id_lengths": idLengths} {
			if len(v) > 0 {
				a[k] = v
			}
		}
		return 400, a, nil
	}
	if len(throttledEvents) > 0 {
		return 429, map[string]any{"code": 429, "error": "Too many requests for some devices and users",
			"eps_threshold": 30, "throttled_devices": map[string]int{}, "throttled_users": throttledUsers,
			"exceeded_daily_quota_users": quotaUsers, "throttled_events": throttledEvents}, nil
	}
	for _, ev := range events {
		if id := str2(ev["insert_id"]); id != "" {
			if f.seen[id] {
				continue
			}
			f.seen[id] = true
		}
		f.ingested = append(f.ingested, ev)
	}
	return 200, map[string]any{"code": 200, "events_ingested": len(events), "payload_size_bytes": len(body),
		"server_upload_time": time.Now().UnixMilli()}, nil
}

func str2(v any) string {
	s, _ := v.(string)
	return s
}

// script queues answers for the next requests; call it inside configure.
func (f *fake) script(s ...scripted) { f.statuses = append(f.statuses, s...) }

// configure changes the fake's behaviour under its lock.
func (f *fake) configure(fn func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// received returns the requests so far.
func (f *fake) received() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// ingestedIDs returns the insert_ids Amplitude has, sorted.
func (f *fake) ingestedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.seen))
}

// batchSizes returns how many events each request carried.
func (f *fake) batchSizes() []int {
	var out []int
	for _, r := range f.received() {
		out = append(out, len(r.Events))
	}
	return out
}

// statusesSeen returns the status of each answer so far, as text.
func (f *fake) statusesSeen() string {
	var b bytes.Buffer
	for i, r := range f.received() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(r.Status))
	}
	return b.String()
}
