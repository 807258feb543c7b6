package deliver

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestShardHas(t *testing.T) {
	for n := 1; n <= 8; n++ {
		counts := make([]int, n)
		for seq := uint64(1); seq <= 200; seq++ {
			for idx := range 50 {
				owners := 0
				for k := range n {
					if (shard{k, n}).has(seq, idx) {
						owners++
						counts[k]++
					}
				}
				if owners != 1 {
					t.Fatalf("record %d.%d has %d owners among %d shards, want 1", seq, idx, owners, n)
				}
			}
		}
		// Even within 10%: a shard is a share of the destination's load.
		for k, c := range counts {
			if want := 10000 / n; c < want*9/10 || c > want*11/10 {
				t.Errorf("%d shards: shard %d has %d of 10000 records, want about %d", n, k, c, want)
			}
		}
	}
}

func TestShardKey(t *testing.T) {
	for _, sh := range []shard{{0, 1}, {0, 2}, {1, 2}, {63, 64}} {
		key := sh.key("dest-1")
		dest, got, err := parseKey(key)
		if err != nil || dest != "dest-1" || got != sh {
			t.Errorf("parseKey(%q) = %q %v %v, want dest-1 %v", key, dest, got, err, sh)
		}
	}
	if key := (shard{0, 1}).key("d"); key != "d" {
		t.Errorf("the key of a one-shard queue is %q, want the destination's id", key)
	}
	for _, bad := range []string{"d/", "d/1", "d/2-of-2", "d/-1-of-2", "d/0-of-1", "d/a-of-2", "d/0-of-x"} {
		if _, _, err := parseKey(bad); err == nil {
			t.Errorf("parseKey(%q) succeeded, want an error", bad)
		}
	}
}

func TestShardPart(t *testing.T) {
	cases := []struct{ total, n int }{{8, 1}, {8, 3}, {8, 8}, {10, 4}, {256, 64}, {1, 1}}
	for _, tc := range cases {
		sum := 0
		for k := range tc.n {
			p := (shard{k, tc.n}).part(tc.total)
			if p < 1 {
				t.Errorf("shard %d of %d gets %d of %d", k, tc.n, p, tc.total)
			}
			sum += p
		}
		if sum != tc.total {
			t.Errorf("%d shards' parts of %d add up to %d", tc.n, tc.total, sum)
		}
	}
}

func TestInherited(t *testing.T) {
	// Two shards stood at 10 and 12; shard 1 had also finished record 3
	// of message 14.
	rows := []storedPosition{
		{shard: shard{0, 2}, seq: 10},
		{shard: shard{1, 2}, seq: 12, done: map[uint64][]uint64{14: {1 << 3}}},
		{shard: shard{0, 3}, seq: 5}, // the new count's own: not inherited
	}
	in := newInherited(rows, 3)
	if len(in.from) != 2 || in.until != 14 {
		t.Fatalf("inherited from %d positions until %d, want 2 until 14", len(in.from), in.until)
	}
	owner := func(seq uint64, idx int) int {
		for k := range 2 {
			if (shard{k, 2}).has(seq, idx) {
				return k
			}
		}
		return -1
	}
	for seq := uint64(1); seq <= 16; seq++ {
		for idx := range 8 {
			var want bool
			switch owner(seq, idx) {
			case 0:
				want = seq <= 10
			case 1:
				want = seq <= 12 || (seq == 14 && idx == 3)
			}
			if got := in.finished(seq, idx); got != want {
				t.Errorf("record %d.%d (old shard %d): finished %v, want %v", seq, idx, owner(seq, idx), got, want)
			}
		}
	}
	if none := newInherited(rows[2:], 3); len(none.from) != 0 || none.finished(1, 0) {
		t.Error("a queue with only its own count's positions inherits something")
	}
}

func TestShardBreakerGauge(t *testing.T) {
	m := newMetrics(nil)
	a, b := m.forDestination("d", 0), m.forDestination("d", 1)
	gauge := func() float64 { return testutil.ToFloat64(m.breaker.WithLabelValues("d")) }
	a.breakerState(breakerOpen)
	b.breakerState(breakerClosed)
	if g := gauge(); g != float64(breakerOpen) {
		t.Errorf("one shard open, one closed: gauge %v, want open (%d)", g, breakerOpen)
	}
	b.breakerState(breakerHalfOpen)
	m.leave("d", 0) // the open shard moved to another node
	if g := gauge(); g != float64(breakerHalfOpen) {
		t.Errorf("after the open shard left: gauge %v, want half-open (%d)", g, breakerHalfOpen)
	}
}
