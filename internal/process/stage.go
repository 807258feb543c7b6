package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/confluxcdp/conflux/internal/process/dedup"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// Headers of processed messages, besides stream.HeaderFormat and
// stream.HeaderCount.
const (
	// HeaderIngestSeq is the last ingest sequence whose records are all in
	// this message or were dropped with a reason.
	HeaderIngestSeq = "Conflux-Ingest-Seq"
	// HeaderPartitions lists the partitions the message speaks for, as
	// ranges: "0-15", "0-3,8".
	HeaderPartitions = "Conflux-Partitions"
	// HeaderReason says why a dead-lettered message could not be processed.
	HeaderReason = "Conflux-Reason"
	// HeaderSource is the source of a dead-lettered record.
	HeaderSource = "Conflux-Source"
)

// Options configure a [Stage]. Zero values take the documented defaults.
type Options struct {
	// Dir holds the partitions' dedup indexes (Dir/p00, Dir/p01, …).
	Dir string
	// Partitions is the number of user partitions. Default: 16. It is fixed
	// for the life of a data directory: New refuses another number.
	Partitions int
	// Owned are the partitions this stage processes (the others' records
	// are another node's); nil: all of them. See [Stage].
	Owned []int
	// DedupWindow is how long a messageId is remembered. Default: 30 days.
	DedupWindow time.Duration
	// ExpectedIDsPerDay sizes the dedup filters (all partitions together):
	// each day of the window holds a filter of 2 bytes per expected id, so
	// a full 30-day window costs about 62 bytes per expected daily id. More
	// ids than expected stay correct but cost more disk reads. Default:
	// 4 Mi (about 250 MiB at a full 30-day window).
	ExpectedIDsPerDay int64
	// CacheBytes is the dedup indexes' shared block cache. Default: 64 MiB.
	CacheBytes int64
	// MaxGroupBytes bounds the ingest bytes of one group. Default: 4 MiB.
	MaxGroupBytes int
	// Linger is how long a group waits for one more ingest message.
	// Default: 2ms.
	Linger time.Duration
	// AckTimeout bounds the wait for the log to acknowledge one processed
	// message. Default: 10s.
	AckTimeout time.Duration
	// Pipeline decides what becomes of each deduplicated event. Nil passes
	// every event unchanged.
	Pipeline Pipeline
	// Registerer receives the stage's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Metrics, when set, counts the events the stage removes (duplicate,
	// blocked, invalid) by type and name for the delivery metrics.
	Metrics *observe.Recorder
	Logger  *slog.Logger
	// Now is the clock of the dedup window. Default: time.Now.
	Now func() time.Time

	// shared are metrics registered already, by the [Leased] that makes
	// one stage after another.
	shared *metrics
}

func (o *Options) defaults() {
	if o.Partitions <= 0 {
		o.Partitions = 16
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = 30 * 24 * time.Hour
	}
	if o.ExpectedIDsPerDay <= 0 {
		o.ExpectedIDsPerDay = 4 << 20
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.MaxGroupBytes <= 0 {
		o.MaxGroupBytes = 4 << 20
	}
	if o.Linger <= 0 {
		o.Linger = 2 * time.Millisecond
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 10 * time.Second
	}
	if o.Pipeline == nil {
		o.Pipeline = PassThrough{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// headerRoom is what a processed message leaves for its headers.
const headerRoom = 64 << 10

// Stage is the processing stage of one node: it reads all of ingest and
// processes the records of the partitions it owns (Options.Owned), each
// with its own dedup index. Several nodes share the partitions, each
// owning some (leases decide; see package lease). A stage that takes a
// partition over first brings its index up to what the partition's
// previous owners wrote to processed (see recover), so no duplicate
// slips through a hand-over.
type Stage struct {
	opts  Options
	log   *stream.Log
	cache *pebble.Cache
	parts []*partition
	// slot maps a partition id to its place in parts; -1: not owned.
	slot []int
	m    *metrics
	// partsHeader is the HeaderPartitions value of this stage's messages.
	partsHeader string
	// maxOut bounds one processed message's records: what the log takes,
	// less room for headers.
	maxOut int
	// done is the last ingest sequence processed and committed, for other
	// goroutines.
	done atomic.Uint64
}

// New opens the partitions' indexes and repairs the one processed message
// a crash may have left without its index commit. Run then processes.
func New(ctx context.Context, log *stream.Log, opts Options) (_ *Stage, err error) {
	opts.defaults()
	m := opts.shared
	if m == nil {
		m = newMetrics(opts.Registerer)
	}
	s := &Stage{opts: opts, log: log, m: m, maxOut: log.MaxPayload() - headerRoom}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := checkPartitionCount(opts.Dir, opts.Partitions); err != nil {
		return nil, err
	}
	s.cache = pebble.NewCache(opts.CacheBytes)
	perBucket := max(opts.ExpectedIDsPerDay/int64(opts.Partitions), 1024)
	owned := opts.Owned
	if owned == nil {
		for i := range opts.Partitions {
			owned = append(owned, i)
		}
	}
	owned = slices.Sorted(slices.Values(owned))
	owned = slices.Compact(owned)
	if len(owned) == 0 || owned[0] < 0 || owned[len(owned)-1] >= opts.Partitions {
		return nil, fmt.Errorf("owned partitions %v: want at least one of 0..%d", opts.Owned, opts.Partitions-1)
	}
	s.slot = make([]int, opts.Partitions)
	for i := range s.slot {
		s.slot[i] = -1
	}
	for _, i := range owned {
		ix, err := dedup.Open(dedup.Options{
			Dir:                   filepath.Join(opts.Dir, fmt.Sprintf("p%02d", i)),
			Window:                opts.DedupWindow,
			BucketSpan:            24 * time.Hour,
			ExpectedKeysPerBucket: perBucket,
			Cache:                 s.cache,
			Now:                   opts.Now,
			Logger:                opts.Logger.With("partition", i),
		})
		if err != nil {
			return nil, fmt.Errorf("opening dedup index of partition %d: %w", i, err)
		}
		s.slot[i] = len(s.parts)
		s.parts = append(s.parts, newPartition(i, ix))
	}
	s.partsHeader = formatPartitionSet(owned)
	if err := s.recover(ctx); err != nil {
		return nil, err
	}
	s.done.Store(s.resumeAfter())
	s.m.position.Set(float64(s.done.Load()))
	return s, nil
}

// checkPartitionCount records the partition count in dir on first use and
// refuses another one later: records are routed by it, so changing it
// would split a user's history between two owners.
func checkPartitionCount(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating processing directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, "partitions")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(path, []byte(strconv.Itoa(n)+"\n"), 0o640); err != nil {
			return fmt.Errorf("recording partition count in %s: %w", path, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading partition count from %s: %w", path, err)
	}
	have, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("reading partition count from %s: %q is not a number", path, data)
	}
	if have != n {
		return fmt.Errorf("%s was created with %d partitions, not %d: changing the count is a migration", dir, have, n)
	}
	return nil
}

// Run processes ingest until ctx ends. A failing log or index is retried
// with backoff; nothing is skipped.
func (s *Stage) Run(ctx context.Context) error {
	defer s.Close()
	s.opts.Logger.Info("processing stage started", "partitions", len(s.parts), "from", s.resumeAfter()+1)
	backoff := newBackoff()
	for ctx.Err() == nil {
		from := s.resumeAfter()
		err := s.runReader(ctx)
		if ctx.Err() != nil {
			break
		}
		if s.resumeAfter() != from {
			backoff = newBackoff()
		}
		s.opts.Logger.Warn("processing interrupted; retrying", "err", err, "position", s.resumeAfter())
		backoff.wait(ctx)
	}
	s.commitIdle()
	s.opts.Logger.Info("processing stage stopped", "position", s.resumeAfter())
	return nil
}

// commitIdle brings the checkpoints of partitions that had nothing to
// commit up to the last group, so that a restart does not re-read what
// they skipped. It is correct because such a partition had no record in
// the groups since its checkpoint.
func (s *Stage) commitIdle() {
	last := s.done.Load()
	for _, p := range s.parts {
		if p.ckpt.Load() >= last {
			continue
		}
		if err := p.index.Commit(nil, last); err != nil {
			s.opts.Logger.Warn("committing idle partition", "partition", p.id, "err", err)
			continue
		}
		p.ckpt.Store(last)
	}
}

// Position is the last ingest sequence processed and committed. Safe to
// call from any goroutine.
func (s *Stage) Position() uint64 { return s.done.Load() }

// resumeAfter is the ingest sequence up to which every partition has
// committed: reading resumes after it.
func (s *Stage) resumeAfter() uint64 {
	p := s.parts[0].ckpt.Load()
	for _, part := range s.parts[1:] {
		p = min(p, part.ckpt.Load())
	}
	return p
}

// runReader reads ingest from the current position and processes groups
// until ctx ends or reading fails. Groups overlap by one: while a group is
// written (published, then committed) by a writer goroutine, the next is
// prepared; it is written only once the first is committed, so that at
// most the last processed message can lack its commit.
func (s *Stage) runReader(ctx context.Context) error {
	r, err := s.log.Read(ctx, stream.IngestStream, s.resumeAfter()+1)
	if err != nil {
		return err
	}
	defer r.Close()
	var (
		inflight *group
		written  chan error
		slot     int
	)
	wait := func() error {
		if written == nil {
			return nil
		}
		err := <-written
		inflight, written = nil, nil
		return err
	}
	defer func() { _ = wait() }()
	expect := s.resumeAfter() + 1
	for {
		msgs, err := r.Next(ctx, s.opts.MaxGroupBytes, s.opts.Linger)
		if err != nil {
			return err
		}
		if msgs[0].Seq > expect && expect > 1 {
			// The log's retention removed messages before they were
			// processed: they are gone, and must at least be said.
			s.opts.Logger.Error("ingest messages expired before they were processed", "from", expect, "to", msgs[0].Seq-1)
			s.m.expired.Add(float64(msgs[0].Seq - expect))
		}
		expect = msgs[len(msgs)-1].Seq + 1
		s.m.lag.Set(float64(msgs[len(msgs)-1].Pending))
		for len(msgs) > 0 {
			g, n := s.prepareFitting(ctx, msgs, slot, inflight)
			if err := wait(); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err() // g was prepared while stopping: not written
			}
			inflight, written = g, make(chan error, 1)
			go func(g *group, done chan<- error) { done <- s.write(ctx, g) }(g, written)
			slot ^= 1
			msgs = msgs[n:]
		}
	}
}

// prepareFitting prepares a prefix of msgs as one group and returns it
// with its length: all of msgs, unless their output would not fit one
// message.
func (s *Stage) prepareFitting(ctx context.Context, msgs []stream.Msg, slot int, prev *group) (*group, int) {
	n := len(msgs)
	var g *group
	for {
		g = s.prepare(ctx, msgs[:n], slot, prev)
		if g.outBytes <= s.maxOut || n == 1 {
			break
		}
		n = (n + 1) / 2
	}
	if g.outBytes > s.maxOut {
		g.spill(s.maxOut)
	}
	g.started = time.Now()
	return g, n
}

// write publishes the group, then commits it, retrying each until it
// succeeds or ctx ends: once published, a group must be committed before
// anything else is read, or its records would be processed again.
func (s *Stage) write(ctx context.Context, g *group) error {
	tried := false
	if err := s.retry(ctx, "writing a processed group", g, func() error {
		if tried && s.published(ctx, g) {
			return nil // the failed attempt reached the log; only its answer was lost
		}
		tried = true
		return s.publish(ctx, g)
	}); err != nil {
		return err
	}
	if err := s.retry(ctx, "committing a processed group", g, func() error { return s.commit(g) }); err != nil {
		return err
	}
	g.count(s.m, s.opts.Metrics)
	s.m.groups.Inc()
	s.m.groupSeconds.Observe(time.Since(g.started).Seconds())
	if g.last > s.done.Load() {
		s.done.Store(g.last)
		s.m.position.Set(float64(g.last))
	}
	return nil
}

// retry runs fn until it succeeds, with backoff, and returns ctx's error
// if ctx ends first.
func (s *Stage) retry(ctx context.Context, what string, g *group, fn func() error) error {
	b := newBackoff()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.opts.Logger.Warn(what+"; retrying", "err", err, "ingest_seq", g.last)
		b.wait(ctx)
	}
}

// published reports whether g's processed message is the last one in the
// log already, so that a retry after a lost acknowledgement does not
// write it twice (JetStream's own duplicate window is 2 minutes).
func (s *Stage) published(ctx context.Context, g *group) bool {
	if g.records == 0 {
		return false
	}
	last, ok, err := s.log.Last(ctx, stream.ProcessedStream, stream.ProcessedSubject)
	return err == nil && ok && last.Header.Get(HeaderIngestSeq) == strconv.FormatUint(g.last, 10) &&
		last.Header.Get(HeaderPartitions) == s.partsHeader
}

// publish writes the group's dead letters, then its output, to the log.
func (s *Stage) publish(ctx context.Context, g *group) error {
	for _, dl := range g.dead {
		if err := s.publishMsg(ctx, dl); err != nil {
			return err
		}
	}
	if g.records == 0 {
		return nil
	}
	msg := g.message(s.partsHeader)
	return s.publishMsg(ctx, msg)
}

func (s *Stage) publishMsg(ctx context.Context, msg *natsMsg) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.AckTimeout)
	defer cancel()
	if _, err := s.log.JetStream().PublishMsg(pctx, msg.Msg, msg.opts...); err != nil {
		return fmt.Errorf("writing %d bytes to %s: %w", len(msg.Data), msg.Subject, err)
	}
	return nil
}

// commit records each partition's ids and the group's last sequence as
// its checkpoint. A partition with no new id is committed only when its
// checkpoint is a second old, so that idle partitions do not cost a sync
// per group yet do not hold the restart position back.
func (s *Stage) commit(g *group) error {
	now := time.Now()
	var eg errgroup.Group
	for i, p := range s.parts {
		entries := g.scr[i].entries
		if p.ckpt.Load() >= g.last || (len(entries) == 0 && now.Sub(p.committedAt) < time.Second) {
			continue
		}
		eg.Go(func() error {
			if err := p.index.Commit(entries, g.last); err != nil {
				return fmt.Errorf("committing %d ids to partition %d at ingest seq %d: %w", len(entries), p.id, g.last, err)
			}
			p.ckpt.Store(g.last)
			p.committedAt = now
			return nil
		})
	}
	return eg.Wait()
}

// Close closes the dedup indexes. Run calls it when it returns; call it
// yourself only for a stage that was never run. Safe to call twice.
func (s *Stage) Close() {
	for _, p := range s.parts {
		if err := p.index.Close(); err != nil {
			s.opts.Logger.Warn("closing dedup index", "partition", p.id, "err", err)
		}
	}
	s.parts = nil
	if s.cache != nil {
		s.cache.Unref()
		s.cache = nil
	}
}

// formatPartitions renders the range lo..hi for HeaderPartitions.
// formatPartitionSet writes sorted partition ids as ranges: "0-3,8".
func formatPartitionSet(ids []int) string {
	var b strings.Builder
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(formatPartitions(ids[i], ids[j]))
		i = j + 1
	}
	return b.String()
}

// owns reports whether this stage processes partition id: it also handles
// what belongs to no partition (unreadable messages and records) when it
// owns partition 0, so that one node dead-letters them.
func (s *Stage) owns(id int) bool { return s.slot[id] >= 0 }

func formatPartitions(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return strconv.Itoa(lo) + "-" + strconv.Itoa(hi)
}

// parsePartitions reads a HeaderPartitions value into a set.
func parsePartitions(h string) (map[int]bool, error) {
	set := map[int]bool{}
	for part := range strings.SplitSeq(h, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("partitions %q: %q is not a number", h, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("partitions %q: bad range %q", h, part)
			}
		}
		for i := a; i <= b; i++ {
			set[i] = true
		}
	}
	return set, nil
}

// backoff spaces retries of a failing log or index: 100ms doubling to 5s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 100 * time.Millisecond} }

func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.d = min(2*b.d, 5*time.Second)
}
