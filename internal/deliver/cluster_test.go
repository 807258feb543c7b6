package deliver_test

import (
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/destinations/webhook"
)

// TestEnginesShareDestinations runs two nodes' engines on one log and one
// store, each with its lease group: the destinations spread over both,
// each event reaches each destination once, and when one node stops, the
// other takes its destinations over from their stored positions.
func TestEnginesShareDestinations(t *testing.T) {
	h := newSixHooks(t)

	start := func(id string) *leasedNode {
		return startLeased(t, h.log, id, deliver.Options{DB: h.db, Workspace: h.workspace,
			Registry: deliver.NewRegistry(webhook.Type), ConfigPoll: 20 * time.Millisecond})
	}
	a, b := start("a"), start("b")
	defer a.stop()

	// Both nodes own some destinations once the leases settle.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		owned := map[string]int{}
		for _, d := range h.dests {
			for _, n := range []*leasedNode{a, b} {
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
	b.stop()
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
