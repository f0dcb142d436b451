package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 511, 512, 1000, 1 << 20, 1<<20 + 1, histMax} {
		b := histBucket(v)
		lo, hi := histBounds(b)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d = [%d, %d]", v, b, lo, hi)
		}
		if b < prev {
			t.Errorf("bucket of %d (%d) is below the previous (%d)", v, b, prev)
		}
		prev = b
		if v >= histSubCount && float64(hi-lo)/float64(lo) > 1.0/histSubCount {
			t.Errorf("bucket %d [%d, %d] is wider than 1/%d of its value", b, lo, hi, histSubCount)
		}
	}
	// Buckets tile the value space.
	for i := 1; i < histBucket(histMax); i++ {
		_, hiPrev := histBounds(i - 1)
		lo, _ := histBounds(i)
		if lo != hiPrev+1 {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, hiPrev)
		}
	}
}

// TestHistogramQuantiles compares with the exact quantiles of a sorted
// slice (the naive reference): within the bucket precision.
func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	total := newHistogram()
	for part := range 4 {
		h := newHistogram()
		for range 20000 {
			// Log-normal-ish latencies from 50µs to ~1s.
			d := time.Duration(math.Exp(rng.NormFloat64()*1.5+math.Log(float64(time.Millisecond)))) + time.Duration(part)
			h.record(d)
			all = append(all, d)
		}
		total.merge(h)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.95, 0.99, 0.999, 1} {
		want := all[int(math.Ceil(q*float64(len(all))))-1]
		got := total.quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.01 {
			t.Errorf("q%.3f = %v, exact %v (off by %.2f%%)", q, got, want, rel*100)
		}
	}
	if total.quantile(1) != all[len(all)-1] {
		t.Errorf("max %v, want %v", total.quantile(1), all[len(all)-1])
	}
	if newHistogram().quantile(0.5) != 0 {
		t.Error("an empty histogram has a median")
	}
}
