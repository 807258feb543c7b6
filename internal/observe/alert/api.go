package alert

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/httpapi"
)

// AlertStates returns the state of every rule evaluated so far, by rule
// id; it implements [config.AlertStates], so that the Config API lists
// each rule with its state.
func (e *Evaluator) AlertStates(ctx context.Context) (map[string]config.AlertState, error) {
	rows, err := e.db.SQL().QueryContext(ctx, `SELECT alert_id, state, since, last_value, evaluated_at FROM alert_states`)
	if err != nil {
		return nil, fmt.Errorf("reading alert states: %w", err)
	}
	defer rows.Close()
	out := make(map[string]config.AlertState)
	for rows.Next() {
		var (
			id, state          string
			since, evaluatedAt int64
			last               sql.NullFloat64
		)
		if err := rows.Scan(&id, &state, &since, &last, &evaluatedAt); err != nil {
			return nil, fmt.Errorf("reading alert states: %w", err)
		}
		s, ev := time.UnixMilli(since).UTC(), time.UnixMilli(evaluatedAt).UTC()
		st := config.AlertState{State: state, Since: &s, EvaluatedAt: &ev}
		if last.Valid {
			st.LastValue = &last.Float64
		}
		out[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading alert states: %w", err)
	}
	return out, nil
}

// Event is one recorded transition of a rule: the notification sent for
// it, and how sending it went.
type Event struct {
	ID int64 `json:"id"`
	Notification
	Delivery Delivery `json:"notification"`
}

// Delivery is how sending one notification went.
type Delivery struct {
	// Status is "pending" (not sent yet: retried at the next
	// evaluation), "sent", or "failed" (abandoned).
	Status   string     `json:"status"`
	Attempts int        `json:"attempts"`
	SentAt   *time.Time `json:"sent_at"`
	// LastError is why the last attempt failed; "" once sent.
	LastError string `json:"last_error,omitempty"`
}

// MaxEvents bounds how many events one [Evaluator.Events] call returns.
const MaxEvents = 1000

// Events returns the most recent transitions, newest first, of rule
// alertID (all rules when ""), at most limit of them (1 to [MaxEvents]).
func (e *Evaluator) Events(ctx context.Context, alertID string, limit int) ([]Event, error) {
	limit = min(max(limit, 1), MaxEvents)
	q := `SELECT id, body, notify_status, attempts, sent_at, last_error FROM alert_events`
	var args []any
	if alertID != "" {
		q += ` WHERE alert_id = ?`
		args = append(args, alertID)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := e.db.SQL().QueryContext(ctx, e.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("reading alert events: %w", err)
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var (
			ev     Event
			body   string
			sentAt sql.NullInt64
		)
		if err := rows.Scan(&ev.ID, &body, &ev.Delivery.Status, &ev.Delivery.Attempts, &sentAt, &ev.Delivery.LastError); err != nil {
			return nil, fmt.Errorf("reading alert events: %w", err)
		}
		if err := json.Unmarshal([]byte(body), &ev.Notification); err != nil {
			return nil, fmt.Errorf("decoding alert event %d: %w", ev.ID, err)
		}
		if sentAt.Valid {
			t := time.UnixMilli(sentAt.Int64).UTC()
			ev.Delivery.SentAt = &t
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading alert events: %w", err)
	}
	return out, nil
}

// Register mounts the alert events API on mux, wrapped by auth. The rules
// themselves, with their states, are the Config API's (/api/v1/alerts).
//
//	GET /api/v1/alerts/events?alert=&limit=50
func (e *Evaluator) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET /api/v1/alerts/events", auth(http.HandlerFunc(e.serveEvents)))
}

func (e *Evaluator) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := httpapi.QueryLimit(q.Get("limit"), 50, MaxEvents)
	if perr := httpapi.CheckParams(q, "alert", "limit"); perr != nil {
		err = perr
	}
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	events, err := e.Events(r.Context(), q.Get("alert"), limit)
	if err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": events})
}
