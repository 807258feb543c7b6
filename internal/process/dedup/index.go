package dedup

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Defaults of [Options].
const (
	DefaultWindow                = 30 * 24 * time.Hour
	DefaultBucketSpan            = 24 * time.Hour
	DefaultExpectedKeysPerBucket = 1 << 20
	DefaultCacheSize             = 64 << 20
)

// Limits of [Options].
const (
	// MinBucketSpan is the shortest BucketSpan.
	MinBucketSpan = time.Second
	// MaxBuckets bounds Window/BucketSpan, and so the number of filters
	// held in memory.
	MaxBuckets = 4096
	// MaxExpectedKeysPerBucket bounds ExpectedKeysPerBucket: a filter of
	// 8 GiB.
	MaxExpectedKeysPerBucket = 1 << 32
)

// Errors returned by [Index] methods. Match them with [errors.Is].
var (
	// ErrClosed is returned by a method called after [Index.Close].
	ErrClosed = errors.New("dedup index is closed")
	// ErrEmptyID is returned for an empty messageId, which would make every
	// event without one a duplicate of the others.
	ErrEmptyID = errors.New("empty message id")
	// ErrCheckpointBehind is returned by [Index.Commit] for a checkpoint
	// lower than the one already committed.
	ErrCheckpointBehind = errors.New("checkpoint is behind the committed one")
)

// Options configure an [Index]. A zero field takes its default.
type Options struct {
	// Dir is the partition's directory, created if missing. The index
	// keeps its Pebble store in Dir/pebble and its filter files in
	// Dir/filters, and nothing else may write there. Required.
	Dir string

	// Window is how long an id is remembered: an id committed with time At
	// is a duplicate until at least At+Window and at most
	// At+Window+BucketSpan, then its whole bucket is dropped. It may change
	// between opens. Default: 30 days. Range: up to MaxBuckets×BucketSpan;
	// a Window shorter than BucketSpan is allowed, and still keeps ids up
	// to Window+BucketSpan.
	Window time.Duration

	// BucketSpan is the time one bucket covers; buckets are aligned to the
	// Unix epoch (24h: UTC days). Fixed when the index is created: Open
	// fails if it differs from the stored one. Default: 24h. Minimum: 1s.
	BucketSpan time.Duration

	// ExpectedKeysPerBucket sizes each bucket's in-memory filter, at 16
	// bits (2 bytes) per key: the default 1<<20 costs 2 MiB per bucket, 62
	// MiB for the 31 buckets a 30-day window holds at most, per partition.
	// Filter memory is at most (⌈Window/BucketSpan⌉ + 1) × 2 bytes ×
	// ExpectedKeysPerBucket, whatever the traffic. A bucket that gets more
	// keys keeps its size and its false-positive rate rises (about 0.13% at
	// capacity, 0.9% at 1.5×, 3.3% at 2×): each false positive costs one
	// Pebble lookup, never a wrong answer. Set it to the distinct ids the
	// partition's busiest bucket is expected to get. Default: 1<<20.
	// Range: 1 to 1<<32.
	ExpectedKeysPerBucket int64

	// Cache is the Pebble block cache. Several partitions' indexes may
	// share one; Open takes its own reference, so the caller may Unref its
	// reference once the indexes are open. Nil: a private cache of
	// DefaultCacheSize (64 MiB).
	Cache *pebble.Cache

	// Now returns the current time; tests set a fake clock. Default:
	// time.Now.
	Now func() time.Time

	// Logger receives the index's logs and Pebble's. Default: discard.
	Logger *slog.Logger
}

// withDefaults returns o with its defaults applied, or an error naming the
// first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("dedup options: Dir is required")
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.BucketSpan == 0 {
		o.BucketSpan = DefaultBucketSpan
	}
	if o.ExpectedKeysPerBucket == 0 {
		o.ExpectedKeysPerBucket = DefaultExpectedKeysPerBucket
	}
	switch {
	case o.BucketSpan < MinBucketSpan:
		return o, fmt.Errorf("dedup options: BucketSpan %v is shorter than %v", o.BucketSpan, MinBucketSpan)
	case o.Window < 0:
		return o, fmt.Errorf("dedup options: Window %v is negative", o.Window)
	case o.Window/o.BucketSpan > MaxBuckets:
		return o, fmt.Errorf("dedup options: Window %v over BucketSpan %v makes %d buckets, more than %d", o.Window, o.BucketSpan, o.Window/o.BucketSpan, MaxBuckets)
	case o.ExpectedKeysPerBucket < 1 || o.ExpectedKeysPerBucket > MaxExpectedKeysPerBucket:
		return o, fmt.Errorf("dedup options: ExpectedKeysPerBucket %d is outside 1..%d", o.ExpectedKeysPerBucket, int64(MaxExpectedKeysPerBucket))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Entry is one id to commit.
type Entry struct {
	// ID is the event's messageId.
	ID []byte
	// At is the event's receivedAt; it picks the bucket, and so when the
	// id expires. A time after Now counts as Now.
	At time.Time
}

// Stats describe an [Index].
type Stats struct {
	// Keys is the number of ids in live buckets; approximate, since an id
	// committed twice counts twice (exact for a bucket rebuilt by a scan).
	Keys int64
	// Buckets is the number of live buckets.
	Buckets int
	// FilterBytes is the memory held by the buckets' filters.
	FilterBytes int64
	// DiskBytes is the space on disk: Pebble's files and the filter files.
	DiskBytes int64
	// Checkpoint is the last committed checkpoint, as [Index.Checkpoint].
	Checkpoint uint64
	// Skipped counts entries given to Commit whose time was already
	// beyond the window, which were not recorded.
	Skipped int64
	// Rebuilt counts the buckets whose filter Open rebuilt by scanning
	// Pebble, because their filter file was missing, stale or damaged.
	Rebuilt int
}

// Index is one partition's message-id index. See the package
// documentation for its layout.
//
// Contains may be called from any number of goroutines, concurrently with
// each other and with one goroutine calling Commit; Commit, Expire and
// Close serialize with each other. A Contains concurrent with a Commit may
// or may not see that Commit's ids; once Commit returns, every later
// Contains sees them.
type Index struct {
	opts     Options
	log      *slog.Logger
	span     uint64 // BucketSpan in nanoseconds
	capacity int64  // keys per filter
	filters  string // the filter files' directory

	view       atomic.Pointer[view] // nil once closed
	checkpoint atomic.Uint64
	keyBufs    sync.Pool // of *[idKeyLen]byte, for Contains' lookups

	// dbMu keeps db open while Contains reads it; Close takes it.
	dbMu sync.RWMutex
	db   *pebble.DB

	// mu serializes Commit, Expire, Close and Stats, and guards the
	// fields below and the bucket fields marked so.
	mu         sync.Mutex
	closed     bool
	lastCommit uint64 // commit number, never reused (filter files name it)
	lastMaint  uint64 // the bucket number at which maintenance last ran
	skipped    int64
	rebuilt    int
	touched    []*bucket // scratch for Commit
}

// view is an immutable list of the live buckets, oldest first, that
// Contains reads without a lock; Commit and Expire publish a new one.
type view struct {
	buckets []*bucket
}

// bucket is one time bucket: its ids are the Pebble keys "k" num hash.
type bucket struct {
	num    uint64  // start time / BucketSpan; immutable
	filter *filter // immutable pointer; its words change under Index.mu

	// Guarded by Index.mu.
	rec        bucketRecord // as last committed
	savedAt    uint64       // rec.lastCommit the filter file covers, 0: none
	fileBytes  int64        // size of the filter file, if any
	pending    uint64       // keys added by the Commit in progress
	hasPending bool
}

// Open opens the index in opts.Dir, creating it if needed. It loads each
// live bucket's filter from its filter file, or rebuilds it by scanning the
// bucket when the file is missing, stale or damaged, and drops the buckets
// that expired while the index was closed.
func Open(opts Options) (*Index, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ix := &Index{
		opts:     o,
		log:      o.Logger.With("dedup_dir", o.Dir),
		span:     uint64(o.BucketSpan),
		capacity: o.ExpectedKeysPerBucket,
		filters:  filepath.Join(o.Dir, "filters"),
	}
	ix.keyBufs.New = func() any { return new([idKeyLen]byte) }
	if err := os.MkdirAll(ix.filters, 0o755); err != nil {
		return nil, fmt.Errorf("opening dedup index: %w", err)
	}
	cache := o.Cache
	if cache == nil {
		cache = pebble.NewCache(DefaultCacheSize)
		defer cache.Unref()
	}
	dbDir := filepath.Join(o.Dir, "pebble")
	db, err := pebble.Open(dbDir, pebbleOptions(cache, ix.log))
	if err != nil {
		return nil, fmt.Errorf("opening dedup index %s: %w", dbDir, err)
	}
	ix.db = db
	if err := ix.load(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	st := ix.Stats()
	ix.log.Debug("dedup index opened",
		"buckets", st.Buckets, "keys", st.Keys, "rebuilt", st.Rebuilt,
		"checkpoint", st.Checkpoint, "filter_bytes", st.FilterBytes,
		"filter_bytes_max", ix.maxFilterBytes(), "duration", time.Since(start))
	return ix, nil
}

// maxFilterBytes is the most memory the filters can take.
func (ix *Index) maxFilterBytes() int64 {
	n := int64((ix.opts.Window+ix.opts.BucketSpan-1)/ix.opts.BucketSpan) + 1
	return n * int64(newFilterWords(ix.capacity)) * 4
}

// load reads the index's records and builds its buckets.
func (ix *Index) load() error {
	if err := ix.checkFormat(); err != nil {
		return err
	}
	v, closer, err := ix.db.Get(checkpointKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("reading the checkpoint of %s: %w", ix.opts.Dir, err)
	default:
		rec, ok := decodeCheckpointRecord(v)
		_ = closer.Close()
		if !ok {
			return fmt.Errorf("reading the checkpoint of %s: bad record of %d bytes", ix.opts.Dir, len(v))
		}
		ix.checkpoint.Store(rec.checkpoint)
		ix.lastCommit = rec.lastCommit
	}

	it, err := ix.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixBucket},
		UpperBound: []byte{prefixBucket + 1},
	})
	if err != nil {
		return fmt.Errorf("listing the buckets of %s: %w", ix.opts.Dir, err)
	}
	var buckets []*bucket
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		rec, ok := decodeBucketRecord(it.Value())
		if len(k) != bucketKeyLen || !ok {
			_ = it.Close()
			return fmt.Errorf("listing the buckets of %s: bad bucket record %x", ix.opts.Dir, k)
		}
		buckets = append(buckets, &bucket{num: binary.BigEndian.Uint64(k[1:]), rec: rec})
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("listing the buckets of %s: %w", ix.opts.Dir, err)
	}

	now := ix.opts.Now()
	oldest := ix.oldestLive(now)
	for _, b := range buckets {
		if b.num < oldest {
			continue // maintain drops it, and its filter is not needed
		}
		if err := ix.loadFilter(b); err != nil {
			return err
		}
	}
	ix.view.Store(&view{buckets: buckets})
	if err := ix.removeOrphanFiles(buckets); err != nil {
		ix.log.Warn("dedup could not remove old filter files", "err", err)
	}
	return ix.maintain(now)
}

// checkFormat writes the format record of a new index, or checks that of
// an existing one against the options.
func (ix *Index) checkFormat() error {
	want := make([]byte, 12)
	binary.BigEndian.PutUint32(want, formatVersion)
	binary.BigEndian.PutUint64(want[4:], ix.span)
	v, closer, err := ix.db.Get(formatKey)
	if errors.Is(err, pebble.ErrNotFound) {
		if err := ix.db.Set(formatKey, want, pebble.Sync); err != nil {
			return fmt.Errorf("creating dedup index %s: %w", ix.opts.Dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the format of %s: %w", ix.opts.Dir, err)
	}
	defer func() { _ = closer.Close() }()
	if len(v) != 12 || binary.BigEndian.Uint32(v) != formatVersion {
		return fmt.Errorf("dedup index %s: unknown format record %x", ix.opts.Dir, v)
	}
	if span := time.Duration(binary.BigEndian.Uint64(v[4:])); span != ix.opts.BucketSpan {
		return fmt.Errorf("dedup index %s was created with BucketSpan %v, options ask %v", ix.opts.Dir, span, ix.opts.BucketSpan)
	}
	return nil
}

// filterPath is the filter file of bucket num.
func (ix *Index) filterPath(num uint64) string {
	return filepath.Join(ix.filters, fmt.Sprintf("%016x.filter", num))
}

// loadFilter gives b its filter, from its file when that matches the
// bucket's record, or by scanning the bucket's keys.
func (ix *Index) loadFilter(b *bucket) error {
	path := ix.filterPath(b.num)
	f, _, err := readFilterFile(path, b.rec.lastCommit)
	want := newFilterWords(ix.capacity)
	switch {
	case err == nil && len(f.words) == want:
		b.filter, b.savedAt, b.fileBytes = f, b.rec.lastCommit, fileSize(f)
		return nil
	case err == nil:
		ix.log.Info("dedup filter file sized for another ExpectedKeysPerBucket, rebuilding",
			"bucket", b.num, "words", len(f.words), "want_words", want)
	case errors.Is(err, fs.ErrNotExist):
		ix.log.Info("dedup filter file missing, rebuilding", "bucket", b.num)
	default:
		ix.log.Warn("dedup filter file unusable, rebuilding", "bucket", b.num, "err", err)
	}
	return ix.rebuildFilter(b)
}

// rebuildFilter builds b's filter by scanning its keys, and corrects its
// key count.
func (ix *Index) rebuildFilter(b *bucket) error {
	start := time.Now()
	f := newFilter(ix.capacity)
	it, err := ix.db.NewIter(&pebble.IterOptions{
		LowerBound: bucketPrefix(prefixID, b.num),
		UpperBound: bucketPrefix(prefixID, b.num+1),
	})
	if err != nil {
		return fmt.Errorf("scanning bucket %d of %s: %w", b.num, ix.opts.Dir, err)
	}
	var n uint64
	var k key
	for it.First(); it.Valid(); it.Next() {
		raw := it.Key()
		if len(raw) != idKeyLen {
			_ = it.Close()
			return fmt.Errorf("scanning bucket %d of %s: bad key %x", b.num, ix.opts.Dir, raw)
		}
		copy(k[:], raw[9:])
		f.add(&k)
		n++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scanning bucket %d of %s: %w", b.num, ix.opts.Dir, err)
	}
	b.filter, b.savedAt, b.fileBytes = f, 0, 0
	b.rec.keys = n
	ix.rebuilt++
	ix.log.Debug("dedup filter rebuilt", "bucket", b.num, "keys", n, "duration", time.Since(start))
	return nil
}

// removeOrphanFiles removes filter files of buckets that no longer exist,
// and temporary files of interrupted writes.
func (ix *Index) removeOrphanFiles(live []*bucket) error {
	entries, err := os.ReadDir(ix.filters)
	if err != nil {
		return fmt.Errorf("listing %s: %w", ix.filters, err)
	}
	keep := make(map[string]bool, len(live))
	for _, b := range live {
		keep[filepath.Base(ix.filterPath(b.num))] = true
	}
	var errs []error
	for _, e := range entries {
		if !keep[e.Name()] {
			errs = append(errs, os.Remove(filepath.Join(ix.filters, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// bucketNum is the bucket that t falls in.
func (ix *Index) bucketNum(t time.Time) uint64 {
	ns := t.UnixNano()
	if ns < 0 {
		return 0
	}
	return uint64(ns) / ix.span
}

// oldestLive is the oldest bucket that still holds ids within the window
// at now: the one that contains now-Window.
func (ix *Index) oldestLive(now time.Time) uint64 {
	return ix.bucketNum(now.Add(-ix.opts.Window))
}

// bucketStart is the time bucket num begins.
func (ix *Index) bucketStart(num uint64) time.Time {
	return time.Unix(0, int64(num*ix.span))
}

// Contains reports whether id was committed within the window. It
// consults the live buckets' filters, newest first, and Pebble only for a
// bucket whose filter says maybe; a new id usually costs no Pebble lookup
// and no allocation. It is safe for concurrent use.
func (ix *Index) Contains(id []byte) (bool, error) {
	if len(id) == 0 {
		return false, ErrEmptyID
	}
	v := ix.view.Load()
	if v == nil {
		return false, ErrClosed
	}
	k := hashID(id)
	oldest := ix.oldestLive(ix.opts.Now())
	live := v.buckets
	for len(live) > 0 && live[0].num < oldest {
		live = live[1:]
	}
	// Newest first, in groups of 64 buckets: first test one bit in each
	// bucket's filter, loads that do not depend on each other so that the
	// processor overlaps their cache misses, then the whole block of only
	// the buckets that passed.
	for len(live) > 0 {
		group := live[max(0, len(live)-64):]
		live = live[:len(live)-len(group)]
		var maybe uint64
		for i, b := range group {
			maybe |= uint64(b.filter.firstBit(&k)) << i
		}
		for maybe != 0 {
			i := 63 - bits.LeadingZeros64(maybe)
			maybe &^= 1 << i
			b := group[i]
			if !b.filter.mayContain(&k) {
				continue
			}
			if found, err := ix.lookup(b.num, &k); err != nil || found {
				return found, err
			}
		}
	}
	return false, nil
}

// lookup reports whether Pebble holds k in bucket num.
func (ix *Index) lookup(num uint64, k *key) (bool, error) {
	buf := ix.keyBufs.Get().(*[idKeyLen]byte)
	defer ix.keyBufs.Put(buf)
	ix.dbMu.RLock()
	defer ix.dbMu.RUnlock()
	if ix.db == nil {
		return false, ErrClosed
	}
	_, closer, err := ix.db.Get(idKey(buf, num, k))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up id %s in bucket %d: %w", hex.EncodeToString(k[:]), num, err)
	}
	if err := closer.Close(); err != nil {
		return false, fmt.Errorf("looking up id %s in bucket %d: %w", hex.EncodeToString(k[:]), num, err)
	}
	return true, nil
}

// Commit records ids, each in the bucket of its At, and checkpoint (the
// last ingest-log sequence the ids cover) in one synced Pebble batch: after
// a crash either all of them and the checkpoint are there, or none and the
// previous checkpoint. Ids whose At is already beyond the window are not
// recorded (counted in [Stats].Skipped). Committing an id again is
// harmless, so a Commit that returned an error may be repeated. A
// checkpoint lower than [Index.Checkpoint] is refused with
// [ErrCheckpointBehind]; an empty ids just moves the checkpoint. Commit
// keeps no reference to ids or their bytes once it returns.
//
// When the clock has entered a new bucket since the last Commit, Commit
// first runs [Index.Expire].
func (ix *Index) Commit(ids []Entry, checkpoint uint64) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return ErrClosed
	}
	if cp := ix.checkpoint.Load(); checkpoint < cp {
		return fmt.Errorf("committing checkpoint %d over %d: %w", checkpoint, cp, ErrCheckpointBehind)
	}
	for i := range ids {
		if len(ids[i].ID) == 0 {
			return fmt.Errorf("committing entry %d of %d at checkpoint %d: %w", i, len(ids), checkpoint, ErrEmptyID)
		}
	}
	now := ix.opts.Now()
	cur := ix.bucketNum(now)
	if cur != ix.lastMaint {
		if err := ix.maintain(now); err != nil {
			return err
		}
	}
	oldest := ix.oldestLive(now)
	commit := ix.lastCommit + 1

	batch := ix.db.NewBatchWithSize(len(ids)*(idKeyLen+16) + 256)
	defer func() { _ = batch.Close() }()
	var (
		kb      [idKeyLen]byte
		last    *bucket
		skipped int64
	)
	touched := ix.touched[:0]
	for i := range ids {
		e := &ids[i]
		num := cur
		if !e.At.After(now) {
			num = ix.bucketNum(e.At)
		}
		if num < oldest {
			skipped++
			continue
		}
		if last == nil || last.num != num {
			last = ix.bucketLocked(num)
			if !last.hasPending {
				last.hasPending = true
				touched = append(touched, last)
			}
		}
		k := hashID(e.ID)
		last.filter.add(&k) // before Pebble has it: a failed Commit leaves only false positives
		last.pending++
		if err := batch.Set(idKey(&kb, num, &k), nil, nil); err != nil {
			ix.clearPending(touched)
			return fmt.Errorf("committing %d ids at checkpoint %d: %w", len(ids), checkpoint, err)
		}
	}
	for _, b := range touched {
		rec := bucketRecord{lastCommit: commit, keys: b.rec.keys + b.pending}
		if err := batch.Set(bucketPrefix(prefixBucket, b.num), rec.encode(), nil); err != nil {
			ix.clearPending(touched)
			return fmt.Errorf("committing %d ids at checkpoint %d: %w", len(ids), checkpoint, err)
		}
	}
	if err := batch.Set(checkpointKey, checkpointRecord{checkpoint: checkpoint, lastCommit: commit}.encode(), nil); err != nil {
		ix.clearPending(touched)
		return fmt.Errorf("committing %d ids at checkpoint %d: %w", len(ids), checkpoint, err)
	}
	if err := ix.db.Apply(batch, pebble.Sync); err != nil {
		ix.clearPending(touched)
		return fmt.Errorf("committing %d ids at checkpoint %d: %w", len(ids), checkpoint, err)
	}
	for _, b := range touched {
		b.rec = bucketRecord{lastCommit: commit, keys: b.rec.keys + b.pending}
	}
	ix.clearPending(touched)
	ix.lastCommit = commit
	ix.checkpoint.Store(checkpoint)
	ix.skipped += skipped
	return nil
}

// clearPending forgets the keys counted by a Commit, and keeps touched's
// storage for the next.
func (ix *Index) clearPending(touched []*bucket) {
	for _, b := range touched {
		b.pending, b.hasPending = 0, false
	}
	clear(touched)
	ix.touched = touched[:0]
}

// bucketLocked returns bucket num, creating it (with an empty filter) and
// publishing a new view if it does not exist. Called with ix.mu held.
func (ix *Index) bucketLocked(num uint64) *bucket {
	v := ix.view.Load()
	i, found := slices.BinarySearchFunc(v.buckets, num, func(b *bucket, n uint64) int {
		switch {
		case b.num < n:
			return -1
		case b.num > n:
			return 1
		}
		return 0
	})
	if found {
		return v.buckets[i]
	}
	b := &bucket{num: num, filter: newFilter(ix.capacity)}
	ix.view.Store(&view{buckets: slices.Insert(slices.Clone(v.buckets), i, b)})
	return b
}

// Checkpoint returns the last committed checkpoint, 0 for a new index. It
// is safe for concurrent use.
func (ix *Index) Checkpoint() uint64 {
	return ix.checkpoint.Load()
}

// Expire drops the buckets older than the window, in one synced Pebble
// range deletion (Pebble then drops their tables whole, in delete-only
// compactions), and removes their filter files. It also saves the filters
// of the buckets before the current one, so that a reopen after a crash
// rescans at most the buckets written since. Commit runs it when the clock
// enters a new bucket, and Open when it opens the index.
func (ix *Index) Expire() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return ErrClosed
	}
	return ix.maintain(ix.opts.Now())
}

// maintain is Expire with ix.mu held.
func (ix *Index) maintain(now time.Time) error {
	oldest, cur := ix.oldestLive(now), ix.bucketNum(now)
	v := ix.view.Load()
	n := 0
	for n < len(v.buckets) && v.buckets[n].num < oldest {
		n++
	}
	if n > 0 {
		batch := ix.db.NewBatch()
		defer func() { _ = batch.Close() }()
		err := batch.DeleteRange(bucketPrefix(prefixID, 0), bucketPrefix(prefixID, oldest), nil)
		if err == nil {
			err = batch.DeleteRange(bucketPrefix(prefixBucket, 0), bucketPrefix(prefixBucket, oldest), nil)
		}
		if err == nil {
			err = ix.db.Apply(batch, pebble.Sync)
		}
		if err != nil {
			return fmt.Errorf("expiring the buckets of %s before %v: %w", ix.opts.Dir, ix.bucketStart(oldest), err)
		}
		ix.view.Store(&view{buckets: slices.Clone(v.buckets[n:])})
		var errs []error
		for _, b := range v.buckets[:n] {
			if err := os.Remove(ix.filterPath(b.num)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			// Harmless: a filter file names the commit it covers, and
			// commit numbers are never reused, so it cannot match a
			// bucket created later. Open removes it.
			ix.log.Warn("dedup could not remove expired filter files", "err", err)
		}
		ix.log.Debug("dedup buckets expired", "buckets", n, "before", ix.bucketStart(oldest))
	}
	ix.saveFilters(func(b *bucket) bool { return b.num < cur })
	ix.lastMaint = cur
	return nil
}

// saveFilters writes the filter file of each live bucket that want
// selects and whose file is missing or stale. A failure is logged, not
// returned: the files are a cache.
func (ix *Index) saveFilters(want func(*bucket) bool) {
	for _, b := range ix.view.Load().buckets {
		if !want(b) || b.savedAt == b.rec.lastCommit || b.rec.lastCommit == 0 {
			continue
		}
		if err := writeFilterFile(ix.filterPath(b.num), b.filter, b.rec.lastCommit, b.rec.keys); err != nil {
			ix.log.Warn("dedup could not save a filter file", "bucket", b.num, "err", err)
			continue
		}
		b.savedAt, b.fileBytes = b.rec.lastCommit, fileSize(b.filter)
	}
}

// Stats returns the index's figures. It waits for a Commit in progress.
func (ix *Index) Stats() Stats {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	st := Stats{Checkpoint: ix.checkpoint.Load(), Skipped: ix.skipped, Rebuilt: ix.rebuilt}
	v := ix.view.Load()
	if v == nil {
		return st
	}
	st.Buckets = len(v.buckets)
	for _, b := range v.buckets {
		st.Keys += int64(b.rec.keys)
		st.FilterBytes += b.filter.bytes()
		st.DiskBytes += b.fileBytes
	}
	st.DiskBytes += int64(ix.db.Metrics().DiskSpaceUsage())
	return st
}

// Close saves the filters of the live buckets and closes the index. It
// waits for a Commit in progress; later calls of any method return
// [ErrClosed], and Close again returns nil.
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil
	}
	ix.closed = true
	oldest := ix.oldestLive(ix.opts.Now())
	ix.saveFilters(func(b *bucket) bool { return b.num >= oldest })
	ix.view.Store(nil)
	ix.dbMu.Lock()
	db := ix.db
	ix.db = nil
	ix.dbMu.Unlock()
	if err := db.Close(); err != nil {
		return fmt.Errorf("closing dedup index %s: %w", ix.opts.Dir, err)
	}
	ix.log.Debug("dedup index closed", "checkpoint", ix.checkpoint.Load())
	return nil
}

// fileSize is the size of f's filter file.
func fileSize(f *filter) int64 { return 32 + f.bytes() + 4 }
