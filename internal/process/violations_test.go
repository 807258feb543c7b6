package process

import (
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/process/plan"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

func TestViolationsCountAcrossFlushesAndNodes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		// Two nodes sharing one store.
		a, b := NewViolations(db, nil), NewViolations(db, nil)
		t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		req := plan.Violation{Type: "Required", Field: "properties.order_id", Description: "properties.order_id is required"}
		typ := plan.Violation{Type: "Type", Field: "properties.total", Description: "properties.total: want number"}
		a.Record("web", "track", "Order Completed", req, t0)
		a.Record("web", "track", "Order Completed", req, t0.Add(time.Second))
		a.Record("app", "track", "Order Completed", req, t0)
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.Record("web", "track", "Order Completed", req, t0.Add(2*time.Second))
		b.Record("web", "track", "Signed Up", typ, t0.Add(3*time.Second))
		if err := b.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Not yet flushed: counted by the node that holds it.
		a.Record("web", "track", "Order Completed", req, t0.Add(4*time.Second))

		got, err := a.List(t.Context(), "web", "", time.Time{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("web violations %+v, want 2 lines", got)
		}
		if got[0].EventName != "Order Completed" || got[0].Count != 4 || !got[0].LastSeen.Equal(t0.Add(4*time.Second)) || !got[0].FirstSeen.Equal(t0) {
			t.Errorf("first line %+v, want Order Completed ×4, first %v, last %v", got[0], t0, t0.Add(4*time.Second))
		}
		if got[1].EventName != "Signed Up" || got[1].Count != 1 || got[1].ViolationType != "Type" {
			t.Errorf("second line %+v", got[1])
		}
		only, err := b.List(t.Context(), "web", "Signed Up", time.Time{}, 10)
		if err != nil || len(only) != 1 {
			t.Fatalf("event filter: %+v %v", only, err)
		}
		recent, err := b.List(t.Context(), "web", "", t0.Add(2500*time.Millisecond), 10)
		if err != nil || len(recent) != 1 || recent[0].EventName != "Signed Up" {
			t.Fatalf("since filter (node b sees only what was flushed): %+v %v", recent, err)
		}
	})
}
