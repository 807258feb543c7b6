package deliver_test

import (
	"context"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/webhook"
	"github.com/confluxcdp/conflux/internal/lease"
	"github.com/prometheus/client_golang/prometheus"
)

// TestEnginesShareDestinations runs two nodes' engines on one log and one
// store, each with its lease group: the destinations spread over both,
// each event reaches each destination once, and when one node stops, the
// other takes its destinations over from their stored positions.
func TestEnginesShareDestinations(t *testing.T) {
	h := newSixHooks(t)

	type node struct {
		group           *lease.Group
		engine          *deliver.Engine
		cancel, lcancel context.CancelFunc
		done, ldone     chan error
	}
	start := func(id string) *node {
		g, err := lease.New(t.Context(), lease.Options{JetStream: h.log.JetStream(), Node: id, TTL: 1500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		n := &node{group: g, done: make(chan error, 1), ldone: make(chan error, 1)}
		n.engine = deliver.New(deliver.Options{Log: h.log, DB: h.db, Workspace: h.workspace,
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

	// Both nodes own some destinations once the leases settle.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		owned := map[string]int{}
		for _, d := range h.dests {
			for _, n := range []*node{a, b} {
				if n.group.Owns("deliver/" + d.ID) {
					owned[n.group.Node()]++
				}
			}
		}
		if owned["a"]+owned["b"] == len(h.dests) && owned["a"] > 0 && owned["b"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("destinations owned %v", owned)
		}
	}
	for i := 0; i < 200; i += 20 {
		h.publish(t, i, i+20)
	}
	h.waitAll(t, 200)

	// b stops (cleanly: it hands its destinations over); a delivers the rest.
	stop(b)
	for i := 200; i < 400; i += 20 {
		h.publish(t, i, i+20)
	}
	h.waitAll(t, 400)
	for _, d := range h.dests {
		if !a.group.Owns("deliver/" + d.ID) {
			t.Errorf("a does not own %s after b left", d.ID)
		}
	}
	h.checkOnce(t)
}
