// A log-linear latency histogram in the style of HdrHistogram: exact below
// 128ns, then 128 buckets per power of two (relative error under 0.8%),
// fixed memory whatever the number of operations.

package main

import (
	"math"
	"math/bits"
	"time"
)

const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits
	// histMax caps recorded values (about 18 minutes).
	histMax = int64(1)<<40 - 1
)

// histogram counts durations. Not safe for concurrent use: each bench
// worker owns one and they are merged at the end.
type histogram struct {
	counts   []uint64
	total    uint64
	min, max int64
}

func newHistogram() *histogram {
	return &histogram{counts: make([]uint64, histBucket(histMax)+1), min: math.MaxInt64}
}

// histBucket is the bucket of v >= 0.
func histBucket(v int64) int {
	if v < histSubCount {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - histSubBits - 1 // v>>e is in [128, 256)
	return (e+1)*histSubCount + int(v>>e) - histSubCount
}

// histBounds is the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi int64) {
	if i < histSubCount {
		return int64(i), int64(i)
	}
	e := i/histSubCount - 1
	m := int64(i%histSubCount + histSubCount)
	return m << e, m<<e + 1<<e - 1
}

// record adds one duration.
func (h *histogram) record(d time.Duration) {
	v := int64(d)
	v = max(0, min(v, histMax))
	h.counts[histBucket(v)]++
	h.total++
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// quantile returns the duration at or below which a fraction q (0..1] of
// the recorded durations fall: the middle of its bucket, clipped to the
// observed minimum and maximum. Zero when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(1, min(rank, h.total))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histBounds(i)
			mid := lo + (hi-lo)/2
			return time.Duration(max(h.min, min(mid, h.max)))
		}
	}
	return time.Duration(h.max)
}
