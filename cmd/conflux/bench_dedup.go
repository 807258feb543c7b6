package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/confluxcdp/conflux/internal/process/dedup"
)

// benchDedup runs `conflux bench dedup`: it commits -ids distinct ids to
// one partition's dedup index, in batches as the processing stage does,
// with receivedAt times spread evenly over the window (a fake clock
// follows them), then checks -lookups ids of which -repeat are ids already
// committed, and reports both rates, resident memory and disk use.
func benchDedup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flagSet("bench dedup", stderr)
	nIDs := flags.Int64("ids", 50_000_000, "distinct ids to commit")
	nLookups := flags.Int64("lookups", 10_000_000, "ids to check after the load")
	repeat := flags.Float64("repeat", 0.10, "fraction of the lookups that are ids already committed, chosen at random")
	dir := flags.String("dir", "", "index directory, kept afterwards; empty: a temporary directory, removed")
	batch := flags.Int("batch", 1000, "ids per Commit")
	window := flags.Duration("window", dedup.DefaultWindow, "dedup window; the ids' receivedAt times spread evenly over it")
	span := flags.Duration("bucket-span", dedup.DefaultBucketSpan, "time one bucket covers")
	expected := flags.Int64("expected-keys", 0, "ExpectedKeysPerBucket; 0: the ids one bucket gets (ids × bucket-span / window)")
	cacheSize := flags.Int64("cache", dedup.DefaultCacheSize, "Pebble block cache, bytes")
	seed := flags.Uint64("seed", 1, "seed of the ids and of the lookups' choice")
	skipLoad := flags.Bool("skip-load", false, "skip the load: check against the index an earlier run with the same -ids, -seed, -window and -bucket-span left in -dir")
	cpuprofile := flags.String("cpuprofile", "", "write a CPU profile of the lookups to `file`")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	switch {
	case *nIDs < 1 || *nLookups < 0 || *batch < 1:
		return errors.New("-ids and -batch must be at least 1, -lookups at least 0")
	case *repeat < 0 || *repeat > 1:
		return fmt.Errorf("-repeat %v: want 0 to 1", *repeat)
	case *span <= 0 || *window < *span:
		return fmt.Errorf("-window %v, -bucket-span %v: want 0 < bucket-span <= window", *window, *span)
	}
	buckets := int64(*window / *span)
	if *expected == 0 {
		*expected = (*nIDs + buckets - 1) / buckets
	}
	if *skipLoad && *dir == "" {
		return errors.New("-skip-load needs -dir")
	}
	if !*skipLoad && *dir != "" {
		if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
			return fmt.Errorf("-dir %s is not empty: remove it, or pass -skip-load to check against the index in it", *dir)
		}
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "conflux-bench-dedup-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	logger, err := newLogger(stderr, "warn", "text")
	if err != nil {
		return err
	}

	// The ids' receivedAt times run from start to start+window, and the
	// clock follows the last one committed, so nothing expires and every
	// bucket of the window gets its share.
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Truncate(*span)
	step := *window / time.Duration(*nIDs)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	cache := pebble.NewCache(*cacheSize)
	opts := dedup.Options{
		Dir:                   *dir,
		Window:                *window,
		BucketSpan:            *span,
		ExpectedKeysPerBucket: *expected,
		Cache:                 cache,
		Now:                   func() time.Time { return time.Unix(0, clock.Load()) },
		Logger:                logger,
	}
	began := time.Now()
	ix, err := dedup.Open(opts)
	cache.Unref()
	if err != nil {
		return err
	}
	defer func() { _ = ix.Close() }()
	ids := dedupBenchIDs{seed: *seed}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	fmt.Fprintf(out, "dedup index: %s   GOMAXPROCS=%d   window %v, buckets of %v, %s expected keys per bucket, cache %s\n",
		*dir, runtime.GOMAXPROCS(0), *window, *span, dedupBenchCount(*expected), dedupBenchMiB(*cacheSize))
	if st := ix.Stats(); st.Buckets > 0 {
		fmt.Fprintf(out, "open:    %.2f s, %d buckets, %d rebuilt by scanning\n", time.Since(began).Seconds(), st.Buckets, st.Rebuilt)
	}
	out.Flush()

	// Load.
	if !*skipLoad {
		if err := dedupBenchLoad(ctx, ix, out, ids, start, step, &clock, *nIDs, *batch); err != nil {
			return err
		}
	}
	out.Flush()

	// Lookups, with the clock at the end of the window: every id is live,
	// but those of buckets an earlier run's expiry dropped (-skip-load).
	clock.Store(start.Add(*window - time.Millisecond).UnixNano())
	var firstLive int64
	if gone := buckets - int64(ix.Stats().Buckets); gone > 0 && step > 0 {
		firstLive = min(*nIDs-1, int64((time.Duration(gone)*(*span)+step-1)/step))
	}
	rng := rand.New(rand.NewPCG(*seed, 2))
	var buf [dedupBenchIDLen]byte
	var repeats, found, missed, falsePos int64
	if *cpuprofile != "" {
		prof, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(prof); err != nil {
			return errors.Join(err, prof.Close())
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := prof.Close(); err != nil {
				fmt.Fprintln(stderr, "conflux: writing the CPU profile:", err)
			}
		}()
	}
	began = time.Now()
	for j := range *nLookups {
		if j&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		old := rng.Float64() < *repeat
		i := *nIDs + j // never committed
		if old {
			i = firstLive + rng.Int64N(*nIDs-firstLive)
			repeats++
		}
		ok, err := ix.Contains(ids.id(&buf, i))
		if err != nil {
			return err
		}
		switch {
		case ok && old:
			found++
		case old:
			missed++
		case ok:
			falsePos++
		}
	}
	lookTime := time.Since(began)
	fmt.Fprintf(out, "lookups: %s (%s repeats): %.1f s, %s checks/s; %s duplicates found, %d missed, %d new ids called duplicates\n",
		dedupBenchCount(*nLookups), dedupBenchCount(repeats), lookTime.Seconds(), dedupBenchCount(int64(float64(*nLookups)/lookTime.Seconds())),
		dedupBenchCount(found), missed, falsePos)
	fmt.Fprintf(out, "         %s\n", dedupBenchMemory())

	st := ix.Stats()
	disk, files, err := dedupBenchDirSize(*dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "disk:    %s in %d files (Stats.DiskBytes %s)\n", dedupBenchMiB(disk), files, dedupBenchMiB(st.DiskBytes))
	out.Flush()

	// Move the clock one bucket on: the oldest bucket expires, and Pebble
	// deletes its tables in delete-only compactions.
	if st.Buckets > 1 {
		clock.Store(start.Add(*window + *span).UnixNano())
		began = time.Now()
		if err := ix.Expire(); err != nil {
			return err
		}
		took := time.Since(began)
		// Wait for Pebble to delete the bucket's tables (after it flushes
		// the range deletion, 10 s): at least half of a bucket's share of
		// the disk, for at most 20 s. Small indexes free nothing: their
		// tables straddle several buckets.
		share := st.DiskBytes / int64(st.Buckets)
		after := ix.Stats()
		for time.Since(began) < 20*time.Second && st.DiskBytes-after.DiskBytes < share/2 {
			time.Sleep(250 * time.Millisecond)
			after = ix.Stats()
		}
		fmt.Fprintf(out, "expire:  1 of %d buckets in %.1f ms; %.1f s later %s on disk, %s freed, %s keys left\n",
			st.Buckets, took.Seconds()*1000, time.Since(began).Seconds(), dedupBenchMiB(after.DiskBytes),
			dedupBenchMiB(st.DiskBytes-after.DiskBytes), dedupBenchCount(after.Keys))
	}

	// Close (saving the filters) and reopen from the filter files.
	if err := ix.Close(); err != nil {
		return err
	}
	began = time.Now()
	cache = pebble.NewCache(*cacheSize)
	opts.Cache = cache
	ix, err = dedup.Open(opts)
	cache.Unref()
	if err != nil {
		return err
	}
	st = ix.Stats()
	fmt.Fprintf(out, "reopen:  %.2f s, %d buckets, %d rebuilt by scanning\n", time.Since(began).Seconds(), st.Buckets, st.Rebuilt)
	if err := ix.Close(); err != nil {
		return err
	}
	if missed > 0 || falsePos > 0 {
		return fmt.Errorf("%d committed ids missed, %d new ids called duplicates", missed, falsePos)
	}
	return nil
}

// dedupBenchIDLen is the length of a bench id: a UUID's.
const dedupBenchIDLen = 36

// dedupBenchIDs makes the i-th id of a run: a random-looking UUID, written
// without allocating.
type dedupBenchIDs struct{ seed uint64 }

func (g dedupBenchIDs) id(buf *[dedupBenchIDLen]byte, i int64) []byte {
	const hexdigits = "0123456789abcdef"
	hi, lo := dedupBenchMix(g.seed^uint64(i)), dedupBenchMix(^g.seed^uint64(i)*0x9e3779b97f4a7c15)
	n := 0
	for pos := range dedupBenchIDLen {
		if pos == 8 || pos == 13 || pos == 18 || pos == 23 {
			buf[pos] = '-'
			continue
		}
		var nib uint64
		if n < 16 {
			nib = hi >> (60 - 4*n)
		} else {
			nib = lo >> (60 - 4*(n-16))
		}
		buf[pos] = hexdigits[nib&0xf]
		n++
	}
	return buf[:]
}

func dedupBenchMix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// dedupBenchMemory reports this process's resident memory from /proc/self/status.
func dedupBenchMemory() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "resident memory unknown: " + err.Error()
	}
	var rss, hwm string
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm = strings.TrimSpace(v)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("VmRSS %s, VmHWM %s (Go heap in use %s, from the OS %s)", dedupBenchKB(rss), dedupBenchKB(hwm), dedupBenchMiB(int64(ms.HeapInuse)), dedupBenchMiB(int64(ms.Sys)))
}

// dedupBenchKB turns "123456 kB" into "120.6 MiB".
func dedupBenchKB(s string) string {
	var kb int64
	if _, err := fmt.Sscanf(s, "%d kB", &kb); err != nil {
		return s
	}
	return dedupBenchMiB(kb << 10)
}

func dedupBenchMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// dedupBenchCount formats n with thousands separators.
func dedupBenchCount(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// dedupBenchDirSize sums the sizes of the regular files under dir.
func dedupBenchDirSize(dir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		bytes += info.Size()
		files++
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("measuring %s: %w", dir, err)
	}
	return bytes, files, nil
}

// dedupBenchLoad commits n ids to ix, batch at a time, their times spread
// from start by step, with the clock following them.
func dedupBenchLoad(ctx context.Context, ix *dedup.Index, out io.Writer, ids dedupBenchIDs, start time.Time, step time.Duration, clock *atomic.Int64, n int64, batch int) error {
	entries := make([]dedup.Entry, batch)
	bufs := make([][dedupBenchIDLen]byte, batch)
	began := time.Now()
	var commits uint64
	for i := int64(0); i < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := min(int64(batch), n-i)
		var at time.Time
		for j := range m {
			at = start.Add(time.Duration(i+j) * step)
			entries[j] = dedup.Entry{ID: ids.id(&bufs[j], i+j), At: at}
		}
		clock.Store(at.UnixNano())
		commits++
		if err := ix.Commit(entries[:m], commits); err != nil {
			return err
		}
		i += m
	}
	took := time.Since(began)
	st := ix.Stats()
	fmt.Fprintf(out, "load:    %s ids in %s commits of %d: %.1f s, %s ids/s\n",
		dedupBenchCount(n), dedupBenchCount(int64(commits)), batch, took.Seconds(), dedupBenchCount(int64(float64(n)/took.Seconds())))
	fmt.Fprintf(out, "         %d buckets, %s keys, filters %s; %s\n", st.Buckets, dedupBenchCount(st.Keys), dedupBenchMiB(st.FilterBytes), dedupBenchMemory())
	return nil
}
