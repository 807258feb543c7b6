package dedup_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/goleak"

	"github.com/confluxcdp/conflux/internal/process/dedup"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// day0 is a bucket boundary (a UTC midnight) that the tests start from.
var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// clock is a fake clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// open opens an index in dir with a fake clock and the given window, and
// closes it at the end of the test.
func open(t *testing.T, dir string, c *clock, mod ...func(*dedup.Options)) *dedup.Index {
	t.Helper()
	opts := dedup.Options{
		Dir:                   dir,
		Window:                3 * day,
		ExpectedKeysPerBucket: 1000,
		Now:                   c.Now,
		Logger:                slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, m := range mod {
		m(&opts)
	}
	ix, err := dedup.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ix.Close(); err != nil {
			t.Error(err)
		}
	})
	return ix
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// ids returns n ids named prefix-0, prefix-1, …
func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func commit(t *testing.T, ix *dedup.Index, checkpoint uint64, at time.Time, ids ...string) {
	t.Helper()
	entries := make([]dedup.Entry, len(ids))
	for i, id := range ids {
		entries[i] = dedup.Entry{ID: []byte(id), At: at}
	}
	if err := ix.Commit(entries, checkpoint); err != nil {
		t.Fatal(err)
	}
}

func contains(t *testing.T, ix *dedup.Index, id string) bool {
	t.Helper()
	ok, err := ix.Contains([]byte(id))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// wantAll fails unless every id is (want true) or none is (want false) a
// duplicate.
func wantAll(t *testing.T, ix *dedup.Index, want bool, ids []string) {
	t.Helper()
	wrong := 0
	for _, id := range ids {
		if contains(t, ix, id) != want {
			if wrong < 3 {
				t.Errorf("Contains(%q) = %v, want %v", id, !want, want)
			}
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d ids wrong", wrong, len(ids))
	}
}

func TestContains(t *testing.T) {
	c := newClock(day0.Add(12 * time.Hour))
	ix := open(t, t.TempDir(), c)
	long := strings.Repeat("x", 10_000)
	commit(t, ix, 1, c.Now(), "a", "b", "550e8400-e29b-41d4-a716-446655440000", long, "ünïcødé")
	commit(t, ix, 2, c.Now().Add(-30*time.Hour), "yesterday")
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"b", true},
		{"550e8400-e29b-41d4-a716-446655440000", true},
		{long, true},
		{"ünïcødé", true},
		{"yesterday", true},
		{"c", false},
		{"A", false},
		{"a ", false},
		{"550e8400-e29b-41d4-a716-446655440001", false},
		{long + "x", false},
		{long[1:], false},
	}
	for _, tc := range tests {
		t.Run(tc.id[:min(len(tc.id), 40)], func(t *testing.T) {
			if got := contains(t, ix, tc.id); got != tc.want {
				t.Errorf("Contains = %v, want %v", got, tc.want)
			}
		})
	}
	// Many distinct ids: none is a duplicate before it is committed, each
	// is after.
	more := ids("more", 2000)
	wantAll(t, ix, false, more)
	for i := 0; i < len(more); i += 500 {
		commit(t, ix, uint64(3+i), c.Now(), more[i:i+500]...)
	}
	wantAll(t, ix, true, more)
	wantAll(t, ix, false, ids("other", 2000))

	if _, err := ix.Contains(nil); !errors.Is(err, dedup.ErrEmptyID) {
		t.Errorf("Contains(nil): %v, want ErrEmptyID", err)
	}
	if err := ix.Commit([]dedup.Entry{{ID: []byte("x"), At: c.Now()}, {At: c.Now()}}, 9999); !errors.Is(err, dedup.ErrEmptyID) {
		t.Errorf("Commit with an empty id: %v, want ErrEmptyID", err)
	}
	if contains(t, ix, "x") {
		t.Error("a refused Commit recorded an id")
	}
	st := ix.Stats()
	if st.Keys != 2006 || st.Buckets != 2 || st.FilterBytes != 2*2016 || st.DiskBytes <= 0 {
		t.Errorf("Stats = %+v, want 2006 keys in 2 buckets of 2016 filter bytes", st)
	}
}

func TestWindow(t *testing.T) {
	// Window 3 days, buckets of one day: an id committed at day0+6h lives
	// in the bucket of day 0, which expires at day 4 (day 0 + 1 day span +
	// 3 days window).
	at := day0.Add(6 * time.Hour)
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"same time", at, true},
		{"one day later", at.Add(day), true},
		{"just within the window", at.Add(3*day - time.Nanosecond), true},
		{"beyond the window, bucket still live", at.Add(3*day + 17*time.Hour), true},
		{"bucket expired", day0.Add(4 * day), false},
		{"long after", day0.Add(40 * day), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock(at)
			ix := open(t, t.TempDir(), c)
			commit(t, ix, 1, at, "id")
			c.Set(tc.now)
			if got := contains(t, ix, "id"); got != tc.want {
				t.Errorf("Contains at %v = %v, want %v", tc.now, got, tc.want)
			}
		})
	}
}

func TestExpireDropsWholeBuckets(t *testing.T) {
	dir := t.TempDir()
	c := newClock(day0)
	ix := open(t, dir, c)
	// Three buckets: day 0 (early and late in the day), day 1, day 2.
	early, late := ids("d0-early", 100), ids("d0-late", 100)
	d1, d2 := ids("d1", 100), ids("d2", 100)
	commit(t, ix, 1, day0.Add(time.Hour), early...)
	commit(t, ix, 2, day0.Add(23*time.Hour), late...)
	c.Set(day0.Add(day + time.Hour))
	commit(t, ix, 3, c.Now(), d1...)
	c.Set(day0.Add(2*day + time.Hour))
	commit(t, ix, 4, c.Now(), d2...)
	if st := ix.Stats(); st.Buckets != 3 || st.Keys != 400 {
		t.Fatalf("Stats = %+v, want 400 keys in 3 buckets", st)
	}
	filter0 := filepath.Join(dir, "filters", fmt.Sprintf("%016x.filter", day0.UnixNano()/int64(day)))
	if _, err := os.Stat(filter0); err != nil {
		t.Fatalf("day 0's filter is not saved once day 0 is over: %v", err)
	}

	// At day 3 + 12h the window starts at day 0 + 12h: day 0's late ids
	// are within it, so their bucket stays, early ids and all.
	c.Set(day0.Add(3*day + 12*time.Hour))
	if err := ix.Expire(); err != nil {
		t.Fatal(err)
	}
	wantAll(t, ix, true, early) // older than the window, kept with their bucket
	wantAll(t, ix, true, late)

	// At day 4, day 0 is wholly beyond the window: dropped, all at once.
	c.Set(day0.Add(4 * day))
	if err := ix.Expire(); err != nil {
		t.Fatal(err)
	}
	wantAll(t, ix, false, early)
	wantAll(t, ix, false, late)
	wantAll(t, ix, true, d1)
	wantAll(t, ix, true, d2)
	if st := ix.Stats(); st.Buckets != 2 || st.Keys != 200 {
		t.Errorf("after expiry Stats = %+v, want 200 keys in 2 buckets", st)
	}
	if _, err := os.Stat(filter0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the expired bucket's filter file is still there: %v", err)
	}

	// The ids are gone from Pebble, not only from memory: reopened with
	// the clock turned back to day 0, the index no longer has them.
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	c.Set(day0.Add(12 * time.Hour))
	ix = open(t, dir, c)
	wantAll(t, ix, false, early)
	wantAll(t, ix, false, late)
	wantAll(t, ix, true, d1)

	// And a scan of day 0, made again by a new id, finds only that id.
	commit(t, ix, 5, c.Now(), "again")
	closeIndex(t, ix)
	if err := os.Remove(filter0); err != nil {
		t.Fatal(err)
	}
	ix = open(t, dir, c)
	if st := ix.Stats(); st.Rebuilt != 1 || st.Keys != 201 {
		t.Errorf("after rescanning day 0 Stats = %+v, want 1 bucket rebuilt and 201 keys", st)
	}
	wantAll(t, ix, false, early)
	wantAll(t, ix, true, []string{"again"})
}

func TestCommitExpires(t *testing.T) {
	c := newClock(day0)
	ix := open(t, t.TempDir(), c)
	commit(t, ix, 1, c.Now(), "old")
	c.Set(day0.Add(10 * day))
	commit(t, ix, 2, c.Now(), "new")
	if st := ix.Stats(); st.Buckets != 1 || st.Keys != 1 {
		t.Errorf("Stats = %+v, want Commit to have dropped the old bucket", st)
	}
	if contains(t, ix, "old") || !contains(t, ix, "new") {
		t.Error("want old gone and new there")
	}
}

func TestCommitTimes(t *testing.T) {
	c := newClock(day0.Add(10 * day))
	ix := open(t, t.TempDir(), c)
	now := c.Now()
	commit(t, ix, 1, now.Add(-5*day), "beyond the window")
	commit(t, ix, 2, now.Add(-2*day), "within")
	commit(t, ix, 3, now.Add(2*day), "future")
	st := ix.Stats()
	if st.Skipped != 1 || st.Keys != 2 || st.Buckets != 2 {
		t.Errorf("Stats = %+v, want 1 skipped, 2 keys in 2 buckets (the future one counted now)", st)
	}
	if contains(t, ix, "beyond the window") || !contains(t, ix, "within") || !contains(t, ix, "future") {
		t.Error("want only the id beyond the window missing")
	}
	// The future id went to today's bucket: it expires with today's ids.
	c.Set(now.Add(4*day + time.Nanosecond).Truncate(day))
	if contains(t, ix, "future") {
		t.Error("the future id outlived today's bucket")
	}
}

func TestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	c := newClock(day0)
	ix := open(t, dir, c)
	if cp := ix.Checkpoint(); cp != 0 {
		t.Fatalf("new index: Checkpoint = %d, want 0", cp)
	}
	commit(t, ix, 5, c.Now(), "a")
	if err := ix.Commit([]dedup.Entry{{ID: []byte("b"), At: c.Now()}}, 4); !errors.Is(err, dedup.ErrCheckpointBehind) {
		t.Errorf("Commit behind: %v, want ErrCheckpointBehind", err)
	}
	if contains(t, ix, "b") {
		t.Error("a refused Commit recorded an id")
	}
	commit(t, ix, 5, c.Now(), "a") // a repeated Commit is allowed
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}

	ix = open(t, dir, c)
	if cp := ix.Checkpoint(); cp != 5 {
		t.Errorf("reopened: Checkpoint = %d, want 5", cp)
	}
	commit(t, ix, 7, c.Now()) // no ids: moves the checkpoint only
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix = open(t, dir, c)
	if cp, st := ix.Checkpoint(), ix.Stats(); cp != 7 || st.Checkpoint != 7 || st.Keys != 2 {
		t.Errorf("reopened: Checkpoint = %d, Stats = %+v; want 7, 2 keys", cp, st)
	}
}

// copyDir copies the index in src to a new directory while it is open: the
// image a crash leaves, as no Commit runs and the test's writes are far too
// few for Pebble to flush or compact during the copy.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestCrashRecovery(t *testing.T) {
	t.Run("never closed", func(t *testing.T) {
		dir := t.TempDir()
		c := newClock(day0.Add(day + time.Hour))
		ix := open(t, dir, c)
		d0, d1 := ids("d0", 300), ids("d1", 300)
		commit(t, ix, 10, day0.Add(20*time.Hour), d0[:150]...)
		commit(t, ix, 11, c.Now(), d1[:150]...)
		commit(t, ix, 12, day0.Add(21*time.Hour), d0[150:]...)
		commit(t, ix, 13, c.Now(), d1[150:]...)

		crashed := open(t, copyDir(t, dir), c)
		wantAll(t, crashed, true, d0)
		wantAll(t, crashed, true, d1)
		wantAll(t, crashed, false, ids("other", 300))
		if st := crashed.Stats(); st.Checkpoint != 13 || st.Rebuilt != 2 || st.Keys != 600 {
			t.Errorf("after the crash Stats = %+v, want checkpoint 13, 2 buckets rebuilt, 600 keys", st)
		}
	})

	t.Run("filter files stale", func(t *testing.T) {
		dir := t.TempDir()
		c := newClock(day0.Add(day + time.Hour))
		ix := open(t, dir, c)
		before := ids("before", 200)
		commit(t, ix, 1, day0.Add(20*time.Hour), before[:100]...)
		commit(t, ix, 2, c.Now(), before[100:]...)
		if err := ix.Close(); err != nil { // saves both filters
			t.Fatal(err)
		}
		ix = open(t, dir, c)
		if st := ix.Stats(); st.Rebuilt != 0 {
			t.Fatalf("clean reopen rebuilt %d buckets, want the filter files used", st.Rebuilt)
		}
		after := ids("after", 200)
		commit(t, ix, 3, day0.Add(20*time.Hour), after[:100]...)
		commit(t, ix, 4, c.Now(), after[100:]...)

		crashed := open(t, copyDir(t, dir), c)
		wantAll(t, crashed, true, before)
		wantAll(t, crashed, true, after)
		if st := crashed.Stats(); st.Checkpoint != 4 || st.Rebuilt != 2 {
			t.Errorf("after the crash Stats = %+v, want checkpoint 4 and both stale filters rebuilt", st)
		}
	})
}

func TestFilterFileDamaged(t *testing.T) {
	tests := []struct {
		name string
		// damage spoils the filter file at path; stale is a valid copy of
		// it from before the last Commit.
		damage func(t *testing.T, path string, stale []byte)
		mod    func(*dedup.Options)
	}{
		{name: "bit flipped", damage: func(t *testing.T, path string, _ []byte) {
			b := readFile(t, path)
			b[len(b)/2] ^= 0x04
			writeFile(t, path, b)
		}},
		{name: "torn", damage: func(t *testing.T, path string, _ []byte) {
			writeFile(t, path, readFile(t, path)[:700])
		}},
		{name: "empty", damage: func(t *testing.T, path string, _ []byte) {
			writeFile(t, path, nil)
		}},
		{name: "missing", damage: func(t *testing.T, path string, _ []byte) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "stale", damage: func(t *testing.T, path string, stale []byte) {
			writeFile(t, path, stale)
		}},
		{name: "other size", damage: func(*testing.T, string, []byte) {}, mod: func(o *dedup.Options) {
			o.ExpectedKeysPerBucket = 5000
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := newClock(day0.Add(time.Hour))
			first, second := ids("first", 200), ids("second", 200)
			ix := open(t, dir, c)
			commit(t, ix, 1, c.Now(), first...)
			closeIndex(t, ix)
			files, _ := filepath.Glob(filepath.Join(dir, "filters", "*.filter"))
			if len(files) != 1 {
				t.Fatalf("filter files %v, want one", files)
			}
			stale := readFile(t, files[0])
			ix = open(t, dir, c)
			commit(t, ix, 2, c.Now(), second...)
			closeIndex(t, ix)

			tc.damage(t, files[0], stale)
			mods := []func(*dedup.Options){}
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			ix = open(t, dir, c, mods...)
			if st := ix.Stats(); st.Rebuilt != 1 || st.Keys != 400 {
				t.Errorf("Stats = %+v, want the bucket rebuilt with 400 keys", st)
			}
			wantAll(t, ix, true, first)
			wantAll(t, ix, true, second)
			wantAll(t, ix, false, ids("other", 400))
			closeIndex(t, ix)

			// The rebuilt filter was saved: the next open uses it.
			ix = open(t, dir, c, mods...)
			if st := ix.Stats(); st.Rebuilt != 0 {
				t.Errorf("second reopen rebuilt %d buckets, want the saved filter used", st.Rebuilt)
			}
			wantAll(t, ix, true, second)
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func closeIndex(t *testing.T, ix *dedup.Index) {
	t.Helper()
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentContainsDuringCommit(t *testing.T) {
	c := newClock(day0)
	ix := open(t, t.TempDir(), c, func(o *dedup.Options) { o.ExpectedKeysPerBucket = 20_000 })
	const batches, perBatch, readers = 40, 250, 4
	id := func(batch, i int) string { return fmt.Sprintf("batch%d-%d", batch, i) }
	var done atomic.Int64 // batches committed
	var wg sync.WaitGroup
	errs := make(chan error, readers+1)
	wg.Go(func() {
		for i := range batches {
			at := day0.Add(time.Duration(i) * time.Hour) // crosses into day 1
			c.Set(at)
			entries := make([]dedup.Entry, 0, perBatch)
			for j := range perBatch {
				entries = append(entries, dedup.Entry{ID: []byte(id(i, j)), At: at})
			}
			if err := ix.Commit(entries, uint64(i+1)); err != nil {
				errs <- err
				return
			}
			done.Store(int64(i + 1))
		}
	})
	for r := range readers {
		wg.Go(func() {
			for n := 0; done.Load() < batches; n++ {
				committed := int(done.Load())
				if committed > 0 {
					old := id((n+r)%committed, n%perBatch)
					if ok, err := ix.Contains([]byte(old)); err != nil || !ok {
						errs <- fmt.Errorf("Contains(%q) of a committed batch = %v, %v", old, ok, err)
						return
					}
				}
				never := fmt.Sprintf("never-%d-%d", r, n)
				if ok, err := ix.Contains([]byte(never)); err != nil || ok {
					errs <- fmt.Errorf("Contains(%q) never committed = %v, %v", never, ok, err)
					return
				}
				_ = ix.Stats().Keys
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := ix.Stats(); st.Keys != batches*perBatch || st.Checkpoint != batches {
		t.Errorf("Stats = %+v, want %d keys at checkpoint %d", st, batches*perBatch, batches)
	}
}

func TestContainsDuringClose(t *testing.T) {
	c := newClock(day0)
	ix := open(t, t.TempDir(), c)
	commit(t, ix, 1, c.Now(), "a")
	var wg, started sync.WaitGroup
	for range 4 {
		started.Add(1)
		wg.Go(func() {
			running := sync.OnceFunc(started.Done)
			defer running()
			for n := 0; ; n++ {
				if n == 100 {
					running()
				}
				ok, err := ix.Contains([]byte("a"))
				if errors.Is(err, dedup.ErrClosed) {
					return
				}
				if err != nil || !ok {
					t.Errorf("Contains = %v, %v", ok, err)
					return
				}
			}
		})
	}
	started.Wait() // each reader is running when Close comes
	closeIndex(t, ix)
	wg.Wait()
}

func TestClosed(t *testing.T) {
	ix := open(t, t.TempDir(), newClock(day0))
	commit(t, ix, 3, day0, "a")
	closeIndex(t, ix)
	if err := ix.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := ix.Contains([]byte("a")); !errors.Is(err, dedup.ErrClosed) {
		t.Errorf("Contains after Close: %v, want ErrClosed", err)
	}
	if err := ix.Commit(nil, 4); !errors.Is(err, dedup.ErrClosed) {
		t.Errorf("Commit after Close: %v, want ErrClosed", err)
	}
	if err := ix.Expire(); !errors.Is(err, dedup.ErrClosed) {
		t.Errorf("Expire after Close: %v, want ErrClosed", err)
	}
	if cp := ix.Checkpoint(); cp != 3 {
		t.Errorf("Checkpoint after Close = %d, want 3", cp)
	}
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		opts    dedup.Options
		wantErr string
	}{
		{"no dir", dedup.Options{}, "Dir is required"},
		{"span too short", dedup.Options{Dir: dir, BucketSpan: time.Millisecond}, "BucketSpan 1ms is shorter than 1s"},
		{"negative window", dedup.Options{Dir: dir, Window: -time.Hour}, "Window -1h0m0s is negative"},
		{"too many buckets", dedup.Options{Dir: dir, BucketSpan: time.Second}, "more than 4096"},
		{"negative keys", dedup.Options{Dir: dir, ExpectedKeysPerBucket: -1}, "ExpectedKeysPerBucket -1 is outside"},
		{"too many keys", dedup.Options{Dir: dir, ExpectedKeysPerBucket: 1 << 40}, "ExpectedKeysPerBucket 1099511627776 is outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := dedup.Open(tc.opts)
			if err == nil {
				ix.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestBucketSpanFixed(t *testing.T) {
	dir := t.TempDir()
	c := newClock(day0)
	closeIndex(t, open(t, dir, c))
	_, err := dedup.Open(dedup.Options{Dir: dir, BucketSpan: time.Hour, Window: 3 * day, Now: c.Now})
	if err == nil || !strings.Contains(err.Error(), "created with BucketSpan 24h0m0s, options ask 1h0m0s") {
		t.Errorf("Open with another BucketSpan: %v", err)
	}
	// The window may change, even to less than a bucket.
	ix := open(t, dir, c, func(o *dedup.Options) { o.Window = 10 * day })
	commit(t, ix, 1, c.Now(), "a")
	closeIndex(t, ix)
	ix = open(t, dir, c, func(o *dedup.Options) { o.Window = time.Hour })
	c.Set(day0.Add(23 * time.Hour))
	if !contains(t, ix, "a") {
		t.Error("with a 1h window, an id is kept while its bucket is live")
	}
	c.Set(day0.Add(day + time.Hour))
	if contains(t, ix, "a") {
		t.Error("with a 1h window, an id outlived Window+BucketSpan")
	}
}

func TestSharedCache(t *testing.T) {
	cache := pebble.NewCache(8 << 20)
	c := newClock(day0)
	var parts []*dedup.Index
	for p := range 3 {
		parts = append(parts, open(t, filepath.Join(t.TempDir(), fmt.Sprint(p)), c, func(o *dedup.Options) { o.Cache = cache }))
	}
	cache.Unref() // the indexes hold their own references
	for p, ix := range parts {
		commit(t, ix, 1, c.Now(), fmt.Sprintf("id-of-%d", p))
	}
	for p, ix := range parts {
		for q := range parts {
			if got := contains(t, ix, fmt.Sprintf("id-of-%d", q)); got != (p == q) {
				t.Errorf("partition %d: Contains(id-of-%d) = %v", p, q, got)
			}
		}
	}
}

func TestContainsAllocs(t *testing.T) {
	c := newClock(day0.Add(2 * day))
	ix := open(t, t.TempDir(), c)
	for d := range 3 {
		commit(t, ix, uint64(d+1), day0.Add(time.Duration(d)*day), ids(fmt.Sprint("day", d), 500)...)
	}
	miss, hit := []byte("never committed"), []byte("day0-7")
	if contains(t, ix, string(miss)) || !contains(t, ix, string(hit)) {
		t.Fatal("setup: wrong answers")
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = ix.Contains(miss) }); n != 0 {
		t.Errorf("Contains of a new id: %v allocations, want 0", n)
	}
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool allocate") // the hit path
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = ix.Contains(hit) }); n != 0 {
		t.Errorf("Contains of a duplicate: %v allocations, want 0", n)
	}
}

func TestLogs(t *testing.T) {
	dir := t.TempDir()
	c := newClock(day0)
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ix := open(t, dir, c, func(o *dedup.Options) { o.Logger = logger })
	commit(t, ix, 1, c.Now(), "a")
	closeIndex(t, ix)
	files, _ := filepath.Glob(filepath.Join(dir, "filters", "*.filter"))
	writeFile(t, files[0], []byte("junk"))
	closeIndex(t, open(t, dir, c, func(o *dedup.Options) { o.Logger = logger }))
	for _, want := range []string{"msg=\"dedup index opened\"", "msg=\"dedup filter file unusable, rebuilding\"", "msg=\"dedup index closed\"", "dedup_dir="} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
}
