package profile

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/httpapi"
	"golang.org/x/time/rate"
)

// Space is the Profile API's space: its id and access token, the event
// history's retention and the request rate it allows.
type Space struct {
	ID          string
	AccessToken string
	Retention   time.Duration
	// RateLimit is requests per second; 0: none.
	RateLimit float64
}

// API serves Segment's Profile API (spec §6.4) over a [Reader].
type API struct {
	reader *Reader
	space  func() Space
	rules  func() *identity.Rules
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	limiter *rate.Limiter
	limit   float64
}

// NewAPI returns the Profile API of the space space returns (read on
// every request, so that a reload takes effect at once).
func NewAPI(reader *Reader, space func() Space, rules func() *identity.Rules, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{reader: reader, space: space, rules: rules, logger: logger, now: time.Now}
}

// Register mounts the Profile API on mux.
func (a *API) Register(mux *http.ServeMux) {
	base := "GET /v1/spaces/{space}/collections/{collection}/profiles/{id}/"
	mux.Handle(base+"traits", a.handle(a.traits))
	mux.Handle(base+"external_ids", a.handle(a.externalIDs))
	mux.Handle(base+"events", a.handle(a.events))
	mux.Handle(base+"metadata", a.handle(a.metadata))
	mux.Handle(base+"links", a.handle(a.links))
}

// apiError is an error answer in Segment's shape.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "validation_error", fmt.Sprintf(format, args...)}
}

// request is one authenticated request for one profile.
type request struct {
	r       *http.Request
	q       url.Values
	space   Space
	coll    string
	id      identity.ID
	profile identity.ProfileID
}

// handle authenticates, rate-limits and resolves the profile, then runs fn.
func (a *API) handle(fn func(*request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Request-Id", requestID())
		body, err := a.serve(r, fn)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				a.logger.Error("profile API request failed", "path", r.URL.Path, "err", err)
				ae = &apiError{http.StatusInternalServerError, "internal_error", "the profile store could not answer; try again"}
			}
			if ae.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="Conflux Profile API"`)
			}
			httpapi.WriteError(w, ae.status, ae.code, ae.message)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, body)
	})
}

func (a *API) serve(r *http.Request, fn func(*request) (any, error)) (any, error) {
	sp := a.space()
	user, _, ok := r.BasicAuth()
	if !ok || sp.AccessToken == "" || subtle.ConstantTimeCompare([]byte(user), []byte(sp.AccessToken)) != 1 {
		return nil, &apiError{http.StatusUnauthorized, "authentication_error", "use HTTP Basic auth with the space's access token as the user name and an empty password"}
	}
	if r.PathValue("space") != sp.ID {
		return nil, &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("no space %q (this server's space is %q)", r.PathValue("space"), sp.ID)}
	}
	if !a.allow(sp.RateLimit) {
		return nil, &apiError{http.StatusTooManyRequests, "rate_limit_error", fmt.Sprintf("more than %g requests per second to this space; slow down", sp.RateLimit)}
	}
	req := &request{r: r, q: r.URL.Query(), space: sp, coll: r.PathValue("collection")}
	if req.coll != identity.Users && req.coll != identity.Accounts {
		return nil, &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("no collection %q: use users or accounts", req.coll)}
	}
	typ, val, ok := strings.Cut(r.PathValue("id"), ":")
	if !ok || typ == "" || val == "" {
		return nil, badRequest("profile identifier %q: write it as type:value, such as user_id:123 or email:ada%%40example.com", r.PathValue("id"))
	}
	req.id = identity.ID{Type: strings.ToLower(typ), Value: val}
	if req.id.Type == "segment_id" || req.id.Type == "profile_id" {
		p, ok := identity.ParseProfileID(val)
		if !ok {
			return nil, badRequest("profile id %q: want prf_<number>", val)
		}
		live, coll, err := a.reader.Survivor(r.Context(), p)
		if err == nil && coll != req.coll {
			err = ErrNotFound
		}
		req.profile = live
		if err != nil {
			return nil, a.notFound(req, err)
		}
	} else {
		p, err := a.reader.Lookup(r.Context(), req.coll, req.id)
		if err != nil {
			return nil, a.notFound(req, err)
		}
		req.profile = p
	}
	return fn(req)
}

func (a *API) notFound(req *request, err error) error {
	if errors.Is(err, ErrNotFound) {
		return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("no profile with %s in %s", req.id, req.coll)}
	}
	return err
}

// allow takes a token from the space's rate limiter.
func (a *API) allow(perSecond float64) bool {
	if perSecond <= 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.limiter == nil || a.limit != perSecond {
		a.limiter, a.limit = rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond))), perSecond
	}
	return a.limiter.Allow()
}

func requestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cursor is the Profile API's pagination object.
type cursor struct {
	URL     string `json:"url"`
	HasMore bool   `json:"has_more"`
	Next    string `json:"next"`
	Limit   int    `json:"limit"`
}

func (req *request) cursor(more bool, next string, limit int) cursor {
	c := cursor{URL: req.r.URL.Path, HasMore: more, Limit: limit}
	if more {
		c.Next = next
	}
	return c
}

// check refuses unknown parameters.
func (req *request) check(known ...string) error {
	if err := httpapi.CheckParams(req.q, known...); err != nil {
		return &apiError{http.StatusBadRequest, "invalid_request_error", err.Error()}
	}
	return nil
}

func (req *request) limit(def, most int) (int, error) {
	n, err := httpapi.QueryLimit(req.q.Get("limit"), def, most)
	if err != nil {
		return 0, badRequest("%v", err)
	}
	return n, nil
}

func (req *request) list(key string) []string {
	var out []string
	for part := range strings.SplitSeq(req.q.Get(key), ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (a *API) traits(req *request) (any, error) {
	if err := req.check("class", "include", "limit", "next", "verbose"); err != nil {
		return nil, err
	}
	limit, err := req.limit(10, 200)
	if err != nil {
		return nil, err
	}
	verbose := req.q.Get("verbose") == "true"
	out := map[string]any{}
	switch class := req.q.Get("class"); class {
	case "", "traits", "custom_trait":
	case "audience", "computed_trait":
		// Computed traits and audiences are not kept yet: none to show.
		return map[string]any{"traits": out, "cursor": req.cursor(false, "", limit)}, nil
	default:
		return nil, badRequest("class %q: use audience or computed_trait", class)
	}
	traits, more, err := a.reader.Traits(req.r.Context(), req.profile, req.list("include"), req.q.Get("next"), limit)
	if err != nil {
		return nil, err
	}
	for _, t := range traits {
		if verbose {
			out[t.Key] = t
		} else {
			out[t.Key] = t.Value
		}
	}
	next := ""
	if len(traits) > 0 {
		next = traits[len(traits)-1].Key
	}
	return map[string]any{"traits": out, "cursor": req.cursor(more, next, limit)}, nil
}

func (a *API) externalIDs(req *request) (any, error) {
	if err := req.check("include", "limit", "next", "verbose"); err != nil {
		return nil, err
	}
	limit, err := req.limit(10, 100)
	if err != nil {
		return nil, err
	}
	var after *IDCursor
	if s := req.q.Get("next"); s != "" {
		c, ok := decodeIDCursor(s)
		if !ok {
			return nil, badRequest("next %q is not a cursor this endpoint gave", s)
		}
		after = &c
	}
	ids, more, err := a.reader.ExternalIDs(req.r.Context(), req.coll, req.profile, req.list("include"), after, limit)
	if err != nil {
		return nil, err
	}
	next := ""
	if len(ids) > 0 {
		last := ids[len(ids)-1]
		next = encodeCursor(strconv.FormatInt(last.CreatedAt.UnixMilli(), 10), last.Type, last.ID)
	}
	if ids == nil {
		ids = []ExternalID{}
	}
	return map[string]any{"data": ids, "cursor": req.cursor(more, next, limit)}, nil
}

func (a *API) events(req *request) (any, error) {
	if err := req.check("start", "end", "include", "exclude", "limit", "next", "sort"); err != nil {
		return nil, err
	}
	limit, err := req.limit(10, 100)
	if err != nil {
		return nil, err
	}
	now := a.now()
	q := EventQuery{From: now.Add(-req.space.Retention), To: now.Add(24 * time.Hour), Limit: limit}
	for key, into := range map[string]*time.Time{"start": &q.From, "end": &q.To} {
		t, err := httpapi.QueryTime(key, req.q.Get(key))
		if err != nil {
			return nil, badRequest("%v", err)
		}
		if !t.IsZero() {
			*into = t
		}
	}
	switch req.q.Get("sort") {
	case "", "desc":
	case "asc":
		q.Asc = true
	default:
		return nil, badRequest("sort %q: use asc or desc", req.q.Get("sort"))
	}
	if s := req.q.Get("next"); s != "" {
		parts, ok := decodeCursor(s, 2)
		at, err1 := strconv.ParseInt(parts[0], 10, 64)
		seq, err2 := strconv.ParseInt(parts[1], 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, badRequest("next %q is not a cursor this endpoint gave", s)
		}
		q.After = &StoredEvent{At: at, Seq: seq}
	}
	include, exclude := req.list("include"), req.list("exclude")
	rules := a.rules()
	data := []map[string]any{}
	more := false
	// include and exclude filter by event name after reading. A page reads
	// on until it has limit events and knows whether one more follows, or
	// has scanned maxEventScan events: then it stops where it is, with a
	// cursor to go on from there.
	const maxEventScan = 2000
	if len(include)+len(exclude) > 0 {
		q.Limit = max(limit, 100) // read in larger pages when most may be filtered out
	}
	scanned := 0
	var cur *StoredEvent // the cursor: the last event returned or scanned
scan:
	for {
		page, pageMore, err := a.reader.Events(req.r.Context(), req.profile, q)
		if err != nil {
			return nil, err
		}
		for i := range page {
			e := &page[i]
			item, name := eventItem(e.Body, rules)
			if (len(include) > 0 && !slices.Contains(include, name)) || slices.Contains(exclude, name) {
				scanned++
				q.After = e
				if scanned >= maxEventScan {
					cur, more = e, true
					break scan
				}
				continue
			}
			if len(data) == limit {
				more = true // one more matches: the page ends at the last one returned
				break scan
			}
			item["source_id"] = e.SourceID
			data = append(data, item)
			cur, q.After = e, e
			scanned++
		}
		if !pageMore {
			break
		}
	}
	next := ""
	if cur != nil {
		next = encodeCursor(strconv.FormatInt(cur.At, 10), strconv.FormatInt(cur.Seq, 10))
	}
	return map[string]any{"data": data, "cursor": req.cursor(more, next, limit)}, nil
}

// eventItem renders a stored event as the events endpoint lists it, and
// returns its name (a track's event, a page's or screen's name, else its
// type) for include and exclude.
func eventItem(body []byte, rules *identity.Rules) (map[string]any, string) {
	doc, err := event.Decode(body)
	if err != nil {
		return map[string]any{"error": "event not readable"}, ""
	}
	typ, _ := doc["type"].(string)
	item := map[string]any{"type": typ, "message_id": doc["messageId"], "timestamp": doc["timestamp"], "context": doc["context"]}
	name := typ
	switch typ {
	case event.Track:
		item["event"], item["properties"] = doc["event"], doc["properties"]
		name, _ = doc["event"].(string)
	case event.Page, event.Screen:
		item["name"], item["properties"] = doc["name"], doc["properties"]
		if n, _ := doc["name"].(string); n != "" {
			name = n
		}
	case event.Identify, event.Group:
		item["traits"] = doc["traits"]
		if typ == event.Group {
			item["group_id"] = doc["groupId"]
		}
	case event.Alias:
		item["previous_id"] = doc["previousId"]
	}
	for _, k := range []string{"properties", "traits"} {
		if v, ok := item[k]; ok && v == nil {
			item[k] = map[string]any{} // absent in the event: empty, as Segment shows it
		}
	}
	if src, ok := doc["receivedAt"]; ok {
		item["receipt_ts"] = src
	}
	ex := rules.Extract(doc)
	ids := make([]map[string]string, 0, len(ex.Users))
	for _, id := range ex.Users {
		ids = append(ids, map[string]string{"collection": identity.Users, "type": id.Type, "id": id.Value, "encoding": "none"})
	}
	item["external_ids"] = ids
	return item, name
}

func (a *API) metadata(req *request) (any, error) {
	if err := req.check("verbose"); err != nil {
		return nil, err
	}
	m, err := a.reader.Metadata(req.r.Context(), req.profile)
	if err != nil {
		return nil, a.notFound(req, err)
	}
	return map[string]any{"metadata": m}, nil
}

func (a *API) links(req *request) (any, error) {
	if err := req.check("limit", "next"); err != nil {
		return nil, err
	}
	limit, err := req.limit(20, 100)
	if err != nil {
		return nil, err
	}
	var after identity.ProfileID
	if s := req.q.Get("next"); s != "" {
		parts, ok := decodeCursor(s, 1)
		n, err := strconv.ParseInt(parts[0], 10, 64)
		if !ok || err != nil {
			return nil, badRequest("next %q is not a cursor this endpoint gave", s)
		}
		after = identity.ProfileID(n)
	}
	other := identity.Accounts
	if req.coll == identity.Accounts {
		other = identity.Users
	}
	linked, more, err := a.reader.Links(req.r.Context(), req.coll, req.profile, after, limit)
	if err != nil {
		return nil, err
	}
	data := []map[string]any{}
	for _, p := range linked {
		ids, _, err := a.reader.ExternalIDs(req.r.Context(), other, p, nil, nil, 100)
		if err != nil {
			return nil, err
		}
		data = append(data, map[string]any{"to_collection": other, "external_ids": ids})
	}
	next := ""
	if len(linked) > 0 {
		next = encodeCursor(strconv.FormatInt(int64(linked[len(linked)-1]), 10))
	}
	return map[string]any{"data": data, "cursor": req.cursor(more, next, limit)}, nil
}

// encodeCursor packs parts into an opaque next cursor.
func encodeCursor(parts ...string) string {
	b, _ := json.Marshal(parts)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor unpacks a cursor of n parts.
func decodeCursor(s string, n int) ([]string, bool) {
	out := make([]string, n)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return out, false
	}
	var parts []string
	if json.Unmarshal(b, &parts) != nil || len(parts) != n {
		return out, false
	}
	return parts, true
}

func decodeIDCursor(s string) (IDCursor, bool) {
	parts, ok := decodeCursor(s, 3)
	at, err := strconv.ParseInt(parts[0], 10, 64)
	if !ok || err != nil {
		return IDCursor{}, false
	}
	return IDCursor{At: at, Type: parts[1], Value: parts[2]}, true
}
