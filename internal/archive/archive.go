// Package archive writes every processed event to compressed, columnar
// files (Parquet), partitioned by source and hour under the data
// directory, so that they can be queried with DuckDB or Spark and replayed
// beyond the log's retention:
//
//	<dir>/source=<id>/hour=2026-12-01T10/part-<first>-<last>.parquet
//
// first and last are the processed-log sequences a flush covers. A flush
// writes each part to a temporary file, syncs and renames it, then moves
// the archive's position (<dir>/position) past last; on start, parts past
// the position — a flush cut short by a crash — are deleted and read again
// from the log, so every event is archived once.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/parquet-go/parquet-go"
)

// Row is one archived event.
type Row struct {
	MessageID   string `parquet:"message_id"`
	SourceID    string `parquet:"source_id"`
	Type        string `parquet:"type"`
	Event       string `parquet:"event"` // a track's event, a page's or screen's name
	UserID      string `parquet:"user_id"`
	AnonymousID string `parquet:"anonymous_id"`
	// ReceivedAt is when Conflux accepted the event, unix milliseconds.
	ReceivedAt int64 `parquet:"received_at,timestamp(millisecond)"`
	// JSON is the event as stored, for replay and for what the columns
	// leave out.
	JSON string `parquet:"json,zstd"`
}

// Options configure an [Archiver]. Zero values take the defaults.
type Options struct {
	Log *stream.Log
	// Dir is the archive's directory.
	Dir string
	// FlushEvery bounds how long an event waits in memory. Default: 30s.
	FlushEvery time.Duration
	// MaxRows flushes once this many events wait. Default: 100,000.
	MaxRows int
	Logger  *slog.Logger
}

// Archiver archives the processed log.
type Archiver struct {
	opts Options
	pos  uint64
}

// New opens the archive in opts.Dir, deleting what a crash left past its
// position.
func New(opts Options) (*Archiver, error) {
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 30 * time.Second
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = 100_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating the archive directory %s: %w", opts.Dir, err)
	}
	a := &Archiver{opts: opts}
	pos, err := readPosition(opts.Dir)
	if err != nil {
		return nil, err
	}
	a.pos = pos
	if err := a.clean(); err != nil {
		return nil, err
	}
	return a, nil
}

// Position is the last processed sequence archived.
func (a *Archiver) Position() uint64 { return a.pos }

// Run archives the log until ctx ends, then flushes what waits. A failing
// read or write is retried from the position.
func (a *Archiver) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := a.read(ctx)
		if ctx.Err() != nil {
			break
		}
		a.opts.Logger.Warn("archiving interrupted; retrying", "err", err, "position", a.pos)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// part is the rows of one source and hour waiting for a flush.
type part struct{ source, hour string }

func (a *Archiver) read(ctx context.Context) error {
	r, err := a.opts.Log.ReadAlone(ctx, "conflux-archive", stream.ProcessedStream, a.pos+1)
	if err != nil {
		return err
	}
	defer r.Close()
	parts := map[part][]Row{}
	rows := 0
	var first, last uint64
	deadline := time.Time{}
	flush := func() error {
		if rows == 0 {
			return nil
		}
		if err := a.flush(parts, first, last); err != nil {
			return err
		}
		clear(parts)
		rows, first = 0, 0
		return nil
	}
	for {
		wait := a.opts.FlushEvery
		if !deadline.IsZero() {
			wait = time.Until(deadline)
		}
		nctx, cancel := context.WithTimeout(ctx, max(wait, time.Millisecond))
		msgs, err := r.Next(nctx, 1<<20, 20*time.Millisecond)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				// Stopping: what waits is flushed, so a clean stop leaves
				// nothing to read again.
				return errors.Join(ctx.Err(), flush())
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if err := flush(); err != nil {
					return err
				}
				deadline = time.Time{}
				continue
			}
			return err
		}
		for _, m := range msgs {
			if first == 0 {
				first = m.Seq
				deadline = time.Now().Add(a.opts.FlushEvery)
			}
			last = m.Seq
			for rec, err := range event.Records(m.Data) {
				if err != nil {
					a.opts.Logger.Error("processed message not readable; its rest is not archived", "seq", m.Seq, "err", err)
					break
				}
				row, hour := rowOf(rec)
				k := part{rec.SourceID, hour}
				parts[k] = append(parts[k], row)
				rows++
			}
		}
		if rows >= a.opts.MaxRows || (!deadline.IsZero() && time.Now().After(deadline)) {
			if err := flush(); err != nil {
				return err
			}
			deadline = time.Time{}
		}
	}
}

// rowOf is the archive row of one record, and its hour partition.
func rowOf(rec event.Record) (Row, string) {
	row := Row{SourceID: rec.SourceID, JSON: string(rec.JSON)}
	k, err := event.PeekKeys(rec.JSON)
	if err == nil {
		row.MessageID, row.UserID, row.AnonymousID, row.Type = string(k.MessageID), string(k.UserID), string(k.AnonymousID), string(k.Type)
		row.Event = string(k.Event)
		if row.Event == "" {
			row.Event = string(k.Name)
		}
		row.ReceivedAt = k.ReceivedAt.UnixMilli()
	}
	at := k.ReceivedAt
	if at.IsZero() {
		at = time.Now()
	}
	return row, at.UTC().Format("2006-01-02T15")
}

// flush writes each part's file, then the position.
func (a *Archiver) flush(parts map[part][]Row, first, last uint64) error {
	for k, rows := range parts {
		dir := filepath.Join(a.opts.Dir, "source="+k.source, "hour="+k.hour)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
		path := filepath.Join(dir, fmt.Sprintf("part-%d-%d.parquet", first, last))
		if err := writeFile(path, rows); err != nil {
			return err
		}
	}
	if err := writePosition(a.opts.Dir, last); err != nil {
		return err
	}
	a.pos = last
	return nil
}

// writeFile writes rows to path through a synced temporary file.
func writeFile(path string, rows []Row) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	w := parquet.NewGenericWriter[Row](f, parquet.Compression(&parquet.Zstd))
	_, err = w.Write(rows)
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readPosition(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "position"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the archive's position: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reading the archive's position: %q is not a sequence", b)
	}
	return n, nil
}

func writePosition(dir string, seq uint64) error {
	path := filepath.Join(dir, "position")
	if err := os.WriteFile(path+".tmp", []byte(strconv.FormatUint(seq, 10)+"\n"), 0o640); err != nil {
		return fmt.Errorf("writing the archive's position: %w", err)
	}
	f, err := os.Open(path + ".tmp")
	if err == nil {
		err = f.Sync()
		_ = f.Close()
	}
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err != nil {
		return fmt.Errorf("writing the archive's position: %w", err)
	}
	return syncDir(dir)
}

// clean deletes temporary files and the parts of a flush that did not
// reach its position.
func (a *Archiver) clean() error {
	return filepath.WalkDir(a.opts.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		if strings.HasSuffix(name, ".tmp") {
			return os.Remove(path)
		}
		var lo, hi uint64
		if _, err := fmt.Sscanf(name, "part-%d-%d.parquet", &lo, &hi); err == nil && hi > a.pos {
			a.opts.Logger.Info("deleting an archive part a crash left past the position", "path", path, "position", a.pos)
			return os.Remove(path)
		}
		return nil
	})
}
