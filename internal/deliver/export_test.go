package deliver

import (
	"context"
	"time"
)

// Settle waits until destination dest's queue has finished everything it
// read or loaded, and its retrier has looked for due jobs twice since the
// call, so that a test driving a fake clock knows every attempt due by now
// has been made. It returns false if that takes longer than timeout.
func (e *Engine) Settle(ctx context.Context, dest string, timeout time.Duration) bool {
	e.mu.Lock()
	r, ok := e.queues[dest]
	e.mu.Unlock()
	if !ok {
		return false
	}
	_, start := r.q.idle()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if idle, polls := r.q.idle(); idle && polls >= start+2 {
			return true
		}
		if sleep(ctx, RealClock{}, time.Millisecond) != nil {
			return false
		}
	}
	return false
}
