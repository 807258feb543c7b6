package warehouse

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/confluxcdp/conflux/internal/store"
)

// SyncRetention is how long sync history is kept.
const SyncRetention = 30 * 24 * time.Hour

// Sync is one load of a warehouse destination, for its sync history.
type Sync struct {
	ID            int64            `json:"id"`
	DestinationID string           `json:"destination_id"`
	SourceID      string           `json:"source_id"`
	StartedAt     time.Time        `json:"started_at"`
	FinishedAt    time.Time        `json:"finished_at"`
	Status        string           `json:"status"` // success or failure
	Events        int64            `json:"events"`
	Rows          map[string]int64 `json:"rows"` // rows written per table (not counting rows already there)
	Error         string           `json:"error,omitempty"`
}

// Record adds s to the sync history in db, and deletes history past
// SyncRetention.
func Record(ctx context.Context, db *store.DB, s Sync) error {
	rows, err := json.Marshal(s.Rows)
	if err != nil {
		return fmt.Errorf("recording a warehouse sync: %w", err)
	}
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO warehouse_syncs
	(destination_id, source_id, started_at, finished_at, status, events, rows_written, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			s.DestinationID, s.SourceID, s.StartedAt.UnixMilli(), s.FinishedAt.UnixMilli(), s.Status, s.Events, string(rows), s.Error); err != nil {
			return fmt.Errorf("recording a warehouse sync of %s: %w", s.DestinationID, err)
		}
		if _, err := tx.ExecContext(ctx, db.Rebind(`DELETE FROM warehouse_syncs WHERE started_at < ?`), s.StartedAt.Add(-SyncRetention).UnixMilli()); err != nil {
			return fmt.Errorf("pruning warehouse sync history: %w", err)
		}
		return nil
	})
}

// Syncs returns up to limit syncs of destination dest, newest first,
// before the sync id before (0: the newest).
func Syncs(ctx context.Context, db *store.DB, dest string, before int64, limit int) ([]Sync, error) {
	q := `SELECT id, source_id, started_at, finished_at, status, events, rows_written, error FROM warehouse_syncs WHERE destination_id = ?`
	args := []any{dest}
	if before > 0 {
		q += ` AND id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	return store.Query(ctx, db.SQL(), db.Rebind(q), args, func(r *sql.Rows) (Sync, error) {
		s := Sync{DestinationID: dest}
		var started, finished int64
		var rows string
		if err := r.Scan(&s.ID, &s.SourceID, &started, &finished, &s.Status, &s.Events, &rows, &s.Error); err != nil {
			return s, err
		}
		s.StartedAt, s.FinishedAt = time.UnixMilli(started).UTC(), time.UnixMilli(finished).UTC()
		return s, json.Unmarshal([]byte(rows), &s.Rows)
	})
}

// RegisterAPI mounts GET /api/v1/destinations/{id}/syncs (the sync
// history, newest first: limit 1–1000, default 50; before, a sync id, for
// the next page) behind auth.
func RegisterAPI(mux *http.ServeMux, auth func(http.Handler) http.Handler, db *store.DB) {
	mux.Handle("GET /api/v1/destinations/{id}/syncs", auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := httpapi.CheckParams(q, "limit", "before"); err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_parameter", err.Error())
			return
		}
		limit, err := httpapi.QueryLimit(q.Get("limit"), 50, 1000)
		if err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_parameter", err.Error())
			return
		}
		var before int64
		if s := q.Get("before"); s != "" {
			if before, err = strconv.ParseInt(s, 10, 64); err != nil || before <= 0 {
				httpapi.WriteError(w, http.StatusBadRequest, "invalid_parameter", fmt.Sprintf("before %q: want a sync id", s))
				return
			}
		}
		syncs, err := Syncs(r.Context(), db, r.PathValue("id"), before, limit)
		if err != nil {
			httpapi.WriteError(w, http.StatusInternalServerError, "internal_error", "reading the sync history failed")
			return
		}
		if syncs == nil {
			syncs = []Sync{}
		}
		body := map[string]any{"syncs": syncs}
		if len(syncs) == limit {
			body["next"] = strconv.FormatInt(syncs[len(syncs)-1].ID, 10)
		}
		httpapi.WriteJSON(w, http.StatusOK, body)
	})))
}
