package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
)

// sixHooks is six webhook destinations of source web on one log and one
// store, all sending to one receiver that counts each destination's
// deliveries of each messageId: what engines sharing the state (restarts,
// several nodes) are checked against.
type sixHooks struct {
	log   *stream.Log
	db    *store.DB
	ws    *config.Workspace
	dests []config.Destination

	mu  sync.Mutex
	got map[string]int // destination/messageId → deliveries
}

func newSixHooks(t *testing.T) *sixHooks {
	h := &sixHooks{log: streamtest.New(t), db: storetest.SQLite(t), got: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			MessageID string `json:"messageId"`
		}
		_ = json.Unmarshal(body, &ev)
		h.mu.Lock()
		h.got[strings.TrimPrefix(r.URL.Path, "/")+"/"+ev.MessageID]++
		h.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	for i := range 6 {
		id := fmt.Sprintf("d%d", i)
		h.dests = append(h.dests, config.Destination{ID: id, Type: "webhook", Enabled: true, Sources: []string{"web"},
			Settings: map[string]any{"url": srv.URL + "/" + id, "timeout": "2s"}})
	}
	h.ws = config.NewWorkspace(1, config.Settings{}, []config.Source{{ID: "web", WriteKey: "k"}}, h.dests)
	return h
}

func (h *sixHooks) workspace() *config.Workspace { return h.ws }

// publish writes one processed message holding events m<from>…m<to-1>.
func (h *sixHooks) publish(t *testing.T, from, to int) {
	t.Helper()
	var data []byte
	at := time.Now().UTC().Format(time.RFC3339Nano)
	for i := from; i < to; i++ {
		data = event.AppendRecord(data, "web", fmt.Appendf(nil,
			`{"type":"track","event":"E","messageId":"m%d","userId":"u","context":{},"timestamp":%q,"receivedAt":%q}`, i, at, at))
	}
	if _, err := h.log.JetStream().Publish(context.Background(), stream.ProcessedSubject, data); err != nil {
		t.Fatal(err)
	}
}

// waitAll waits until every destination has had each of n events.
func (h *sixHooks) waitAll(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		h.mu.Lock()
		have := len(h.got)
		h.mu.Unlock()
		if have == n*len(h.dests) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries of %d", have, n*len(h.dests))
		}
	}
}

// checkOnce fails for every delivery made more than once, once a
// repeat has had time to arrive.
func (h *sixHooks) checkOnce(t *testing.T) {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	h.mu.Lock()
	got := maps.Clone(h.got)
	h.mu.Unlock()
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
}
