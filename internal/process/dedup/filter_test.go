package dedup

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// testKey is the key of the i-th id of a test, salted so that the keys of
// different sets are distinct.
func testKey(salt string, i int) key {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return hashID(append([]byte(salt), b[:]...))
}

func TestFilterFalsePositiveRate(t *testing.T) {
	const capacity = 50_000
	const probes = 250_000 // the rate's standard error is below 0.03 points
	tests := []struct {
		name  string
		load  float64 // keys added, as a fraction of capacity
		limit float64 // most false positives allowed, as a fraction of probes
	}{
		// Measured: 0.13%, 0.003%, 0.92% and 3.3%; the limits leave room
		// for other keys, not for a broken filter.
		{"at capacity", 1, 0.002},
		{"half", 0.5, 0.0001},
		{"1.5 times", 1.5, 0.012},
		{"twice", 2, 0.04},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(capacity)
			n := int(tc.load * capacity)
			for i := range n {
				k := testKey("in", i)
				f.add(&k)
			}
			for i := range n {
				if k := testKey("in", i); !f.mayContain(&k) {
					t.Fatalf("false negative: key %d of %d added", i, n)
				}
			}
			fp := 0
			for i := range probes {
				if k := testKey("out", i); f.mayContain(&k) {
					fp++
				}
			}
			rate := float64(fp) / probes
			t.Logf("%d keys in a filter for %d (%d bytes): %.3f%% false positives", n, capacity, f.bytes(), 100*rate)
			if rate > tc.limit {
				t.Errorf("false-positive rate %.3f%%, want at most %.3f%%", 100*rate, 100*tc.limit)
			}
		})
	}
}

func TestFilterSize(t *testing.T) {
	for _, tc := range []struct {
		capacity int64
		bytes    int64
	}{
		{0, 32}, {1, 32}, {16, 32}, {17, 64}, {1 << 20, 2 << 20},
	} {
		if got := newFilter(tc.capacity).bytes(); got != tc.bytes {
			t.Errorf("newFilter(%d).bytes() = %d, want %d", tc.capacity, got, tc.bytes)
		}
	}
}

func TestFilterFile(t *testing.T) {
	f := newFilter(1000)
	for i := range 1000 {
		k := testKey("in", i)
		f.add(&k)
	}
	path := filepath.Join(t.TempDir(), "b.filter")
	if err := writeFilterFile(path, f, 42, 1000); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("round trip", func(t *testing.T) {
		g, keys, err := readFilterFile(path, 42)
		if err != nil {
			t.Fatal(err)
		}
		if keys != 1000 || len(g.words) != len(f.words) {
			t.Fatalf("read keys=%d words=%d, want 1000 and %d", keys, len(g.words), len(f.words))
		}
		for i := range f.words {
			if g.words[i] != f.words[i] {
				t.Fatalf("word %d: %x, want %x", i, g.words[i], f.words[i])
			}
		}
		if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("temporary file left behind: %v", err)
		}
	})

	t.Run("missing", func(t *testing.T) {
		_, _, err := readFilterFile(path+".none", 42)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
	})

	damages := []struct {
		name   string
		seq    uint64
		damage func([]byte) []byte
	}{
		{"stale", 43, func(b []byte) []byte { return b }},
		{"bit flipped in the words", 42, func(b []byte) []byte { b[100] ^= 0x10; return b }},
		{"bit flipped in the checksum", 42, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated", 42, func(b []byte) []byte { return b[:len(b)/2] }},
		{"torn to the header", 42, func(b []byte) []byte { return b[:20] }},
		{"empty", 42, func(b []byte) []byte { return nil }},
		{"wrong magic", 42, func(b []byte) []byte { b[0] = 'X'; return b }},
	}
	for _, tc := range damages {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "b.filter")
			if err := os.WriteFile(p, tc.damage(append([]byte(nil), good...)), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, _, err := readFilterFile(p, tc.seq); !errors.Is(err, errFilterStale) {
				t.Fatalf("err = %v, want errFilterStale", err)
			}
		})
	}
}

func BenchmarkFilterMayContain(b *testing.B) {
	f := newFilter(1 << 20)
	for i := range 1 << 20 {
		k := testKey("in", i)
		f.add(&k)
	}
	keys := make([]key, 1<<16)
	for i := range keys {
		keys[i] = testKey("out", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.mayContain(&keys[i&(len(keys)-1)])
		i++
	}
}
