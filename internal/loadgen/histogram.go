package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets: exact below 128 ns,
// then 128 buckets per power of two, so a quantile is within 0.4% of the
// true value (the middle of a bucket at most 1/256 away). It keeps the
// exact minimum and maximum. The zero value is empty and ready; it is not
// safe for concurrent use.
type Histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max time.Duration
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histBuckets = histSub + (64-histSubBits)*histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return histSub + shift*histSub + int(v>>shift) - histSub
}

// histBounds returns bucket i's lowest and highest value.
func histBounds(i int) (lo, hi uint64) {
	if i < histSub {
		return uint64(i), uint64(i)
	}
	shift := (i - histSub) / histSub
	top := uint64(histSub + (i-histSub)%histSub)
	return top << shift, (top+1)<<shift - 1
}

// Record adds one duration; a negative one counts as 0.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[histIndex(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.n++
}

// Merge adds o's durations to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
}

// Count is the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the longest duration recorded (0 if none).
func (h *Histogram) Max() time.Duration { return h.max }

// Min is the shortest duration recorded (0 if none).
func (h *Histogram) Min() time.Duration { return h.min }

// Quantile returns the duration below which the fraction q (0–1) of the
// recorded durations fall: the value of rank ceil(q·n), to within the
// bucket precision, clamped to the recorded minimum and maximum. It is 0
// for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, hi := histBounds(i)
			v := time.Duration(lo + (hi-lo)/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
