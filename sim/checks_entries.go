// A committed entry never changes: every replica of a range that applies
// an entry at an index applies the same one (term, type and data), on
// every store and after every restart. The stores report each entry they
// stage for apply through store.TestingKnobs.ApplyingEntry.

package sim

import (
	"hash/fnv"
	"sync"

	raftpb "go.etcd.io/raft/v3/raftpb"
)

// entryKey is a log position of a range.
type entryKey struct{ rangeID, index uint64 }

// appliedEntry is what the first replica to apply an entry applied.
type appliedEntry struct {
	term  uint64
	typ   raftpb.EntryType
	sum   uint64 // FNV-64a of the data
	store int    // the store process (index) that applied it first
}

// entries remembers the entry applied at each position of each range.
// record runs on the goroutine of a store's pass; mu keeps it safe if
// passes of two stores ever run at once.
type entries struct {
	mu   sync.Mutex
	seen map[entryKey]appliedEntry
	// log follows each range's log as first applied (checks_log.go).
	log logGrowth
	// fail reports a violation (world.failf in a run).
	fail func(format string, args ...any)
}

func newEntries(fail func(format string, args ...any)) *entries {
	return &entries{seen: map[entryKey]appliedEntry{}, fail: fail}
}

// record notes that store process storeIdx applies e at its index of
// rangeID, and fails the run if another entry was applied there before.
func (es *entries) record(storeIdx int, rangeID uint64, e *raftpb.Entry) {
	h := fnv.New64a()
	h.Write(e.GetData())
	got := appliedEntry{term: e.GetTerm(), typ: e.GetType(), sum: h.Sum64(), store: storeIdx}
	k := entryKey{rangeID, e.GetIndex()}
	es.mu.Lock()
	defer es.mu.Unlock()
	first, ok := es.seen[k]
	if !ok {
		es.seen[k] = got
		if msg := es.log.saw(rangeID, e); msg != "" {
			es.fail("%s", msg)
		}
		return
	}
	if first.term != got.term || first.typ != got.typ || first.sum != got.sum {
		es.fail("range %d index %d: s%d applied term %d %s data %x, s%d applied term %d %s data %x",
			rangeID, e.GetIndex(), first.store+1, first.term, first.typ, first.sum, storeIdx+1, got.term, got.typ, got.sum)
	}
}
