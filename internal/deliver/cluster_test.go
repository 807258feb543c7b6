package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/config"
	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/webhook"
	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/lease"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestEnginesShareDestinations runs two nodes' engines on one log and one
// store, each with its lease group: the destinations spread over both,
// each event reaches each destination once, and when one node stops, the
// other takes its destinations over from their stored positions.
func TestEnginesShareDestinations(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{} // destination/messageId → deliveries
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			MessageID string `json:"messageId"`
		}
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		got[strings.TrimPrefix(r.URL.Path, "/")+"/"+ev.MessageID]++
		mu.Unlock()
	}))
	defer srv.Close()

	l := streamtest.New(t)
	db := storetest.SQLite(t)
	var dests []config.Destination
	for i := range 6 {
		id := fmt.Sprintf("d%d", i)
		dests = append(dests, config.Destination{ID: id, Type: "webhook", Enabled: true, Sources: []string{"web"},
			Settings: map[string]any{"url": srv.URL + "/" + id, "timeout": "2s"}})
	}
	ws := config.NewWorkspace(1, config.Settings{}, []config.Source{{ID: "web", WriteKey: "k"}}, dests)

	type node struct {
		group           *lease.Group
		engine          *deliver.Engine
		cancel, lcancel context.CancelFunc
		done, ldone     chan error
	}
	start := func(id string) *node {
		g, err := lease.New(t.Context(), lease.Options{JetStream: l.JetStream(), Node: id, TTL: 1500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		n := &node{group: g, done: make(chan error, 1), ldone: make(chan error, 1)}
		n.engine = deliver.New(deliver.Options{Log: l, DB: db, Workspace: func() *config.Workspace { return ws },
			Registry: deliver.NewRegistry(webhook.Type), Leases: g, ConfigPoll: 20 * time.Millisecond,
			Registerer: prometheus.NewRegistry()})
		if err := n.engine.Prime(t.Context()); err != nil {
			t.Fatal(err)
		}
		var ctx, lctx context.Context
		ctx, n.cancel = context.WithCancel(context.Background())
		lctx, n.lcancel = context.WithCancel(context.Background())
		go func() { n.ldone <- g.Run(lctx) }()
		go func() { n.done <- n.engine.Run(ctx) }()
		return n
	}
	stop := func(n *node) {
		n.cancel()
		<-n.done
		n.lcancel()
		<-n.ldone
	}
	a, b := start("a"), start("b")
	defer stop(a)

	publish := func(from, to int) {
		var data []byte
		at := time.Now().UTC().Format(time.RFC3339Nano)
		for i := from; i < to; i++ {
			data = event.AppendRecord(data, "web", fmt.Appendf(nil,
				`{"type":"track","event":"E","messageId":"m%d","userId":"u","context":{},"timestamp":%q,"receivedAt":%q}`, i, at, at))
		}
		if _, err := l.JetStream().Publish(context.Background(), stream.ProcessedSubject, data); err != nil {
			t.Fatal(err)
		}
	}
	waitAll := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			have := len(got)
			mu.Unlock()
			if have == n*len(dests) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d deliveries of %d", have, n*len(dests))
			}
		}
	}
	// Both nodes own some destinations once the leases settle.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		owned := map[string]int{}
		for _, d := range dests {
			for _, n := range []*node{a, b} {
				if n.group.Owns("deliver/" + d.ID) {
					owned[n.group.Node()]++
				}
			}
		}
		if owned["a"]+owned["b"] == len(dests) && owned["a"] > 0 && owned["b"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("destinations owned %v", owned)
		}
	}
	for i := 0; i < 200; i += 20 {
		publish(i, i+20)
	}
	waitAll(200)

	// b stops (cleanly: it hands its destinations over); a delivers the rest.
	stop(b)
	for i := 200; i < 400; i += 20 {
		publish(i, i+20)
	}
	waitAll(400)
	for _, d := range dests {
		if !a.group.Owns("deliver/" + d.ID) {
			t.Errorf("a does not own %s after b left", d.ID)
		}
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	mu.Lock()
	defer mu.Unlock()
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
}
