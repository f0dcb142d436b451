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
// waits for replica locks held elsewhere, and wakes the store's peer
// senders. Its methods may be called from any goroutine, concurrently.
type PassPoints interface {
	// At is called at point p; it may block, and the goroutine goes on
	// when it returns. rangeID as the point's comment says.
	At(p PassPoint, rangeID uint64)
	// Busy is called by a goroutine that found replica rangeID's lock
	// held, in a loop that tries the lock again each time it returns. It
	// must return at the latest once the lock's holder went on from At (a
	// holder stopped in At holds the lock until then).
	Busy(rangeID uint64)
	// Wake is called, instead of waking it, when a goroutine of the store
	// has work for another that waits for it (messages for a peer's
	// sender, the outcome of a read, a write or a membership change, a
	// request to a background loop): it must call wake, which does (a
	// channel send that never blocks), at the latest once every other
	// goroutine of the store has blocked; never skip it. The simulation
	// calls it when the step settles, as if the Go scheduler ran the
	// woken goroutine only then (production allows that): woken at once,
	// it would run beside the goroutine that woke it, a pass that goes on
	// sending and applying, and see the pass's later work or not as the
	// Go scheduler preempts the pass (seed 65: a sender took a pass's
	// early MsgApps alone or with the rest).
	Wake(wake func())
}

// handOff sends v on ch, whose waiter's buffer has room for it, through
// PassPoints.Wake when set.
func handOff[T any](s *Store, ch chan<- T, v T) {
	if pp := s.cfg.PassPoints; pp != nil {
		pp.Wake(func() { ch <- v })
		return
	}
	ch <- v
}

// kick leaves a token in ch (a loop's wake-up channel of capacity 1)
// unless one is there, through PassPoints.Wake when set.
func (s *Store) kick(ch chan<- struct{}) {
	if pp := s.cfg.PassPoints; pp != nil {
		pp.Wake(func() { kickNow(ch) })
		return
	}
	kickNow(ch)
}

func kickNow(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
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
