// Store liveness: every pair of stores keeps up a ping (each peer stream
// sends at least one batch per flush interval, and a store answers a
// peer's new stream with one of its own); a store not heard from for
// the liveness timeout is considered down. Quiesced followers whose
// leader's store is down wake and elect a new leader.

package store

import (
	"sync"
	"time"
)

type liveness struct {
	self    uint64
	now     func() time.Time
	timeout time.Duration
	start   time.Time

	mu struct {
		sync.Mutex
		last map[uint64]time.Time
		// live is the state reported by the last call to transitions.
		live map[uint64]bool
		// fresh: stores that opened a new stream to this one since the
		// last call to transitions (reconnected).
		fresh map[uint64]bool
	}
}

func newLiveness(self uint64, now func() time.Time, timeout time.Duration) *liveness {
	l := &liveness{self: self, now: now, timeout: timeout, start: now()}
	l.mu.last = make(map[uint64]time.Time)
	l.mu.live = make(map[uint64]bool)
	l.mu.fresh = make(map[uint64]bool)
	return l
}

// heard records a batch (or ping) from a store.
func (l *liveness) heard(storeID uint64) {
	l.mu.Lock()
	l.mu.last[storeID] = l.now()
	l.mu.Unlock()
}

// reconnected records that a peer opened a new stream to this store: it
// restarted (or its connection broke). The next transitions reports it as
// come up even if it was never seen down, so that quiesced leaders with a
// replica there heartbeat it at once: a restarted store's replicas know no
// leader, and would otherwise wait out a randomized election timeout to
// pre-vote before a leader wakes (slow to serve again, and with 100,000
// replicas a storm of pre-votes).
func (l *liveness) reconnected(storeID uint64) {
	l.mu.Lock()
	l.mu.fresh[storeID] = true
	l.mu.Unlock()
}

// isLive reports whether storeID was heard from within the timeout. A
// store never heard from counts as live for one timeout after start.
func (l *liveness) isLive(storeID uint64) bool {
	if storeID == l.self || storeID == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.isLiveLocked(storeID, l.now())
}

func (l *liveness) isLiveLocked(storeID uint64, now time.Time) bool {
	t, ok := l.mu.last[storeID]
	if !ok {
		return now.Sub(l.start) < l.timeout
	}
	return now.Sub(t) < l.timeout
}

// transitions returns the stores (among peers) now down, those that went
// down since the previous call, and those that came back up.
func (l *liveness) transitions(peers []uint64) (dead, newlyDead map[uint64]bool, cameUp []uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, id := range peers {
		if id == l.self {
			continue
		}
		live := l.isLiveLocked(id, now)
		was, known := l.mu.live[id]
		if !live {
			if dead == nil {
				dead = make(map[uint64]bool)
			}
			dead[id] = true
			if !known || was {
				if newlyDead == nil {
					newlyDead = make(map[uint64]bool)
				}
				newlyDead[id] = true
			}
		} else if (known && !was) || l.mu.fresh[id] {
			cameUp = append(cameUp, id)
			delete(l.mu.fresh, id)
		}
		l.mu.live[id] = live
	}
	return dead, newlyDead, cameUp
}
