// Scope: how much disk the engine and one key span take (Config.Sizes):
// Pebble's own figures in production, a deterministic count of bytes in
// the simulation.

package store

import (
	"github.com/cockroachdb/pebble/v2"
)

// Sizes answers how much disk the engine holds and how much of it one key
// span takes. The figures feed the store's and its ranges' reports to
// placement (byte balance, `rangekv store list`, `rangekv range list`),
// the admin listing, and size-based splits. They are estimates: nothing
// that decides safety reads them.
type Sizes interface {
	// Used is the bytes of disk the engine takes.
	Used(db *pebble.DB) uint64
	// Span estimates the bytes the engine keys in [lo, hi) take.
	Span(db *pebble.DB, lo, hi []byte) (uint64, error)
}

// PebbleSizes are Pebble's figures: the disk space of its files, and
// EstimateDiskUsage over the sstables a span overlaps (what is still only
// in the memtable counts once it is flushed). The production Sizes.
type PebbleSizes struct{}

// Used implements Sizes.
func (PebbleSizes) Used(db *pebble.DB) uint64 { return db.Metrics().DiskSpaceUsage() }

// Span implements Sizes.
func (PebbleSizes) Span(db *pebble.DB, lo, hi []byte) (uint64, error) {
	return db.EstimateDiskUsage(lo, hi)
}

// LogicalSizes count the bytes of the live keys and values, read through
// an iterator: the same answer for the same data, whatever Pebble's files
// look like. For the deterministic simulation, where Pebble's own figures
// would differ between two runs of one seed: its memtable rotates when
// its arena fills, and how fast the arena fills depends on its skiplist's
// node heights, which come from an unseeded math/rand/v2. So the memtable
// flushes after a different write from run to run, and the sstables (and
// so DiskSpaceUsage and EstimateDiskUsage) differ. It reads every key of
// the span, so it is for small data sets only.
type LogicalSizes struct{}

// Used implements Sizes.
func (LogicalSizes) Used(db *pebble.DB) uint64 {
	n, _ := LogicalSizes{}.Span(db, nil, nil)
	return n
}

// Span implements Sizes.
func (LogicalSizes) Span(db *pebble.DB, lo, hi []byte) (uint64, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	var n uint64
	for valid := it.First(); valid; valid = it.Next() {
		n += uint64(len(it.Key()) + len(it.Value()))
	}
	return n, it.Close()
}
