package dedup

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Pebble settings. The keys are 25 bytes with empty values, written in
// synced batches of about a thousand and read by point lookups.
const (
	// memTableSize is the size of one memtable; Pebble may hold
	// memTableStopWrites of them while flushing.
	memTableSize       = 16 << 20
	memTableStopWrites = 4
	// flushDelayDeleteRange is how long a memtable holding an expired
	// bucket's range deletion may wait for its flush: until the deletion
	// is in a table, Pebble cannot delete the tables it covers.
	flushDelayDeleteRange = 10 * time.Second
	// tableBloomBitsPerKey sizes the Bloom filters Pebble keeps in each
	// table, which spare a false positive of the in-memory filters the
	// reads of index and data blocks in the levels that lack the key.
	tableBloomBitsPerKey = 10
)

// pebbleOptions are the options of an index's Pebble store.
func pebbleOptions(cache *pebble.Cache, log *slog.Logger) *pebble.Options {
	o := &pebble.Options{
		Cache:                       cache,
		FormatMajorVersion:          pebble.FormatNewest,
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: memTableStopWrites,
		FlushDelayDeleteRange:       flushDelayDeleteRange,
		Logger:                      pebbleLogger{log.With("engine", "pebble")},
	}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(tableBloomBitsPerKey)
	}
	// The keys are hashes: compression would cost time and save nothing.
	o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	return o
}

// pebbleLogger sends Pebble's log to slog: its info lines at Debug, since
// they tell of routine work (WAL recovery, file deletion).
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble", "detail", fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble", "detail", fmt.Sprintf(format, args...))
}

// Fatalf logs and panics: Pebble calls it when it cannot go on (a failed
// WAL sync, a corrupt manifest), and does not expect it to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("pebble fatal", "detail", msg)
	panic("pebble: " + msg)
}
