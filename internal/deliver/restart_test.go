package deliver_test

import (
	"context"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCleanRestartSendsNothingTwice stops an engine right after its
// events were delivered and starts another on the same log and store: the
// requests in flight at the stop finish and are stored, so nothing is
// sent again (before, a request whose answer came after the stop was).
func TestCleanRestartSendsNothingTwice(t *testing.T) {
	h := newSixHooks(t)
	run := func() func() {
		e := deliver.New(deliver.Options{Log: h.log, DB: h.db, Workspace: h.workspace,
			Registry: deliver.NewRegistry(webhook.Type), ConfigPoll: 20 * time.Millisecond, Registerer: prometheus.NewRegistry()})
		_ = e.Prime(t.Context())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	stop := run()
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 200; i += 20 {
		h.publish(t, i, i+20)
	}
	h.waitAll(t, 200)
	stop()
	stop = run()
	time.Sleep(time.Second)
	stop()
	h.mu.Lock()
	if len(h.got) != 200*len(h.dests) {
		t.Errorf("%d deliveries, want %d", len(h.got), 200*len(h.dests))
	}
	h.mu.Unlock()
	h.checkOnce(t)
}
