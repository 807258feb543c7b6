package dedup_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/process/dedup"
)

// benchIndex returns an index holding perDay ids in each of days buckets,
// committed 1,000 at a time, with the clock at the end of the last day.
func benchIndex(b *testing.B, days, perDay int) (*dedup.Index, func(d, i int) []byte) {
	b.Helper()
	id := func(d, i int) []byte { return fmt.Appendf(nil, "%08x-e29b-41d4-a716-%012x", d, i) }
	c := newClock(day0.Add(time.Duration(days)*day - time.Hour))
	ix, err := dedup.Open(dedup.Options{
		Dir:                   b.TempDir(),
		Window:                time.Duration(days) * day,
		ExpectedKeysPerBucket: int64(perDay),
		Now:                   c.Now,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ix.Close() })
	var cp uint64
	entries := make([]dedup.Entry, 0, 1000)
	for d := range days {
		at := day0.Add(time.Duration(d)*day + time.Hour)
		for i := range perDay {
			entries = append(entries, dedup.Entry{ID: id(d, i), At: at})
			if len(entries) == cap(entries) || i == perDay-1 {
				cp++
				if err := ix.Commit(entries, cp); err != nil {
					b.Fatal(err)
				}
				entries = entries[:0]
			}
		}
	}
	return ix, id
}

// BenchmarkContains checks ids against an index of 30 daily buckets of
// 10,000 ids each: new ids (miss), and ids of random days (hit).
func BenchmarkContains(b *testing.B) {
	const days, perDay = 30, 10_000
	ix, id := benchIndex(b, days, perDay)
	const n = 1 << 14
	for _, tc := range []struct {
		name string
		id   func(i int) []byte
		want bool
	}{
		{"miss", func(i int) []byte { return id(days+1, i) }, false},
		{"hit", func(i int) []byte { return id(i*7919%days, i%perDay) }, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			keys := make([][]byte, n)
			for i := range keys {
				keys[i] = tc.id(i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ok, err := ix.Contains(keys[i%n])
				if err != nil || ok != tc.want {
					b.Fatalf("Contains(%s) = %v, %v", keys[i%n], ok, err)
				}
				i++
			}
		})
	}
}

// BenchmarkCommit commits batches of 1,000 new ids, synced; ns/op is per
// batch.
func BenchmarkCommit(b *testing.B) {
	c := newClock(day0)
	ix, err := dedup.Open(dedup.Options{Dir: b.TempDir(), Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ix.Close() })
	const batch = 1000
	entries := make([]dedup.Entry, batch)
	var cp uint64
	b.ReportAllocs()
	for b.Loop() {
		cp++
		for i := range entries {
			id := strconv.AppendUint(entries[i].ID[:0], cp, 16)
			id = append(id, '-')
			entries[i] = dedup.Entry{ID: strconv.AppendInt(id, int64(i), 10), At: day0}
		}
		if err := ix.Commit(entries, cp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ids/s")
}
