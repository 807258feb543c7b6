package process

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/dedup"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// partition is one user partition: its dedup index, its checkpoint, and
// the scratch space of the group being processed. Only the stage's Run
// goroutine, or the one goroutine it hands the partition to during a
// group, touches it.
type partition struct {
	id          int
	index       *dedup.Index
	ckpt        uint64
	committedAt time.Time

	// Scratch of the current group.
	work    []item
	seen    map[string]struct{}
	entries []dedup.Entry
	out     []byte
	records int
	tally   map[tallyKey]int
}

func newPartition(id int, ix *dedup.Index) *partition {
	return &partition{id: id, index: ix, ckpt: ix.Checkpoint(), seen: map[string]struct{}{}, tally: map[tallyKey]int{}}
}

func (p *partition) reset() {
	p.work = p.work[:0]
	clear(p.seen)
	p.entries = p.entries[:0]
	p.out = p.out[:0]
	p.records = 0
	clear(p.tally)
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
	last     uint64 // last ingest sequence covered
	outBytes int
	records  int
	dead     []*natsMsg
	// deadTally counts records dead-lettered before reaching a partition.
	deadTally map[tallyKey]int
}

// prepare routes msgs' records to the partitions and processes them, in
// parallel, without changing any state outside the partitions' scratch:
// a group that is never published leaves no trace.
func (s *Stage) prepare(ctx context.Context, msgs []stream.Msg) *group {
	g := &group{parts: s.parts, last: msgs[len(msgs)-1].Seq, deadTally: map[tallyKey]int{}}
	for _, p := range s.parts {
		p.reset()
	}
	for _, m := range msgs {
		idx := 0
		for rec, err := range event.Records(m.Data) {
			if err != nil {
				g.deadLetter(m.Seq, idx, "", "malformed_message", err.Error(), m.Data)
				break
			}
			keys, err := event.PeekKeys(rec.JSON)
			if err != nil {
				g.deadLetter(m.Seq, idx, rec.SourceID, "invalid_record", err.Error(), rec.JSON)
				idx++
				continue
			}
			p := s.parts[partitionOf(keys, len(s.parts))]
			if m.Seq > p.ckpt {
				p.work = append(p.work, item{src: rec.SourceID, json: rec.JSON, keys: keys})
			}
			idx++
		}
	}
	var wg sync.WaitGroup
	for _, p := range s.parts {
		if len(p.work) == 0 {
			continue
		}
		wg.Go(func() { s.runPartition(ctx, p) })
	}
	wg.Wait()
	for _, p := range s.parts {
		g.outBytes += len(p.out)
		g.records += p.records
	}
	return g
}

// runPartition processes the partition's work: dedup, then the pipeline.
func (s *Stage) runPartition(ctx context.Context, p *partition) {
	emit := func(src string, rec []byte) {
		p.out = event.AppendRecord(p.out, src, rec)
		p.records++
	}
	emitOther := func(src string, rec []byte) {
		emit(src, rec)
		p.tally[tallyKey{src, OutcomeForwarded}]++
	}
	for _, it := range p.work {
		id := string(it.keys.MessageID)
		if _, dup := p.seen[id]; dup {
			p.tally[tallyKey{it.src, OutcomeDuplicate}]++
			continue
		}
		dup, err := p.index.Contains(it.keys.MessageID)
		if err != nil {
			// The index could not answer: let the event through rather
			// than lose it (at worst a duplicate), and say so.
			s.opts.Logger.Warn("dedup lookup failed", "partition", p.id, "err", err)
			s.m.dedupErrors.Inc()
		}
		if dup {
			p.tally[tallyKey{it.src, OutcomeDuplicate}]++
			continue
		}
		p.seen[id] = struct{}{}
		at := it.keys.ReceivedAt
		if at.IsZero() {
			at = s.opts.Now()
		}
		p.entries = append(p.entries, dedup.Entry{ID: it.keys.MessageID, At: at})
		outcome := s.opts.Pipeline.Process(ctx, it.src, it.json, Emitter{self: emit, other: emitOther, source: it.src})
		p.tally[tallyKey{it.src, outcome}]++
	}
}

// deadLetter adds a record the stage cannot process to the group's dead
// letters. The message id makes a replay of the same group after a crash
// write it once.
func (g *group) deadLetter(seq uint64, idx int, src, reason, detail string, data []byte) {
	h := nats.Header{}
	h.Set(HeaderReason, reason+": "+detail)
	h.Set(HeaderIngestSeq, strconv.FormatUint(seq, 10))
	h.Set(HeaderSource, src)
	g.dead = append(g.dead, &natsMsg{
		Msg:  &nats.Msg{Subject: stream.DLQProcessSubject, Header: h, Data: data},
		opts: []jetstream.PublishOpt{jetstream.WithMsgID(fmt.Sprintf("process-%d-%d", seq, idx))},
	})
	g.deadTally[tallyKey{src, OutcomeInvalid}]++
}

// spill moves the records past limit bytes of output to the dead-letter
// stream: one ingest message whose output does not fit a log message
// (transformations can make events larger).
func (g *group) spill(limit int) {
	total := 0
	for _, p := range g.parts {
		keep := p.out[:0:0]
		keepN := 0
		for rec, err := range event.Records(p.out) {
			if err != nil {
				break
			}
			size := 4 + 1 + len(rec.SourceID) + len(rec.JSON)
			if total+size <= limit {
				keep = event.AppendRecord(keep, rec.SourceID, rec.JSON)
				keepN++
				total += size
				continue
			}
			h := nats.Header{}
			h.Set(HeaderReason, "output_too_large: the group's output exceeds one log message")
			h.Set(HeaderIngestSeq, strconv.FormatUint(g.last, 10))
			h.Set(HeaderSource, rec.SourceID)
			g.dead = append(g.dead, &natsMsg{
				Msg:  &nats.Msg{Subject: stream.DLQProcessSubject, Header: h, Data: append([]byte(nil), rec.JSON...)},
				opts: []jetstream.PublishOpt{jetstream.WithMsgID(fmt.Sprintf("process-spill-%d-%d-%d", g.last, p.id, keepN+len(g.dead)))},
			})
			p.tally[tallyKey{rec.SourceID, OutcomeProcessed}]--
			p.tally[tallyKey{rec.SourceID, OutcomeTooLarge}]++
		}
		p.out, p.records = keep, keepN
	}
	g.outBytes, g.records = 0, 0
	for _, p := range g.parts {
		g.outBytes += len(p.out)
		g.records += p.records
	}
}

// message builds the group's processed message: the partitions' records
// in partition order.
func (g *group) message(partitions string) *natsMsg {
	data := make([]byte, 0, g.outBytes)
	for _, p := range g.parts {
		data = append(data, p.out...)
	}
	h := nats.Header{}
	h.Set(stream.HeaderFormat, stream.FormatRecords)
	h.Set(stream.HeaderCount, strconv.Itoa(g.records))
	h.Set(HeaderIngestSeq, strconv.FormatUint(g.last, 10))
	h.Set(HeaderPartitions, partitions)
	return &natsMsg{Msg: &nats.Msg{Subject: stream.ProcessedSubject, Header: h, Data: data}}
}

// count adds the group's outcomes to the metrics, once it is committed.
func (g *group) count(m *metrics) {
	for k, n := range g.deadTally {
		m.add(k, n)
	}
	for _, p := range g.parts {
		for k, n := range p.tally {
			m.add(k, n)
		}
	}
}
