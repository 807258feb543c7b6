package deliver

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff is a randomized exponential retry schedule: the wait before
// retry n (n = 1 after the first failed attempt) is drawn uniformly from
// [d/2, d] with d = Min·2^(n-1), capped at Max.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff starts at 5 s and caps at 30 min: over four hours an
// event is tried about fourteen times, most of them early, when a
// failure is most likely to be a blip.
var DefaultBackoff = Backoff{Min: 5 * time.Second, Max: 30 * time.Minute}

// Delay returns the wait before retry n.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// limiter is a token bucket of requests per second on a Clock, with a
// burst of one second's worth (at least one). A zero rate does not limit.
type limiter struct {
	clock  Clock
	rate   float64
	burst  float64
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(c Clock, perSecond float64) *limiter {
	return &limiter{clock: c, rate: perSecond, burst: max(1, perSecond), tokens: max(1, perSecond), last: c.Now()}
}

// wait takes one token, waiting for it until ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	if l.rate <= 0 {
		return ctx.Err()
	}
	for {
		l.mu.Lock()
		now := l.clock.Now()
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
		if l.tokens >= 1 {
			l.tokens--
			l.mu.Unlock()
			return nil
		}
		need := time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
		l.mu.Unlock()
		if err := sleep(ctx, l.clock, max(need, time.Millisecond)); err != nil {
			return err
		}
	}
}

// breakerState is a circuit breaker's state, exported as a gauge.
type breakerState int

const (
	breakerClosed   breakerState = 0
	breakerHalfOpen breakerState = 1
	breakerOpen     breakerState = 2
)

// breaker stops a destination's sends after consecutive failed requests
// and lets one probe through when its open time has passed; a probe that
// fails opens it again for twice as long (up to maxOpen). While it is
// open, the queue reads nothing new from the log: the backlog waits there
// instead of filling the retry store.
//
// A request fails when none of its events was delivered and at least one
// is to be retried; discards are the destination answering, not failing.
type breaker struct {
	clock     Clock
	threshold int
	minOpen   time.Duration
	maxOpen   time.Duration

	mu        sync.Mutex
	state     breakerState
	failures  int
	openFor   time.Duration
	openUntil time.Time
	probing   bool
	// holdUntil is a pause the destination asked for (Retry-After).
	holdUntil time.Time
	changed   func(breakerState)
}

func newBreaker(c Clock, threshold int, minOpen, maxOpen time.Duration, changed func(breakerState)) *breaker {
	if changed == nil {
		changed = func(breakerState) {}
	}
	changed(breakerClosed)
	return &breaker{clock: c, threshold: threshold, minOpen: minOpen, maxOpen: maxOpen, openFor: minOpen, changed: changed}
}

// wait returns when a request may be sent: the breaker is closed (or
// this caller is the half-open probe) and no Retry-After pause holds. The
// returned bool says whether the caller is the probe.
func (b *breaker) wait(ctx context.Context) (probe bool, err error) {
	for {
		b.mu.Lock()
		now := b.clock.Now()
		var d time.Duration
		switch {
		case now.Before(b.holdUntil):
			d = b.holdUntil.Sub(now)
		case b.state == breakerClosed:
			b.mu.Unlock()
			return false, nil
		case b.state == breakerOpen && !now.Before(b.openUntil):
			b.state, b.probing = breakerHalfOpen, true
			b.changed(breakerHalfOpen)
			b.mu.Unlock()
			return true, nil
		case b.state == breakerOpen:
			d = b.openUntil.Sub(now)
		default: // half-open, the probe is out: wait for its verdict
			d = 50 * time.Millisecond
		}
		b.mu.Unlock()
		if err := sleep(ctx, b.clock, min(d, time.Second)); err != nil {
			return false, err
		}
	}
}

// closed reports whether the breaker lets requests through now.
func (b *breaker) closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == breakerClosed && !b.clock.Now().Before(b.holdUntil)
}

// record takes a request's verdict; probe says whether it was the probe.
func (b *breaker) record(ok, probe bool) {
	b.mu.Lock()
	var to breakerState = -1
	switch {
	case ok:
		b.failures = 0
		if b.state != breakerClosed {
			b.state, b.openFor, b.probing, to = breakerClosed, b.minOpen, false, breakerClosed
		}
	case probe || b.state == breakerHalfOpen:
		if probe {
			b.openFor = min(2*b.openFor, b.maxOpen)
			b.state, b.openUntil, b.probing, to = breakerOpen, b.clock.Now().Add(b.openFor), false, breakerOpen
		}
	default:
		b.failures++
		if b.state == breakerClosed && b.failures >= b.threshold {
			b.state, b.openUntil, to = breakerOpen, b.clock.Now().Add(b.openFor), breakerOpen
		}
	}
	if to >= 0 {
		b.changed(to) // under the lock: gauges see transitions in order
	}
	b.mu.Unlock()
}

// hold pauses every send until d from now (a Retry-After); a shorter
// pause does not cut a longer one.
func (b *breaker) hold(d time.Duration) {
	b.mu.Lock()
	if t := b.clock.Now().Add(d); t.After(b.holdUntil) {
		b.holdUntil = t
	}
	b.mu.Unlock()
}
