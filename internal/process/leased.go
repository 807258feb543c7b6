package process

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/confluxcdp/conflux/internal/stream"
)

// Leases is what a [Leased] stage needs of package lease's Group.
type Leases interface {
	Want(kind string, names []string)
	Owns(name string) bool
	Leaving() []string
	Release(ctx context.Context, name string) error
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
	// Poll is how often ownership is looked at. Default: 250ms.
	Poll time.Duration

	position atomic.Uint64
}

// NewLeased returns the leased stage; Run runs it.
func NewLeased(log *stream.Log, opts Options, leases Leases) *Leased {
	opts.defaults()
	opts.shared = newMetrics(opts.Registerer)
	return &Leased{log: log, opts: opts, leases: leases, Poll: 250 * time.Millisecond}
}

// Position is the ingest sequence up to which the running stage has
// processed its partitions (0 while none runs).
func (l *Leased) Position() uint64 { return l.position.Load() }

// Run keeps a stage over the owned partitions until ctx ends.
func (l *Leased) Run(ctx context.Context) error {
	names := make([]string, l.opts.Partitions)
	for p := range names {
		names[p] = partitionLease(p)
	}
	l.leases.Want("process", names)
	type run struct {
		stage  *Stage
		cancel context.CancelFunc
		done   chan error
	}
	var (
		owned []int
		cur   *run
	)
	stop := func() {
		if cur != nil {
			cur.cancel()
			if err := <-cur.done; err != nil && ctx.Err() == nil {
				l.opts.Logger.Warn("processing stage stopped with an error", "err", err)
			}
			cur = nil
		}
	}
	defer stop()
	tick := time.NewTicker(l.Poll)
	defer tick.Stop()
	for {
		now := l.owned()
		if !slices.Equal(now, owned) {
			stop()
			for _, name := range l.leases.Leaving() {
				if strings.HasPrefix(name, "process/") {
					if err := l.leases.Release(ctx, name); err != nil {
						l.opts.Logger.Warn("handing a partition over", "lease", name, "err", err)
					}
				}
			}
			owned = now
			if len(owned) > 0 {
				opts := l.opts
				opts.Owned = owned
				s, err := New(ctx, l.log, opts)
				if err != nil {
					l.opts.Logger.Error("starting the processing stage", "partitions", formatPartitionSet(owned), "err", err)
					owned = nil // tried again on the next tick
				} else {
					sctx, cancel := context.WithCancel(ctx)
					done := make(chan error, 1)
					cur = &run{stage: s, cancel: cancel, done: done}
					go func() { done <- s.Run(sctx) }()
					l.opts.Logger.Info("processing partitions", "partitions", formatPartitionSet(owned))
				}
			}
		}
		if cur != nil {
			l.position.Store(cur.stage.Position())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// owned returns the partitions this node owns now, sorted.
func (l *Leased) owned() []int {
	var out []int
	for p := range l.opts.Partitions {
		if l.leases.Owns(partitionLease(p)) {
			out = append(out, p)
		}
	}
	return out
}
