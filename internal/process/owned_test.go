package process

import (
	"fmt"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"testing"
)

// TestStagesSharePartitions runs two nodes' stages on one log, each owning
// half the partitions: every event is processed once, by its partition's
// owner. Then one node takes the other's partitions over with an index
// that has never seen them: it rebuilds them from processed first, so the
// events the other node processed, re-sent, are duplicates.
func TestStagesSharePartitions(t *testing.T) {
	l := streamtest.New(t)
	optsA, optsB := testOptions(t), testOptions(t)
	optsA.Owned, optsB.Owned = []int{0, 1}, []int{2, 3}
	a, b := start(t, l, optsA), start(t, l, optsB)
	var first [][]byte
	for i := range 40 {
		first = append(first, ev(fmt.Sprintf("m%d", i), fmt.Sprintf("u%d", i%13)))
	}
	appendEvents(t, l, first...)
	appendEvents(t, l, first[:10]...) // duplicates, each caught by its owner
	a.waitFor(t, l)
	b.waitFor(t, l)
	if got := processedIDs(t, l); len(got) != 40 || a.count("web", OutcomeProcessed)+b.count("web", OutcomeProcessed) != 40 ||
		a.count("web", OutcomeDuplicate)+b.count("web", OutcomeDuplicate) != 10 {
		t.Fatalf("processed %d ids; processed %d+%d, duplicates %d+%d", len(got),
			a.count("web", OutcomeProcessed), b.count("web", OutcomeProcessed), a.count("web", OutcomeDuplicate), b.count("web", OutcomeDuplicate))
	}
	if a.count("web", OutcomeProcessed) == 0 || b.count("web", OutcomeProcessed) == 0 {
		t.Errorf("one node processed everything: %d and %d", a.count("web", OutcomeProcessed), b.count("web", OutcomeProcessed))
	}

	// b leaves; a takes every partition, in its own directory, where
	// partitions 2 and 3 have never been opened.
	b.stop()
	a.stop()
	optsA.Owned = nil
	a = start(t, l, optsA)
	appendEvents(t, l, append(first[20:], ev("new-1", "u1"), ev("new-2", "u5"))...)
	a.waitFor(t, l)
	got := processedIDs(t, l)
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
		if seen[id] > 1 {
			t.Errorf("%s is in processed twice after the hand-over", id)
		}
	}
	if len(got) != 42 || seen["new-1"] != 1 || seen["new-2"] != 1 {
		t.Errorf("processed %d ids, want the 40 and the two new ones", len(got))
	}
}

func TestOwnedPartitionsAreChecked(t *testing.T) {
	l := streamtest.New(t)
	for _, owned := range [][]int{{}, {4}, {-1}} {
		opts := testOptions(t)
		opts.Owned = owned
		if _, err := New(t.Context(), l, opts); err == nil {
			t.Errorf("owned %v accepted with 4 partitions", owned)
		}
	}
	if got := formatPartitionSet([]int{0, 1, 2, 5, 7, 8}); got != "0-2,5,7-8" {
		t.Errorf("formatPartitionSet = %q", got)
	}
}
