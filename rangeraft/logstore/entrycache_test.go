package logstore

import (
	"fmt"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// TestEntryCacheMatchesEngine drives one RangeLog (whose entry cache fills as
// it appends) through a seeded mix of appends, tail overwrites by a new term,
// applies, truncations and snapshots, and after every step compares what raft
// would read from it (Entries with and without a size limit, Term) with a
// RangeLog freshly loaded from the same engine, which has no cache. A cache
// that served an overwritten, truncated or never-persisted entry fails here.
func TestEntryCacheMatchesEngine(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 99))
				rangeID := 100 + seed
				l := mustLoad(t, e, rangeID, nil, nil)
				term := uint64(1)
				applied := uint64(0)
				cacheHits := 0
				for step := 0; step < 300; step++ {
					first, _ := l.FirstIndex()
					last, _ := l.LastIndex()
					switch op := rng.IntN(10); {
					case op < 5: // append, sometimes overwriting an unapplied tail
						from := last + 1
						if op == 0 && last > applied && last >= first {
							term++
							from = applied + 1 + uint64(rng.IntN(int(last-applied)))
						}
						n := 1 + uint64(rng.IntN(8))
						appendEnts(t, e, l, entsRange(from, from+n, term), nil)
					case op < 8: // apply some
						if last > applied {
							applied += 1 + uint64(rng.IntN(int(last-applied)))
							l.SetApplied(applied, termAt(t, l, applied), nil)
						}
					case op == 8: // truncate up to applied
						if applied >= first {
							truncate(t, e, l, applied, termAt(t, l, applied))
						}
					default: // rarely, a snapshot past the log
						if rng.IntN(5) == 0 {
							term++
							applied = last + 3
							snapshot(t, e, l, applied, term, &pb.ConfState{Voters: []uint64{1}})
						}
					}
					fresh := mustLoad(t, e, rangeID, nil, &rangekvpb.AppliedState{Index: applied})
					first, _ = l.FirstIndex()
					last, _ = l.LastIndex()
					if f, _ := fresh.FirstIndex(); f != first {
						t.Fatalf("step %d: first index %d, engine says %d", step, first, f)
					}
					if fl, _ := fresh.LastIndex(); fl != last {
						t.Fatalf("step %d: last index %d, engine says %d", step, last, fl)
					}
					if last < first {
						continue
					}
					lo := first + uint64(rng.IntN(int(last-first+1)))
					hi := lo + 1 + uint64(rng.IntN(int(last-lo+1)))
					for _, maxSize := range []uint64{noLimit, uint64(rng.IntN(60))} {
						got, err := l.Entries(lo, hi, maxSize)
						if err != nil {
							t.Fatalf("step %d: Entries(%d, %d, %d): %v", step, lo, hi, maxSize, err)
						}
						want, err := fresh.Entries(lo, hi, maxSize)
						if err != nil {
							t.Fatalf("step %d: engine Entries(%d, %d, %d): %v", step, lo, hi, maxSize, err)
						}
						if !entriesEqual(got, want) {
							t.Fatalf("step %d: Entries(%d, %d, %d) = %v, engine holds %v", step, lo, hi, maxSize, got, want)
						}
					}
					for i := first; i <= last; i++ {
						if got, want := termAt(t, l, i), termAt(t, fresh, i); got != want {
							t.Fatalf("step %d: Term(%d) = %d, engine says %d", step, i, got, want)
						}
					}
					l.mu.Lock()
					if _, ok := l.mu.cache.get(lo, hi, noLimit); ok {
						cacheHits++
					}
					l.mu.Unlock()
				}
				// The cache must actually serve reads, or this test proves
				// nothing about it.
				if cacheHits == 0 {
					t.Fatalf("no read was served from the entry cache")
				}
			})
		}
	})
}

// TestEntryCacheBounded checks the cache drops its oldest entries past its
// byte budget while reads of them still succeed (from the engine).
func TestEntryCacheBounded(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *testEngine) {
		l := mustLoad(t, e, 7, nil, nil)
		big := make([]byte, 512<<10)
		var ents []*pb.Entry
		for i := uint64(1); i <= 12; i++ {
			ents = append(ents, &pb.Entry{Index: ptr(i), Term: ptr(1), Data: big})
		}
		appendEnts(t, e, l, ents, nil)
		l.mu.Lock()
		bytes, n := l.mu.cache.bytes, len(l.mu.cache.ents)
		l.mu.Unlock()
		if bytes > maxCacheBytes || n == 0 || n >= len(ents) {
			t.Fatalf("cache holds %d entries, %d bytes; want some but not all, at most %d bytes", n, bytes, maxCacheBytes)
		}
		got, err := l.Entries(1, 13, noLimit)
		if err != nil || len(got) != 12 {
			t.Fatalf("Entries(1, 13) = %d entries, %v; want 12", len(got), err)
		}
	})
}

func termAt(t *testing.T, l *RangeLog, i uint64) uint64 {
	t.Helper()
	term, err := l.Term(i)
	if err != nil {
		t.Fatalf("Term(%d): %v", i, err)
	}
	return term
}

func ptr(v uint64) *uint64 { return &v }
