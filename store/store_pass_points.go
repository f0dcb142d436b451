// The pass-point seam (Config.PassPoints): named points between two steps
// of a pass, or of a replica's destroy, where a Runner may stop the
// goroutine to run other steps first (the deterministic simulation
// interleaves the passes of one store's workers there), and the replica
// lock that waits through the seam when it is set. Nil in production:
// each point then costs one nil check.

package store

// PassPoint names a point between two steps of a pass or of a destroy.
// The comment of each says what the goroutine holds there: a Runner that
// blocks in PassPoints.At keeps it held.
type PassPoint uint8

const (
	// PointSplitStaged: applySplit decided about the right range's replica
	// on this store and staged its state (right after the SplitRHSStaged
	// knob); the apply batch has not committed. rangeID is the right
	// range. Held: the locks of every replica of the pass.
	PointSplitStaged PassPoint = iota + 1
	// PointPassStaged: every Ready of the pass is staged into its persist
	// batch (and its applies too, when no snapshot is among them); the
	// batch has not committed. rangeID is the pass's first range (the
	// ranges of concurrent passes are disjoint). Held: the locks of every
	// replica of the pass.
	PointPassStaged
	// PointPassUnlocked: the pass committed, sent and advanced and released
	// its replica locks, and has not yet installed the right halves of the
	// splits it applied nor destroyed the replicas it removed. rangeID is
	// the pass's first range. Held: nothing (the pass's ranges stay in the
	// scheduler's hands).
	PointPassUnlocked
	// PointDestroying: a destroy stopped its replica and has not committed
	// the batch that deletes its state (right after the ReplicaDestroying
	// knob). rangeID is the replica's range. Held: nothing.
	PointDestroying
)

func (p PassPoint) String() string {
	switch p {
	case PointSplitStaged:
		return "split-staged"
	case PointPassStaged:
		return "pass-staged"
	case PointPassUnlocked:
		return "pass-unlocked"
	case PointDestroying:
		return "destroying"
	}
	return "point?"
}

// PassPoints is told when a goroutine of the store reaches a PassPoint,
// and waits for replica locks held elsewhere. Both methods may be called
// from any goroutine, concurrently.
type PassPoints interface {
	// At is called at point p; it may block, and the goroutine goes on
	// when it returns. rangeID as the point's comment says.
	At(p PassPoint, rangeID uint64)
	// Busy is called by a goroutine that found replica rangeID's lock
	// held, in a loop that tries the lock again each time it returns. It
	// must return at the latest once the lock's holder went on from At (a
	// holder stopped in At holds the lock until then).
	Busy(rangeID uint64)
}

// at calls Config.PassPoints at point p, when it is set.
func (s *Store) at(p PassPoint, rangeID uint64) {
	if pp := s.cfg.PassPoints; pp != nil {
		pp.At(p, rangeID)
	}
}

// lock takes r.mu. With Config.PassPoints set it waits through Busy
// rather than in sync.Mutex, whose waiters the simulation's scheduler
// cannot tell from running goroutines (a test bubble's wait for every
// goroutine to block would never end while the holder is stopped in At).
func (r *Replica) lock() {
	if pp := r.store.cfg.PassPoints; pp != nil {
		for !r.mu.TryLock() {
			pp.Busy(r.rangeID)
		}
		return
	}
	r.mu.Lock()
}
