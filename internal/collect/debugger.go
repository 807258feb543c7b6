package collect

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/httpapi"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/nats-io/nats.go/jetstream"
)

// Debugger shows a source's most recent events exactly as the log stores
// them, like Segment's source debugger, and follows new ones live. It reads
// the log itself, so every node shows the same events and nothing is kept
// in memory between requests.
type Debugger struct {
	js        jetstream.JetStream
	workspace func() *config.Workspace
	// scanMessages and scanBytes bound how far back one request reads.
	scanMessages int
	scanBytes    int
}

// Debugger limits.
const (
	// DefaultDebugLimit is the number of events returned without ?limit.
	DefaultDebugLimit = 20
	// MaxDebugLimit is the largest ?limit.
	MaxDebugLimit = 500
)

// NewDebugger returns a debugger over the log's ingest stream.
func NewDebugger(js jetstream.JetStream, workspace func() *config.Workspace) *Debugger {
	return &Debugger{js: js, workspace: workspace, scanMessages: 2000, scanBytes: 256 << 20}
}

// Register adds GET /api/v1/sources/{id}/events to mux, wrapped by auth.
func (d *Debugger) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET /api/v1/sources/{id}/events", auth(http.HandlerFunc(d.serve)))
}

func (d *Debugger) serve(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := d.workspace().Source(id); !ok {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no source %q", id))
		return
	}
	limit := DefaultDebugLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxDebugLimit {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit must be an integer from 1 to %d", MaxDebugLimit))
			return
		}
		limit = n
	}
	follow := false
	if s := r.URL.Query().Get("follow"); s != "" {
		var err error
		if follow, err = strconv.ParseBool(s); err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_request", "follow must be true or false")
			return
		}
	}
	recent, lastSeq, err := d.Recent(r.Context(), id, limit)
	if err != nil {
		httpapi.WriteError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	if !follow {
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": rawEvents(recent)})
		return
	}
	// Follow: NDJSON, oldest first, then live until the client leaves.
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	bw := bufio.NewWriter(w)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return http.NewResponseController(w).Flush()
	}
	for _, e := range slices.Backward(recent) {
		bw.Write(e)
		bw.WriteByte('\n')
	}
	if err := flush(); err != nil {
		return
	}
	_ = d.Follow(r.Context(), id, lastSeq+1, func(e []byte) error {
		bw.Write(e)
		bw.WriteByte('\n')
		return flush()
	})
}

func rawEvents(events [][]byte) []json.RawMessage {
	out := make([]json.RawMessage, len(events))
	for i, e := range events {
		out[i] = e
	}
	return out
}

// Recent returns up to limit events of the source, newest first, and the
// last sequence of the log it looked at.
func (d *Debugger) Recent(ctx context.Context, sourceID string, limit int) ([][]byte, uint64, error) {
	s, err := d.js.Stream(ctx, stream.IngestStream)
	if err != nil {
		return nil, 0, fmt.Errorf("opening stream %q: %w", stream.IngestStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("reading stream %q: %w", stream.IngestStream, err)
	}
	var out [][]byte
	scanned, bytes := 0, 0
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < limit; seq-- {
		if scanned >= d.scanMessages || bytes >= d.scanBytes {
			break
		}
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading message %d of %q: %w", seq, stream.IngestStream, err)
		}
		scanned++
		bytes += len(m.Data)
		var mine [][]byte
		for r, err := range event.Records(m.Data) {
			if err != nil {
				break
			}
			if r.SourceID == sourceID {
				mine = append(mine, r.JSON)
			}
		}
		for _, e := range slices.Backward(mine) {
			if len(out) == limit {
				break
			}
			out = append(out, e)
		}
	}
	return out, info.State.LastSeq, nil
}

// Follow calls fn with each event of the source appended to the log from
// sequence from on, until ctx ends or fn fails.
func (d *Debugger) Follow(ctx context.Context, sourceID string, from uint64, fn func([]byte) error) error {
	cons, err := d.js.OrderedConsumer(ctx, stream.IngestStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return fmt.Errorf("following %q: %w", stream.IngestStream, err)
	}
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			for r, err := range event.Records(m.Data()) {
				if err != nil {
					break
				}
				if r.SourceID == sourceID {
					if err := fn(r.JSON); err != nil {
						return err
					}
				}
			}
		}
		if got == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}
