package deliver

import (
	"slices"
	"testing"
)

// TestTrackerRestart finishes some records of three messages, stores the
// state, and checks that a tracker built from it skips exactly those.
func TestTrackerRestart(t *testing.T) {
	tr := newTracker(10, nil)
	for seq := uint64(11); seq <= 13; seq++ {
		tr.open(seq)
		for range 100 {
			tr.add()
		}
		tr.seal()
	}
	for i := range 100 {
		tr.done(11, i) // message 11 whole
	}
	for _, i := range []int{0, 63, 64, 99} {
		tr.done(13, i)
	}
	tr.done(12, 7)
	pos, done := tr.state()
	if pos != 11 {
		t.Fatalf("position %d, want 11", pos)
	}
	restored, err := decodeDone(done)
	if err != nil {
		t.Fatal(err)
	}
	again := newTracker(pos, restored)
	for seq, want := range map[uint64][]int{12: {7}, 13: {0, 63, 64, 99}} {
		finished := again.open(seq)
		var got []int
		for i := range 100 {
			if finished(i) {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("message %d: finished %v, want %v", seq, got, want)
		}
	}
	if _, err := decodeDone([]byte{0x05, 0x09}); err == nil {
		t.Error("a truncated state decodes")
	}
}
