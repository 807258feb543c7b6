package archive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/parquet-go/parquet-go"
)

// Read calls fn with the archived events received in [from, to), in
// chunks of at most 1,000, part by part in hour order.
func Read(ctx context.Context, dir string, from, to time.Time, fn func([]event.Record) error) error {
	parts, err := filepath.Glob(filepath.Join(dir, "source=*", "hour=*", "part-*.parquet"))
	if err != nil {
		return err
	}
	first, last := from.UTC().Truncate(time.Hour), to.UTC()
	var keep []string
	for _, p := range parts {
		hour, ok := strings.CutPrefix(filepath.Base(filepath.Dir(p)), "hour=")
		t, err := time.Parse("2006-01-02T15", hour)
		if !ok || err != nil || t.Before(first) || !t.Before(last) {
			continue
		}
		keep = append(keep, p)
	}
	slices.SortFunc(keep, func(a, b string) int {
		return strings.Compare(filepath.Base(filepath.Dir(a)), filepath.Base(filepath.Dir(b)))
	})
	var chunk []event.Record
	for _, p := range keep {
		if err := ctx.Err(); err != nil {
			return err
		}
		rows, err := parquet.ReadFile[Row](p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		for _, r := range rows {
			at := time.UnixMilli(r.ReceivedAt)
			if at.Before(from) || !at.Before(to) {
				continue
			}
			chunk = append(chunk, event.Record{SourceID: r.SourceID, JSON: []byte(r.JSON)})
			if len(chunk) == 1000 {
				if err := fn(chunk); err != nil {
					return err
				}
				chunk = nil
			}
		}
	}
	if len(chunk) > 0 {
		return fn(chunk)
	}
	return nil
}

// Enqueuer puts events into a destination's queue as a replay: the
// delivery engine's Enqueue.
type Enqueuer func(ctx context.Context, dest string, recs []event.Record, replayID string) (int, error)

// RegisterAPI mounts POST /api/v1/archive/replay behind auth: body
// {"destination", "from", "to"} (RFC 3339; to defaults to now) replays
// the archived events received in [from, to) to the destination, through
// its routing, and answers {"replay_id", "moved"}; GET
// /api/v1/replays/{id} follows it.
func RegisterAPI(mux *http.ServeMux, auth func(http.Handler) http.Handler, dir string, enqueue Enqueuer, logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux.Handle("POST /api/v1/archive/replay", auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Destination string `json:"destination"`
			From        string `json:"from"`
			To          string `json:"to"`
		}
		if !httpapi.DecodeJSON(w, r, 1<<16, &req) {
			return
		}
		from, err := httpapi.QueryTime("from", req.From)
		if err == nil && from.IsZero() {
			err = errors.New(`from is required: an RFC 3339 time such as "2026-12-01T09:00:00Z"`)
		}
		to := time.Now()
		if err == nil && req.To != "" {
			to, err = httpapi.QueryTime("to", req.To)
		}
		if err == nil && req.Destination == "" {
			err = errors.New("destination is required")
		}
		if err == nil && !from.Before(to) {
			err = fmt.Errorf("from %s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
		}
		if err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, "validation_error", err.Error())
			return
		}
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := "archive-" + hex.EncodeToString(b[:])
		// An empty first call checks the destination and records the
		// replay, so that it answers even when the range holds nothing.
		moved, err := enqueue(r.Context(), req.Destination, nil, id)
		if err == nil {
			err = Read(r.Context(), dir, from, to, func(recs []event.Record) error {
				n, err := enqueue(r.Context(), req.Destination, recs, id)
				moved += n
				return err
			})
		}
		switch {
		case errors.Is(err, deliver.ErrUnknownDestination):
			httpapi.WriteError(w, http.StatusNotFound, "not_found", err.Error())
		case errors.Is(err, os.ErrNotExist):
			httpapi.WriteJSON(w, http.StatusOK, map[string]any{"replay_id": id, "moved": 0})
		case err != nil:
			logger.Error("archive replay", "destination", req.Destination, "err", err)
			httpapi.WriteError(w, http.StatusInternalServerError, "internal_error", err.Error())
		default:
			httpapi.WriteJSON(w, http.StatusOK, map[string]any{"replay_id": id, "moved": moved})
		}
	})))
}
