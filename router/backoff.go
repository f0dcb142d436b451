package router

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// backoff is exponential backoff with jitter, bounded by the caller's
// context; the store and placement retry loops share it.
type backoff struct {
	clock    Clock
	min, max time.Duration
	mu       sync.Mutex
	rng      *rand.Rand // seeded: runs replay
}

func newBackoff(clk Clock, min, max time.Duration, seed1, seed2 uint64) *backoff {
	return &backoff{clock: clk, min: min, max: max, rng: rand.New(rand.NewPCG(seed1, seed2))}
}

// wait sleeps for the attempt's delay (half fixed, half random) or until
// ctx ends.
func (b *backoff) wait(ctx context.Context, attempt int) error {
	d := b.min << min(attempt, 16)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.mu.Lock()
	d = d/2 + time.Duration(b.rng.Int64N(int64(d/2)+1))
	b.mu.Unlock()
	if !sleep(ctx, b.clock, d) {
		return ctx.Err()
	}
	return nil
}
