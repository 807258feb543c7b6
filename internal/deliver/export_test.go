package deliver

import (
	"context"
	"time"
)

// Settle waits until destination dest's queues (its shards here) have finished everything it
// read or loaded, and its retrier has looked for due jobs twice since the
// call, so that a test driving a fake clock knows every attempt due by now
// has been made. It returns false if that takes longer than timeout.
func (e *Engine) Settle(ctx context.Context, dest string, timeout time.Duration) bool {
	e.mu.Lock()
	var qs []*queue
	for _, r := range e.queues {
		if r.q.dest.ID == dest {
			qs = append(qs, r.q)
		}
	}
	e.mu.Unlock()
	if len(qs) == 0 {
		return false
	}
	start := make([]int64, len(qs))
	for i, q := range qs {
		_, start[i] = q.idle()
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		settled := true
		for i, q := range qs {
			if idle, polls := q.idle(); !idle || polls < start[i]+2 {
				settled = false
			}
		}
		if settled {
			return true
		}
		if sleep(ctx, RealClock{}, time.Millisecond) != nil {
			return false
		}
	}
	return false
}
