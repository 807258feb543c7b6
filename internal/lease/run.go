package lease

import (
	"context"
	"time"
)

// RunOwned runs fn while this node owns the lease name (of kind kind),
// until ctx ends: a role that one node at a time plays for the cluster
// (the identity graph's writer). When ownership moves, fn's context is
// cancelled, fn is waited for, and then the lease is released, so that
// the next owner starts only after fn has stopped. When fn returns while
// the lease is held (an error), it is started again on the next tick.
func (g *Group) RunOwned(ctx context.Context, kind, name string, fn func(ctx context.Context) error) {
	g.Want(kind, []string{name})
	type role struct {
		cancel context.CancelFunc
		done   chan error
	}
	var cur *role
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
					g.log.Warn("lease: the role stopped with an error; starting it again", "lease", name, "err", err)
				}
				cur.cancel()
				cur = nil
			default:
			}
		}
		owns := g.Owns(name)
		switch {
		case owns && cur == nil:
			rctx, cancel := context.WithCancel(ctx)
			r := &role{cancel: cancel, done: make(chan error, 1)}
			cur = r
			go func() { r.done <- fn(rctx) }()
			g.log.Info("lease: playing the role", "lease", name, "node", g.opts.Node)
		case !owns && cur != nil:
			stop()
		}
		if !owns && g.Holds(name) {
			_ = g.Release(ctx, name)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
