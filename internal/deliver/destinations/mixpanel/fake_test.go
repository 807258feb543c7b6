package mixpanel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a Mixpanel ingestion server built from Mixpanel's API reference
// (docs.mixpanel.com/reference): /import in strict mode with its
// validation rules and failed_records answers, 401 on bad credentials,
// 413 over its limits; /engage and /groups answering 200 with a verbose
// status. It records every request, and answers from a script first when
// a test asks for 429, 5xx or anything else.
type fake struct {
	t   *testing.T
	srv *httptest.Server

	// Credentials it accepts.
	projectID, user, password string // service account
	apiSecret, token          string

	// Limits: events per /import request and body bytes (Mixpanel: 2000,
	// 10 MB).
	maxEvents, maxBytes int

	mu       sync.Mutex
	requests []fakeRequest
	imported []json.RawMessage // events it accepted
	profiles []json.RawMessage // updates it accepted (/engage and /groups)
	script   []scripted
}

type fakeRequest struct {
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// scripted is an answer a test orders for the next request to a path.
type scripted struct {
	path   string
	status int
	header http.Header
	body   string
	// hold, when set, keeps the request until it is closed or the client
	// gives up.
	hold chan struct{}
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, projectID: "2195193", user: "conflux.sa", password: "sa-secret",
		apiSecret: "api-secret", token: "tok123", maxEvents: 2000, maxBytes: 10 << 20}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /import", f.importHandler)
	mux.HandleFunc("POST /engage", f.profileHandler)
	mux.HandleFunc("POST /groups", f.profileHandler)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fake Mixpanel: unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	f.srv = httptest.NewServer(f.record(mux))
	t.Cleanup(f.srv.Close)
	return f
}

// answer queues a scripted answer for the next request to path.
func (f *fake) answer(s scripted) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, s)
}

func (f *fake) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			f.t.Errorf("fake Mixpanel: reading the body: %v", err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, fakeRequest{Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		var s *scripted
		for i := range f.script {
			if f.script[i].path == r.URL.Path {
				s = &f.script[i]
				f.script = append(f.script[:i:i], f.script[i+1:]...)
				break
			}
		}
		f.mu.Unlock()
		if s == nil {
			next.ServeHTTP(w, r)
			return
		}
		if s.hold != nil {
			select {
			case <-s.hold:
			case <-r.Context().Done():
				return
			}
		}
		for k, vs := range s.header {
			w.Header()[k] = vs
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		io.WriteString(w, s.body)
	})
}

func (f *fake) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		f.t.Errorf("fake Mixpanel: writing the answer: %v", err)
	}
}

// importHandler is POST /import.
func (f *fake) importHandler(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("strict") != "1" {
		f.t.Errorf("fake Mixpanel: /import without strict=1: %s", r.URL.RawQuery)
	}
	user, password, ok := r.BasicAuth()
	var authed bool
	if q.Has("project_id") {
		// Service account authentication, against the project.
		authed = ok && user == f.user && password == f.password && q.Get("project_id") == f.projectID
	} else {
		// Without project_id: the API secret or the project token, as the
		// Basic user with an empty password.
		authed = ok && password == "" && (user == f.apiSecret || user == f.token)
	}
	if !authed {
		f.reply(w, http.StatusUnauthorized, map[string]any{"code": 401, "error": "Invalid credentials", "status": "Unauthorized"})
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("fake Mixpanel: /import Content-Type %q", ct)
	}
	body, _ := io.ReadAll(r.Body)
	if len(body) > f.maxBytes {
		f.reply(w, http.StatusRequestEntityTooLarge, map[string]any{"code": 413,
			"error": fmt.Sprintf("request exceeds max limit of %d bytes", f.maxBytes), "status": "Request Entity Too Large"})
		return
	}
	var events []json.RawMessage
	if err := json.Unmarshal(body, &events); err != nil || len(events) == 0 {
		f.reply(w, http.StatusBadRequest, map[string]any{"code": 400, "error": "unable to parse the request body as a JSON array", "status": "Bad Request"})
		return
	}
	if len(events) > f.maxEvents {
		f.reply(w, http.StatusRequestEntityTooLarge, map[string]any{"code": 413,
			"error": fmt.Sprintf("request exceeds max limit of %d events", f.maxEvents), "status": "Request Entity Too Large"})
		return
	}
	var failed []map[string]any
	var good []json.RawMessage
	for i, raw := range events {
		field, msg, id := validateEvent(raw)
		if msg != "" {
			failed = append(failed, map[string]any{"index": i, "insert_id": id, "field": field, "message": msg})
			continue
		}
		good = append(good, raw)
	}
	f.mu.Lock()
	f.imported = append(f.imported, good...)
	f.mu.Unlock()
	if len(failed) > 0 {
		f.reply(w, http.StatusBadRequest, map[string]any{"code": 400, "error": "some data points in the request failed validation",
			"status": "Bad Request", "num_records_imported": len(good), "failed_records": failed})
		return
	}
	f.reply(w, http.StatusOK, map[string]any{"code": 200, "num_records_imported": len(good), "status": "OK"})
}

// validateEvent applies /import's documented rules to one event: an event
// name; time in seconds or milliseconds, after 1971 and at most an hour
// ahead; a distinct_id that is a string and not a placeholder; an
// $insert_id of at most 36 letters, digits or "-". It returns the failing
// field and message, and the event's $insert_id.
func validateEvent(raw json.RawMessage) (field, msg, insertID string) {
	var e struct {
		Event      *string                    `json:"event"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return "", "event is not a JSON object", ""
	}
	_ = json.Unmarshal(e.Properties["$insert_id"], &insertID)
	if e.Event == nil || *e.Event == "" {
		return "event", "'event' is required", insertID
	}
	if e.Properties == nil {
		return "properties", "'properties' is required", insertID
	}
	if len(e.Properties) >= 255 {
		return "properties", "must have fewer than 255 properties", insertID
	}
	var t float64
	if err := json.Unmarshal(e.Properties["time"], &t); err != nil {
		return "properties.time", "'properties.time' is invalid: must be specified as seconds since epoch", insertID
	}
	ms := t
	if t < 1e11 { // seconds
		ms = t * 1000
	}
	if ms < float64(time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()) || ms > float64(time.Now().Add(time.Hour).UnixMilli()) {
		return "properties.time", "'properties.time' is invalid: must be after 1971-01-01 and at most an hour in the future", insertID
	}
	var distinct *string
	if err := json.Unmarshal(e.Properties["distinct_id"], &distinct); err != nil || distinct == nil {
		return "properties.distinct_id", "'properties.distinct_id' is required and must be a string", insertID
	}
	if slices.Contains(placeholderIDs, strings.ToLower(*distinct)) {
		return "properties.distinct_id", fmt.Sprintf("'properties.distinct_id' is invalid: %q is not allowed", *distinct), insertID
	}
	if !insertIDForm.MatchString(insertID) || slices.Contains(placeholderIDs, strings.ToLower(insertID)) {
		return "properties.$insert_id", "'properties.$insert_id' is invalid: must be at most 36 alphanumeric characters or '-'", insertID
	}
	return "", "", insertID
}

// placeholderIDs are the values /import refuses as a distinct_id or an
// $insert_id (Mixpanel's list, kept apart from the package's own).
var placeholderIDs = []string{"00000000-0000-0000-0000-000000000000", "anon", "anonymous", "nil", "none",
	"null", "n/a", "na", "undefined", "unknown", "<nil>", "0", "-1", "true", "false", "[]", "{}"}

// insertIDForm is what /import takes as an $insert_id.
var insertIDForm = regexp.MustCompile(`^[A-Za-z0-9-]{1,36}$`)

// profileHandler is POST /engage and POST /groups: 200 always, with
// {"status": 1} when every update is well-formed and carries the project
// token, {"status": 0, "error": …} otherwise.
func (f *fake) profileHandler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("verbose") != "1" {
		f.t.Errorf("fake Mixpanel: %s without verbose=1", r.URL.Path)
	}
	var updates []map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&updates); err != nil || len(updates) == 0 {
		f.reply(w, http.StatusOK, map[string]any{"status": 0, "error": "data, missing or empty"})
		return
	}
	if len(updates) > 2000 {
		f.reply(w, http.StatusBadRequest, map[string]any{"status": 0, "error": "more than 2000 updates"})
		return
	}
	idKeys := []string{"$distinct_id"}
	if r.URL.Path == "/groups" {
		idKeys = []string{"$group_key", "$group_id"}
	}
	for _, u := range updates {
		var token string
		if json.Unmarshal(u["$token"], &token) != nil || token != f.token {
			f.reply(w, http.StatusOK, map[string]any{"status": 0, "error": "token, missing or empty"})
			return
		}
		for _, k := range idKeys {
			var id string
			if json.Unmarshal(u[k], &id) != nil || id == "" {
				f.reply(w, http.StatusOK, map[string]any{"status": 0, "error": k + ", missing or empty"})
				return
			}
		}
		var set map[string]any
		if json.Unmarshal(u["$set"], &set) != nil || set == nil {
			f.reply(w, http.StatusOK, map[string]any{"status": 0, "error": "$set must be an object"})
			return
		}
	}
	f.mu.Lock()
	for _, u := range updates {
		b, _ := json.Marshal(u)
		f.profiles = append(f.profiles, b)
	}
	f.mu.Unlock()
	f.reply(w, http.StatusOK, map[string]any{"status": 1, "error": nil})
}

// snapshot returns what the fake has seen so far.
func (f *fake) snapshot() (reqs []fakeRequest, imported, profiles []json.RawMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...), append([]json.RawMessage(nil), f.imported...),
		append([]json.RawMessage(nil), f.profiles...)
}
