package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// TestBacklogOfSmallMessagesWithLargeBatches: a destination with large
// batches reading a backlog of many small processed messages (one event
// each, more of them than the reader keeps open at once) delivers them
// all. The reader must hand its partial batch to the senders before it
// waits for open messages to finish, or it waits forever.
func TestBacklogOfSmallMessagesWithLargeBatches(t *testing.T) {
	var mu sync.Mutex
	got := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var evs []struct {
			MessageID string `json:"messageId"`
		}
		if err := json.Unmarshal(body, &evs); err != nil {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		for _, e := range evs {
			got[e.MessageID] = true
		}
		mu.Unlock()
	}))
	defer srv.Close()
	clock := newFakeClock(time.Now())
	dest := hook(srv.URL, config.DeliveryOptions{}, map[string]any{"batch_size": 1000})
	h := startEngine(t, clock, deliver.Options{}, dest)
	h.stop()
	const n = 600 // more than the reader's window of open messages (256 + 4 × concurrency)
	for i := range n {
		h.publish(t, time.Now(), fmt.Sprintf("small-%03d", i))
	}
	// Again on the same log and store: the queue resumes at its position
	// and reads the backlog in large chunks.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := deliver.New(deliver.Options{Log: h.log, DB: h.db, Workspace: func() *config.Workspace { return h.ws }, Registry: deliver.NewRegistry(webhook.Type),
		Clock: clock, RetryPoll: 5 * time.Millisecond, ConfigPoll: 10 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered", k, n)
		}
	}
}
