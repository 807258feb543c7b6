package process

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/confluxcdp/conflux/internal/stream"
)

// Leases is what a [Leased] stage needs of package lease's Group: to run
// work over the names of a kind this node owns.
type Leases interface {
	RunOwned(ctx context.Context, kind string, names []string, fn func(ctx context.Context, owned []string) error)
}

// partitionLease is the lease of partition p.
func partitionLease(p int) string { return fmt.Sprintf("process/p%02d", p) }

// Leased runs this node's processing stage over the partitions its leases
// give it, and makes a new stage when they change: the old one stops (its
// group written and committed), the partitions it is to hand over are
// released, and a stage over the new set starts, catching the partitions
// it gained up with processed first (see [Stage]). With one node it owns
// every partition and runs one stage for good.
type Leased struct {
	log    *stream.Log
	opts   Options
	leases Leases

	stage atomic.Pointer[Stage]
}

// NewLeased returns the leased stage; Run runs it.
func NewLeased(log *stream.Log, opts Options, leases Leases) *Leased {
	opts.defaults()
	opts.shared = newMetrics(opts.Registerer)
	return &Leased{log: log, opts: opts, leases: leases}
}

// Position is the ingest sequence up to which the running stage has
// processed its partitions (0 while none runs).
func (l *Leased) Position() uint64 {
	if s := l.stage.Load(); s != nil {
		return s.Position()
	}
	return 0
}

// Run keeps a stage over the owned partitions until ctx ends.
func (l *Leased) Run(ctx context.Context) error {
	names := make([]string, l.opts.Partitions)
	byName := make(map[string]int, len(names))
	for p := range names {
		names[p] = partitionLease(p)
		byName[names[p]] = p
	}
	l.leases.RunOwned(ctx, "process", names, func(ctx context.Context, owned []string) error {
		opts := l.opts
		opts.Owned = make([]int, len(owned))
		for i, n := range owned {
			opts.Owned[i] = byName[n]
		}
		s, err := New(ctx, l.log, opts)
		if err != nil {
			return fmt.Errorf("starting the processing stage over partitions %s: %w", formatPartitionSet(opts.Owned), err)
		}
		l.stage.Store(s)
		defer l.stage.Store(nil)
		l.opts.Logger.Info("processing partitions", "partitions", formatPartitionSet(opts.Owned))
		return s.Run(ctx)
	})
	return nil
}
