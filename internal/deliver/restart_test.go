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
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCleanRestartSendsNothingTwice stops an engine right after its
// events were delivered and starts another on the same log and store: the
// requests in flight at the stop finish and are stored, so nothing is
// sent again (before, a request whose answer came after the stop was).
func TestCleanRestartSendsNothingTwice(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
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
	run := func() func() {
		e := deliver.New(deliver.Options{Log: l, DB: db, Workspace: func() *config.Workspace { return ws },
			Registry: deliver.NewRegistry(webhook.Type), ConfigPoll: 20 * time.Millisecond, Registerer: prometheus.NewRegistry()})
		_ = e.Prime(t.Context())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		return func() { cancel(); <-done }
	}
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
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			have := len(got)
			mu.Unlock()
			if have == n*len(dests) || time.Now().After(deadline) {
				return
			}
		}
	}
	stop := run()
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 200; i += 20 {
		publish(i, i+20)
	}
	waitAll(200)
	stop()
	stop = run()
	time.Sleep(time.Second)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 200*len(dests) {
		t.Fatalf("%d deliveries, want %d", len(got), 200*len(dests))
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
}
