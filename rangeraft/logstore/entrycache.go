package logstore

import (
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/raft/v3/raftpb"
)

// maxCacheBytes bounds one range's entry cache. Entries past it are read
// from Pebble as before; the cache only saves work, it never decides what
// the log holds.
const maxCacheBytes = 4 << 20

// entryCache holds a contiguous run of the range's most recent log entries
// that are persisted but not yet applied. Raft asks for exactly these when
// commit advances (CommittedEntries) and for their terms when it matches
// appends; serving them from memory saves a Pebble iterator and a decode per
// entry per Ready, which dominates CPU with many busy ranges.
//
// Invariants: ents[i].Index == ents[0].Index + i; every cached entry is
// durable in the engine (entries enter in FinishAppend, after the batch
// committed); an overwritten tail is replaced, never kept beside the new one.
// Entries are shared with raft, which treats them as immutable.
// Not safe for concurrent use: RangeLog's mutex guards it.
type entryCache struct {
	ents  []*pb.Entry
	bytes int
}

// append adds freshly persisted entries, replacing any cached suffix they
// overwrite and dropping everything at or below applied.
func (c *entryCache) append(ents []*pb.Entry, applied uint64) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].GetIndex()
	if len(c.ents) > 0 {
		lo := c.ents[0].GetIndex()
		hi := lo + uint64(len(c.ents)) // one past the cached tail
		switch {
		case first > hi || first <= lo:
			// A gap, or the whole cache is overwritten.
			c.reset()
		case first < hi:
			c.truncateFrom(first)
		}
	}
	for _, e := range ents {
		if e.GetIndex() <= applied {
			continue
		}
		c.ents = append(c.ents, e)
		c.bytes += proto.Size(e)
	}
	for c.bytes > maxCacheBytes && len(c.ents) > 0 {
		c.bytes -= proto.Size(c.ents[0])
		c.ents[0] = nil
		c.ents = c.ents[1:]
	}
}

// truncateFrom drops cached entries with index >= i.
func (c *entryCache) truncateFrom(i uint64) {
	lo := c.ents[0].GetIndex()
	keep := int(i - lo)
	for _, e := range c.ents[keep:] {
		c.bytes -= proto.Size(e)
	}
	clear(c.ents[keep:])
	c.ents = c.ents[:keep]
}

// dropThrough drops cached entries with index <= i (applied or truncated).
func (c *entryCache) dropThrough(i uint64) {
	n := 0
	for n < len(c.ents) && c.ents[n].GetIndex() <= i {
		c.bytes -= proto.Size(c.ents[n])
		c.ents[n] = nil
		n++
	}
	c.ents = c.ents[n:]
	if len(c.ents) == 0 {
		c.ents, c.bytes = nil, 0
	}
}

func (c *entryCache) reset() {
	c.ents, c.bytes = nil, 0
}

// get returns entries [lo, hi) limited to maxSize bytes (at least one entry,
// as raft.Storage requires), if the cache holds all of them.
func (c *entryCache) get(lo, hi, maxSize uint64) ([]*pb.Entry, bool) {
	if len(c.ents) == 0 || lo >= hi {
		return nil, false
	}
	first := c.ents[0].GetIndex()
	if lo < first || hi > first+uint64(len(c.ents)) {
		return nil, false
	}
	src := c.ents[lo-first : hi-first]
	var size uint64
	n := 0
	for n < len(src) {
		size += uint64(proto.Size(src[n]))
		if n > 0 && size > maxSize {
			break
		}
		n++
	}
	out := make([]*pb.Entry, n)
	copy(out, src[:n])
	return out, true
}

// term returns the term of entry i if it is cached.
func (c *entryCache) term(i uint64) (uint64, bool) {
	if len(c.ents) == 0 {
		return 0, false
	}
	first := c.ents[0].GetIndex()
	if i < first || i >= first+uint64(len(c.ents)) {
		return 0, false
	}
	return c.ents[i-first].GetTerm(), true
}
