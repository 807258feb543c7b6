package process

import (
	"context"
	"fmt"
	"strconv"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/process/dedup"
	"github.com/confluxcdp/conflux/internal/stream"
)

// recover repairs a crash between publishing a processed message and
// committing its ids: when the last processed message covers an ingest
// sequence beyond a partition's checkpoint, that partition commits the
// message's ids for it with the message's sequence. Without this, the
// group would be processed again and its events written twice.
func (s *Stage) recover(ctx context.Context) error {
	last, ok, err := s.log.Last(ctx, stream.ProcessedStream, stream.ProcessedSubject)
	if err != nil || !ok {
		return err
	}
	seq, err := strconv.ParseUint(last.Header.Get(HeaderIngestSeq), 10, 64)
	if err != nil {
		return fmt.Errorf("processed message %d: header %s %q: %w", last.Seq, HeaderIngestSeq, last.Header.Get(HeaderIngestSeq), err)
	}
	covers, err := parsePartitions(last.Header.Get(HeaderPartitions))
	if err != nil {
		return fmt.Errorf("processed message %d: %w", last.Seq, err)
	}
	entries := make(map[int][]dedup.Entry)
	for rec, err := range event.Records(last.Data) {
		if err != nil {
			return fmt.Errorf("processed message %d: %w", last.Seq, err)
		}
		keys, err := event.PeekKeys(rec.JSON)
		if err != nil {
			continue // a record the stage wrote is always readable; skip what is not
		}
		p := partitionOf(keys, len(s.parts))
		entries[p] = append(entries[p], s.entry(keys))
	}
	for _, p := range s.parts {
		if !covers[p.id] || p.ckpt.Load() >= seq {
			continue
		}
		if err := p.index.Commit(entries[p.id], seq); err != nil {
			return fmt.Errorf("recovering partition %d at ingest seq %d: %w", p.id, seq, err)
		}
		s.opts.Logger.Info("recovered partition after a crash", "partition", p.id, "ids", len(entries[p.id]), "from", p.ckpt.Load(), "to", seq)
		p.ckpt.Store(seq)
	}
	return nil
}
