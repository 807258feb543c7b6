package process

import (
	"context"
	"fmt"
	"strconv"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/dedup"
	"github.com/confluxcdp/conflux/internal/stream"
)

// recover brings each owned partition's index up to what processed holds
// for it, reading processed back from its end: the ids of every message
// covering the partition with an ingest sequence past the partition's
// checkpoint are committed, with the greatest such sequence as the new
// checkpoint. It covers two cases:
//   - a crash between publishing a processed message and committing its
//     ids (on one node, only the last message can lack its commit):
//     without this, the group would be processed again and its events
//     written twice;
//   - a partition taken over from another node, whose index here is
//     older than what that node wrote (or absent): its messages are the
//     dedup index's log (spec §3), so the index is rebuilt from them.
//
// The scan stops, for a partition, at the first message covering it at or
// below its checkpoint (what it already has), and at the stream's start:
// a partition new to this node rebuilds from everything processed still
// holds (7 days), which bounds what it remembers of older ids.
func (s *Stage) recover(ctx context.Context) error {
	type catchUp struct {
		entries []dedup.Entry
		upTo    uint64
		done    bool
	}
	need := make(map[int]*catchUp, len(s.parts))
	for _, p := range s.parts {
		need[p.id] = &catchUp{}
	}
	open := len(need)
	var scanErr error
	err := s.log.Backward(ctx, stream.ProcessedStream, func(m stream.Msg) bool {
		seq, err := strconv.ParseUint(m.Header.Get(HeaderIngestSeq), 10, 64)
		if err != nil {
			scanErr = fmt.Errorf("processed message %d: header %s %q: %w", m.Seq, HeaderIngestSeq, m.Header.Get(HeaderIngestSeq), err)
			return false
		}
		covers, err := parsePartitions(m.Header.Get(HeaderPartitions))
		if err != nil {
			scanErr = fmt.Errorf("processed message %d: %w", m.Seq, err)
			return false
		}
		var take []*partition
		for _, p := range s.parts {
			c := need[p.id]
			if c.done || !covers[p.id] {
				continue
			}
			if seq <= p.ckpt.Load() {
				c.done = true
				open--
				continue
			}
			c.upTo = max(c.upTo, seq)
			take = append(take, p)
		}
		if len(take) > 0 {
			for rec, err := range event.Records(m.Data) {
				if err != nil {
					scanErr = fmt.Errorf("processed message %d: %w", m.Seq, err)
					return false
				}
				keys, err := event.PeekKeys(rec.JSON)
				if err != nil {
					continue // a record the stage wrote is always readable; skip what is not
				}
				id := partitionOf(keys, s.opts.Partitions)
				for _, p := range take {
					if p.id == id {
						need[id].entries = append(need[id].entries, s.entry(keys))
					}
				}
			}
		}
		return open > 0
	})
	if err == nil {
		err = scanErr
	}
	if err != nil {
		return err
	}
	for _, p := range s.parts {
		c := need[p.id]
		if c.upTo == 0 {
			continue
		}
		if err := p.index.Commit(c.entries, c.upTo); err != nil {
			return fmt.Errorf("catching partition %d up to ingest seq %d: %w", p.id, c.upTo, err)
		}
		s.opts.Logger.Info("partition caught up with processed", "partition", p.id, "ids", len(c.entries), "from", p.ckpt.Load(), "to", c.upTo)
		p.ckpt.Store(c.upTo)
	}
	return nil
}
