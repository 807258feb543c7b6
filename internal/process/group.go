package process

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/observe"
	"github.com/confluxcdp/conflux/internal/process/dedup"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// partition is one user partition: its dedup index, its checkpoint, and
// two scratch spaces, so that the next group can be prepared while the
// last one is written. Only the stage's reading goroutine, the goroutine
// it hands the partition to while preparing a group, and the writer of the
// previous group touch it.
type partition struct {
	id    int
	index *dedup.Index
	// ckpt is the index's checkpoint: written by the writer, read when
	// preparing.
	ckpt        atomic.Uint64
	committedAt time.Time // the writer's
	slots       [2]*scratch
}

func newPartition(id int, ix *dedup.Index) *partition {
	p := &partition{id: id, index: ix}
	p.ckpt.Store(ix.Checkpoint())
	for i := range p.slots {
		p.slots[i] = &scratch{seen: map[string]struct{}{}, tally: map[tallyKey]int{}, detail: map[observe.Key]int64{}}
	}
	return p
}

// scratch is what one group holds for one partition.
type scratch struct {
	work    []item
	seen    map[string]struct{}
	entries []dedup.Entry
	out     []byte
	records int
	// forwarded marks, per record of out, those a pipeline wrote under
	// another source (counted as forwarded, not processed).
	forwarded []bool
	tally     map[tallyKey]int
	// detail counts the events the stage removes (duplicate, blocked) by
	// type and name, for the delivery metrics; empty when they are off.
	detail map[observe.Key]int64
	// deferred are the pipeline's side effects, run once the group is
	// committed (see Emitter.Defer).
	deferred []func()
}

func (sc *scratch) reset() {
	sc.work = sc.work[:0]
	clear(sc.seen)
	sc.entries = sc.entries[:0]
	sc.out = sc.out[:0]
	sc.records = 0
	sc.forwarded = sc.forwarded[:0]
	clear(sc.tally)
	clear(sc.detail)
	clear(sc.deferred)
	sc.deferred = sc.deferred[:0]
}

// item is one record routed to a partition.
type item struct {
	src  string
	json []byte
	keys event.Keys
}

// tallyKey counts outcomes per source.
type tallyKey struct {
	source  string
	outcome Outcome
}

// partitionOf routes an event to its user's partition: by userId, or by
// anonymousId when there is none, so that one user's events are handled
// in order by one owner.
func partitionOf(k event.Keys, n int) int {
	id := k.UserID
	if len(id) == 0 {
		id = k.AnonymousID
	}
	h := fnv.New64a()
	_, _ = h.Write(id)
	return int(h.Sum64() % uint64(n))
}

// natsMsg is a message to publish with its options.
type natsMsg struct {
	*nats.Msg
	opts []jetstream.PublishOpt
}

// group is the outcome of processing a run of ingest messages, ready to be
// published and committed.
type group struct {
	parts    []*partition
	scr      []*scratch // this group's scratch of each partition
	first    uint64     // first ingest sequence covered
	last     uint64     // last ingest sequence covered
	outBytes int
	records  int
	dead     []*natsMsg
	// deadTally counts records dead-lettered before reaching a partition.
	deadTally map[tallyKey]int
	started   time.Time
}

// prepare routes msgs' records to the partitions and processes them, in
// parallel, into the partitions' scratch slot, without changing any other
// state: a group that is never published leaves no trace. prev is the
// group being written meanwhile, if any: its ids count as seen, as they
// are not in the index yet.
func (s *Stage) prepare(ctx context.Context, msgs []stream.Msg, slot int, prev *group) *group {
	g := &group{parts: s.parts, first: msgs[0].Seq, last: msgs[len(msgs)-1].Seq, deadTally: map[tallyKey]int{}}
	g.scr = make([]*scratch, len(s.parts))
	for i, p := range s.parts {
		g.scr[i] = p.slots[slot]
		g.scr[i].reset()
	}
	// A message at or below some partition's checkpoint was read before:
	// its dead letters were written then (a group publishes them before
	// any partition commits it), so they are not written or counted again.
	var reread uint64
	for _, p := range s.parts {
		reread = max(reread, p.ckpt.Load())
	}
	if !s.owns(0) {
		reread = math.MaxUint64 // another node dead-letters what belongs to no partition
	}
	for _, m := range msgs {
		if err := checkFraming(m.Data); err != nil {
			if m.Seq > reread {
				g.deadLetter(m.Seq, 0, "", "malformed_message", err.Error(), m.Data, recordCount(m))
			}
			continue
		}
		idx := -1
		for rec := range event.Records(m.Data) {
			idx++
			keys, err := event.PeekKeys(rec.JSON)
			if err != nil {
				if m.Seq > reread {
					g.deadLetter(m.Seq, idx, rec.SourceID, "invalid_record", err.Error(), rec.JSON, 1)
				}
				continue
			}
			i := s.slot[partitionOf(keys, s.opts.Partitions)]
			if i >= 0 && m.Seq > s.parts[i].ckpt.Load() {
				g.scr[i].work = append(g.scr[i].work, item{src: rec.SourceID, json: rec.JSON, keys: keys})
			}
		}
	}
	var wg sync.WaitGroup
	for i, p := range s.parts {
		if len(g.scr[i].work) == 0 {
			continue
		}
		var pending map[string]struct{}
		if prev != nil {
			pending = prev.scr[i].seen
		}
		wg.Go(func() { s.runPartition(ctx, p, g.scr[i], pending) })
	}
	wg.Wait()
	for _, sc := range g.scr {
		g.outBytes += len(sc.out)
		g.records += sc.records
	}
	return g
}

// runPartition processes the partition's work in sc: dedup (against the
// group's own ids, the ids of the group being written, and the index),
// then the pipeline.
func (s *Stage) runPartition(ctx context.Context, p *partition, sc *scratch, pending map[string]struct{}) {
	add := func(src string, rec []byte, forwarded bool) {
		sc.out = event.AppendRecord(sc.out, src, rec)
		sc.records++
		sc.forwarded = append(sc.forwarded, forwarded)
	}
	emit := func(src string, rec []byte) { add(src, rec, false) }
	emitOther := func(src string, rec []byte) {
		add(src, rec, true)
		sc.tally[tallyKey{src, OutcomeForwarded}]++
	}
	deferred := func(f func()) { sc.deferred = append(sc.deferred, f) }
	for _, it := range sc.work {
		id := it.keys.MessageID
		_, dup := sc.seen[string(id)]
		if !dup {
			_, dup = pending[string(id)]
		}
		if !dup {
			var err error
			if dup, err = p.index.Contains(id); err != nil {
				// The index could not answer: let the event through rather
				// than lose it (at worst a duplicate), and say so.
				s.opts.Logger.Warn("dedup lookup failed", "partition", p.id, "err", err)
				s.m.dedupErrors.Inc()
			}
		}
		if dup {
			sc.tally[tallyKey{it.src, OutcomeDuplicate}]++
			s.detail(sc, &it, observe.Duplicate, "")
			continue
		}
		sc.seen[string(id)] = struct{}{}
		sc.entries = append(sc.entries, s.entry(it.keys))
		outcome := s.opts.Pipeline.Process(ctx, it.src, it.json, Emitter{self: emit, other: emitOther, deferFn: deferred, source: it.src})
		sc.tally[tallyKey{it.src, outcome}]++
		switch outcome {
		case OutcomeBlocked:
			s.detail(sc, &it, observe.Blocked, "")
		case OutcomeInvalid:
			s.detail(sc, &it, observe.Rejected, string(OutcomeInvalid))
		case OutcomeDropped:
			s.detail(sc, &it, observe.Blocked, ReasonInsertFunction)
		}
	}
}

// entry is the dedup index entry of an event: its id, in the bucket of
// its receivedAt (now, for a record without one).
func (s *Stage) entry(k event.Keys) dedup.Entry {
	at := k.ReceivedAt
	if at.IsZero() {
		at = s.opts.Now()
	}
	return dedup.Entry{ID: k.MessageID, At: at}
}

// checkFraming reports whether msg is a well-formed sequence of records,
// so that a message broken in the middle is dead-lettered whole rather
// than half processed.
func checkFraming(msg []byte) error {
	for _, err := range event.Records(msg) {
		if err != nil {
			return err
		}
	}
	return nil
}

// recordCount is the number of records a message's header announces, at
// least 1: what a malformed message counts as.
func recordCount(m stream.Msg) int {
	n, err := strconv.Atoi(m.Header.Get(stream.HeaderCount))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// deadLetter adds what the stage cannot process — n records — to the
// group's dead letters. The message id makes a retried publish write it
// once.
func (g *group) deadLetter(seq uint64, idx int, src, reason, detail string, data []byte, n int) {
	g.dead = append(g.dead, deadMsg(seq, src, reason+": "+detail, data, fmt.Sprintf("process-%d-%d", seq, idx)))
	g.deadTally[tallyKey{src, OutcomeInvalid}] += n
}

// deadMsg is a message of the dead-letter stream (docs/format/envelope.md).
func deadMsg(seq uint64, src, reason string, data []byte, msgID string) *natsMsg {
	h := nats.Header{}
	h.Set(HeaderReason, reason)
	h.Set(HeaderIngestSeq, strconv.FormatUint(seq, 10))
	h.Set(HeaderSource, src)
	return &natsMsg{
		Msg:  &nats.Msg{Subject: stream.DLQProcessSubject, Header: h, Data: data},
		opts: []jetstream.PublishOpt{jetstream.WithMsgID(msgID)},
	}
}

// spill moves the records past limit bytes of output to the dead-letter
// stream: one ingest message whose output does not fit a log message
// (transformations can make events larger).
func (g *group) spill(limit int) {
	total := 0
	for i, sc := range g.scr {
		keep := sc.out[:0:0]
		keepN, n := 0, 0
		var keepFwd []bool
		for rec, err := range event.Records(sc.out) {
			if err != nil {
				break
			}
			fwd := sc.forwarded[n]
			n++
			size := event.RecordSize(rec.SourceID, rec.JSON)
			if total+size <= limit {
				keep = event.AppendRecord(keep, rec.SourceID, rec.JSON)
				keepFwd = append(keepFwd, fwd)
				keepN++
				total += size
				continue
			}
			g.dead = append(g.dead, deadMsg(g.last, rec.SourceID, "output_too_large: the group's output exceeds one log message",
				append([]byte(nil), rec.JSON...), fmt.Sprintf("process-spill-%d-%d-%d", g.last, i, keepN+len(g.dead))))
			if fwd {
				// A forwarded event was never counted as received by its
				// source; it is dead-lettered, and no longer forwarded.
				sc.tally[tallyKey{rec.SourceID, OutcomeForwarded}]--
			} else {
				sc.tally[tallyKey{rec.SourceID, OutcomeProcessed}]--
				sc.tally[tallyKey{rec.SourceID, OutcomeTooLarge}]++
			}
		}
		sc.out, sc.records, sc.forwarded = keep, keepN, keepFwd
	}
	g.outBytes, g.records = 0, 0
	for _, sc := range g.scr {
		g.outBytes += len(sc.out)
		g.records += sc.records
	}
}

// message builds the group's processed message: the partitions' records
// in partition order.
func (g *group) message(partitions string) *natsMsg {
	data := make([]byte, 0, g.outBytes)
	for _, sc := range g.scr {
		data = append(data, sc.out...)
	}
	h := nats.Header{}
	h.Set(stream.HeaderFormat, stream.FormatRecords)
	h.Set(stream.HeaderCount, strconv.Itoa(g.records))
	h.Set(HeaderIngestSeq, strconv.FormatUint(g.last, 10))
	h.Set(HeaderPartitions, partitions)
	// A retried publish of the same group is stored once; another node's
	// group of the same ingest messages (other partitions) is another id.
	return &natsMsg{
		Msg:  &nats.Msg{Subject: stream.ProcessedSubject, Header: h, Data: data},
		opts: []jetstream.PublishOpt{jetstream.WithMsgID(fmt.Sprintf("processed-%d-%d-%s", g.first, g.last, partitions))},
	}
}

// detail counts a removed event for the delivery metrics, by type and
// name, with the reason ("" for none).
func (s *Stage) detail(sc *scratch, it *item, outcome, reason string) {
	if s.opts.Metrics == nil {
		return
	}
	k := observe.Key{Source: it.src, EventType: string(it.keys.Type), Outcome: outcome, Reason: reason}
	switch k.EventType {
	case event.Track:
		k.EventName = string(it.keys.Event)
	case event.Page, event.Screen:
		k.EventName = string(it.keys.Name)
	}
	sc.detail[k]++
}

// count adds the group's outcomes to the metrics, once it is committed.
func (g *group) count(m *metrics, rec *observe.Recorder) {
	for k, n := range g.deadTally {
		m.add(k, n)
	}
	for _, sc := range g.scr {
		for k, n := range sc.tally {
			m.add(k, n)
		}
		if rec != nil {
			rec.AddAll(sc.detail)
		}
		for _, f := range sc.deferred {
			f()
		}
	}
}
