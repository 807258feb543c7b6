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
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/lease"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/prometheus/client_golang/prometheus"
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

// leasedNode is one node of a cluster in a test: its lease group and its
// engine, on a log and a store shared with the other nodes.
type leasedNode struct {
	group           *lease.Group
	cancel, lcancel context.CancelFunc
	done, ldone     chan error
}

// startLeased starts node id's lease group (TTL 1.5 s) and an engine of
// opts on it, primed.
func startLeased(t *testing.T, log *stream.Log, id string, opts deliver.Options) *leasedNode {
	t.Helper()
	g, err := lease.New(t.Context(), lease.Options{JetStream: log.JetStream(), Node: id, TTL: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n := &leasedNode{group: g, done: make(chan error, 1), ldone: make(chan error, 1)}
	opts.Log, opts.Leases = log, g
	opts.Registerer = prometheus.NewRegistry()
	e := deliver.New(opts)
	if err := e.Prime(t.Context()); err != nil {
		t.Fatal(err)
	}
	var ctx, lctx context.Context
	ctx, n.cancel = context.WithCancel(context.Background())
	lctx, n.lcancel = context.WithCancel(context.Background())
	go func() { n.ldone <- g.Run(lctx) }()
	go func() { n.done <- e.Run(ctx) }()
	return n
}

// stop stops the engine, then the lease group (which releases what it
// holds), as a node's clean shutdown does.
func (n *leasedNode) stop() {
	n.cancel()
	<-n.done
	n.lcancel()
	<-n.ldone
}
