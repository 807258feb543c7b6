package deliver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/confluxcdp/conflux/internal/stream"
)

// Job states, as Centrifuge names them.
const (
	StateExecuting     = "executing"
	StateAwaitingRetry = "awaiting_retry"
	StateDiscarded     = "discarded"
	StateExpired       = "expired"
)

// JobState is where one event stands with one destination.
type JobState struct {
	DestinationID string     `json:"destination_id"`
	MessageID     string     `json:"message_id"`
	SourceID      string     `json:"source_id"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	FirstAttempt  *time.Time `json:"first_attempt_at,omitempty"`
	NextRetry     *time.Time `json:"next_retry_at,omitempty"`
	LastStatus    int        `json:"last_status_code,omitempty"`
	LastReason    string     `json:"last_reason,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	ReplayID      string     `json:"replay_id,omitempty"`
	DeadLetterID  int64      `json:"dead_letter_id,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func jobState(dest, state string, j *job) JobState {
	if j == nil {
		return JobState{DestinationID: dest, State: state}
	}
	return JobState{DestinationID: dest, MessageID: j.MessageID, SourceID: j.SourceID, State: state,
		Attempts: j.Attempts, FirstAttempt: timePtr(j.FirstAttemptAt), NextRetry: timePtr(j.NextAttemptAt),
		LastStatus: j.LastStatus, LastReason: j.LastReason, LastError: j.LastError, ReplayID: j.ReplayID}
}

// Register mounts the delivery API on mux, each route wrapped by auth:
//
//	GET  /api/v1/jobs?message_id=&destination=        where an event stands with each destination
//	GET  /api/v1/destinations/{id}/delivery            a queue's position, lag, breaker and backlog
//	GET  /api/v1/dead-letters?destination=&reason=&from=&to=&message_id=&after=&limit=
//	POST /api/v1/dead-letters/replay                  put dead letters back into their queues
//	GET  /api/v1/replays/{id}                         a replay's progress
func (e *Engine) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET /api/v1/jobs", auth(http.HandlerFunc(e.serveJobs)))
	mux.Handle("GET /api/v1/destinations/{id}/delivery", auth(http.HandlerFunc(e.serveQueue)))
	mux.Handle("GET /api/v1/dead-letters", auth(http.HandlerFunc(e.serveDeadLetters)))
	mux.Handle("POST /api/v1/dead-letters/replay", auth(http.HandlerFunc(e.serveReplay)))
	mux.Handle("GET /api/v1/replays/{id}", auth(http.HandlerFunc(e.serveReplayStatus)))
}

func badRequest(w http.ResponseWriter, msg string) {
	httpapi.WriteError(w, http.StatusBadRequest, "invalid_request", msg)
}

func internalError(w http.ResponseWriter, err error) {
	httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
}

func (e *Engine) serveJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := httpapi.CheckParams(q, "message_id", "destination"); err != nil {
		badRequest(w, err.Error())
		return
	}
	msg, dest := q.Get("message_id"), q.Get("destination")
	if msg == "" {
		badRequest(w, "message_id is required: the messageId of the event to look up")
		return
	}
	states := e.inFlight(dest, msg)
	dests, jobs, err := e.jobs.jobsOf(r.Context(), dest, msg, 100)
	if err != nil {
		internalError(w, err)
		return
	}
	executing := make(map[string]bool, len(states))
	for _, st := range states {
		executing[st.DestinationID] = true
	}
	for i := range jobs {
		if !executing[dests[i]] { // a retry in flight is listed once, as executing
			states = append(states, jobState(dests[i], StateAwaitingRetry, &jobs[i]))
		}
	}
	dead, err := e.jobs.deadLetters(r.Context(), deadFilter{Destination: dest, MessageID: msg}, 100, false)
	if err != nil {
		internalError(w, err)
		return
	}
	for _, d := range dead {
		s := StateDiscarded
		if d.Reason == DeadExpired {
			s = StateExpired
		}
		states = append(states, JobState{DestinationID: d.DestinationID, MessageID: d.MessageID, SourceID: d.SourceID,
			State: s, Attempts: d.Attempts, FirstAttempt: timePtr(d.FirstAttemptAt), LastStatus: d.StatusCode,
			LastReason: d.ErrorReason, LastError: d.Error, ReplayID: d.ReplayID, DeadLetterID: d.ID})
	}
	if states == nil {
		states = []JobState{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"message_id": msg,
		"jobs":       states,
		"note":       "an event with no job here was delivered or filtered, or is not yet read by its destination's queue (see GET /api/v1/destinations/{id}/delivery)",
	})
}

// QueueStatus is a destination queue's state. Running, Breaker, InFlight,
// Concurrency and BatchSize describe the queues (shards) that run on the
// node answering; the positions and counts are the cluster's.
type QueueStatus struct {
	DestinationID string `json:"destination_id"`
	Running       bool   `json:"running"`
	// Position is the processed-stream sequence up to which every event is
	// finished (the lowest of the shards'); LastSeq is the stream's last
	// sequence.
	Position    uint64 `json:"position"`
	LastSeq     uint64 `json:"last_seq"`
	Breaker     string `json:"breaker"`
	InFlight    int    `json:"in_flight_jobs"`
	RetryJobs   int64  `json:"awaiting_retry"`
	DeadLetters int64  `json:"dead_letters"`
	Concurrency int    `json:"concurrency"`
	BatchSize   int    `json:"batch_size"`
	MaxRetryAge string `json:"max_retry_age"`
	Error       string `json:"error,omitempty"`
	// Shards lists the shards of a destination of several
	// (delivery.shards), with their positions and whether this node runs
	// them.
	Shards []ShardStatus `json:"shards,omitempty"`
}

// ShardStatus is one shard of a destination's queue.
type ShardStatus struct {
	Shard    string `json:"shard"` // "<k>-of-<n>"
	Position uint64 `json:"position"`
	Here     bool   `json:"running_here"`
}

func (e *Engine) serveQueue(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx := r.Context()
	st := QueueStatus{DestinationID: id, Breaker: "closed"}
	here := map[shard]bool{}
	n := 1
	e.mu.Lock()
	for _, run := range e.queues {
		q := run.q
		if q.dest.ID != id {
			continue
		}
		here[q.sh], n = true, q.sh.n
		st.Running = st.Running || q.started.Load()
		st.Concurrency += q.conc
		st.BatchSize, st.MaxRetryAge = q.batch, q.maxAge.String()
		if q.newErr != nil {
			st.Error = q.newErr.Error()
		}
		q.brk.mu.Lock()
		if b := [...]string{"closed", "half_open", "open"}[q.brk.state]; b != "closed" && st.Breaker != "open" {
			st.Breaker = b
		}
		q.brk.mu.Unlock()
		q.mu.Lock()
		st.InFlight += len(q.inflight)
		q.mu.Unlock()
	}
	e.mu.Unlock()
	if len(here) == 0 {
		for _, d := range e.opts.Workspace().Destinations {
			if d.ID == id && d.Enabled {
				n = shardCount(&d)
			}
		}
	}
	rows, err := e.jobs.positions(ctx, e.jobs.db.SQL(), id)
	if err == nil && len(rows) == 0 && len(here) == 0 {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("destination %q has no delivery queue (unknown or never enabled)", id))
		return
	}
	if !slices.ContainsFunc(rows, func(p storedPosition) bool { return p.shard.n == n }) && len(rows) > 0 {
		n = rows[0].shard.n // disabled, or between two shard counts: the stored one
	}
	first := true
	slices.SortFunc(rows, func(a, b storedPosition) int { return a.shard.k - b.shard.k })
	for _, p := range rows {
		if p.shard.n != n {
			continue // an earlier shard count's, until every shard passed it
		}
		if first || p.seq < st.Position {
			st.Position, first = p.seq, false
		}
		if n > 1 {
			st.Shards = append(st.Shards, ShardStatus{Shard: strings.TrimPrefix(p.shard.key(""), "/"), Position: p.seq, Here: here[p.shard]})
		}
	}
	if err == nil {
		st.LastSeq, err = e.log.LastSeq(ctx, stream.ProcessedStream)
	}
	if err == nil {
		st.RetryJobs, err = e.jobs.countJobs(ctx, id)
	}
	if err == nil {
		st.DeadLetters, err = e.jobs.countDead(ctx, deadFilter{Destination: id})
	}
	if err != nil {
		internalError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
}

// parseDeadFilter reads a dead-letter selection from query values or a
// JSON body's fields.
func parseDeadFilter(get func(string) string) (deadFilter, error) {
	f := deadFilter{Destination: get("destination"), Reason: get("reason"), MessageID: get("message_id")}
	switch f.Reason {
	case "", DeadDiscarded, DeadExpired:
	default:
		return f, fmt.Errorf("reason %q: want %q or %q", f.Reason, DeadDiscarded, DeadExpired)
	}
	var err error
	if f.From, err = httpapi.QueryTime("from", get("from")); err != nil {
		return f, err
	}
	if f.To, err = httpapi.QueryTime("to", get("to")); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, fmt.Errorf("from %s is not before to %s", get("from"), get("to"))
	}
	return f, nil
}

// deadLetterView is a dead letter as the API shows it.
type deadLetterView struct {
	DeadLetter
	EventJSON json.RawMessage `json:"event"`
	Request   string          `json:"request"`
	Response  string          `json:"response"`
}

func (e *Engine) serveDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := httpapi.CheckParams(q, "destination", "reason", "message_id", "from", "to", "after", "before", "order", "limit"); err != nil {
		badRequest(w, err.Error())
		return
	}
	f, err := parseDeadFilter(q.Get)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	limit, err := httpapi.QueryLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	newest := false
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		newest = true
	default:
		badRequest(w, fmt.Sprintf("order %q: want oldest (the default) or newest", q.Get("order")))
		return
	}
	for _, p := range []struct {
		key string
		id  *int64
	}{{"after", &f.AfterID}, {"before", &f.BeforeID}} {
		if v := q.Get(p.key); v != "" {
			if *p.id, err = strconv.ParseInt(v, 10, 64); err != nil || *p.id < 1 {
				badRequest(w, fmt.Sprintf("%s %q: want the id of the last dead letter of the previous page", p.key, v))
				return
			}
		}
	}
	dead, err := e.jobs.deadLetters(r.Context(), f, limit, newest)
	if err != nil {
		internalError(w, err)
		return
	}
	views := make([]deadLetterView, len(dead))
	for i, d := range dead {
		views[i] = deadLetterView{DeadLetter: d, EventJSON: d.Event, Request: string(d.Request), Response: string(d.Response)}
	}
	total, err := e.jobs.countDead(r.Context(), deadFilter{Destination: f.Destination, Reason: f.Reason,
		MessageID: f.MessageID, From: f.From, To: f.To})
	if err != nil {
		internalError(w, err)
		return
	}
	body := map[string]any{"dead_letters": views, "total": total}
	if len(dead) == limit {
		body["next"] = strconv.FormatInt(dead[len(dead)-1].ID, 10)
	}
	httpapi.WriteJSON(w, http.StatusOK, body)
}

// replayRequest selects dead letters to put back into their queues; a
// call moves at most Limit of them (default 1000) so that a client can
// show progress, and calls with the same ReplayID add to one replay.
type replayRequest struct {
	Destination string `json:"destination"`
	Reason      string `json:"reason"`
	MessageID   string `json:"message_id"`
	From        string `json:"from"`
	To          string `json:"to"`
	ReplayID    string `json:"replay_id"`
	Limit       int    `json:"limit"`
}

func (e *Engine) serveReplay(w http.ResponseWriter, r *http.Request) {
	var req *replayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		httpapi.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is larger than 64 KiB")
		return
	case err == nil && req == nil:
		err = errors.New("null")
	}
	if err != nil {
		badRequest(w, fmt.Sprintf("the body must be a JSON object with destination, reason, message_id, from, to, replay_id and limit ({} for all): %v", err))
		return
	}
	fields := map[string]string{"destination": req.Destination, "reason": req.Reason, "message_id": req.MessageID,
		"from": req.From, "to": req.To}
	f, err := parseDeadFilter(func(k string) string { return fields[k] })
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	// Only into queues that run: a replay into a deleted or disabled
	// destination would wait forever.
	enabled := e.enabledDestinations()
	if req.Destination != "" && !slices.Contains(enabled, req.Destination) {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("destination %q is not an enabled destination: its dead letters can be replayed once it is", req.Destination))
		return
	}
	f.Among = enabled
	if req.Limit == 0 {
		req.Limit = 1000
	}
	if req.Limit < 1 || req.Limit > 10000 {
		badRequest(w, fmt.Sprintf("limit %d: want 1 to 10000", req.Limit))
		return
	}
	if req.ReplayID == "" {
		req.ReplayID = fmt.Sprintf("rp-%d", e.clock.Now().UnixNano())
	} else if len(req.ReplayID) > 64 {
		badRequest(w, "replay_id is longer than 64 characters")
		return
	}
	moved, err := e.jobs.requeue(r.Context(), f, req.ReplayID, req.Limit, e.clock.Now())
	if err != nil {
		internalError(w, err)
		return
	}
	f.NotReplay = req.ReplayID
	remaining, err := e.jobs.countDead(r.Context(), f)
	if err != nil {
		internalError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"replay_id": req.ReplayID, "moved": moved, "remaining": remaining})
}

func (e *Engine) serveReplayStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, ok, err := e.jobs.replay(r.Context(), id)
	if err != nil {
		internalError(w, err)
		return
	}
	if !ok {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no replay %q", id))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
}
