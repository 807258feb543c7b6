package lease

import (
	"context"
	"slices"
	"time"
)

// RunOwned runs fn over the names (of kind kind) this node owns, until
// ctx ends: work the cluster shares out by name (the processing
// partitions) or a role one node plays at a time (a single name: the
// identity graph's writer). fn gets the owned names, sorted, and runs
// until its context ends. When the owned set changes, fn's context is
// cancelled and fn waited for, the leases to hand over are released (so
// the next owner starts only after fn has stopped), and fn starts again
// over the new set; it does not run while the set is empty. When fn
// returns on its own (an error), it is started again on the next tick.
func (g *Group) RunOwned(ctx context.Context, kind string, names []string, fn func(ctx context.Context, owned []string) error) {
	g.Want(kind, names)
	type run struct {
		owned  []string
		cancel context.CancelFunc
		done   chan error
	}
	var cur *run
	stop := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
	}
	defer stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if cur != nil {
			select {
			case err := <-cur.done:
				if err != nil && ctx.Err() == nil {
					g.log.Warn("lease: the work stopped with an error; starting it again", "kind", kind, "err", err)
				}
				cur.cancel()
				cur = nil
			default:
			}
		}
		var owned []string
		for _, n := range names {
			if g.Owns(n) {
				owned = append(owned, n)
			}
		}
		slices.Sort(owned)
		if cur != nil && !slices.Equal(cur.owned, owned) {
			stop()
		}
		for _, n := range g.Leaving() {
			if slices.Contains(names, n) {
				_ = g.Release(ctx, n)
			}
		}
		if cur == nil && len(owned) > 0 {
			rctx, cancel := context.WithCancel(ctx)
			r := &run{owned: owned, cancel: cancel, done: make(chan error, 1)}
			cur = r
			go func() { r.done <- fn(rctx, r.owned) }()
			g.log.Debug("lease: running owned work", "kind", kind, "owned", owned, "node", g.opts.Node)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
