package router

import (
	"bytes"
	"sort"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// rangeCache holds range descriptors ordered by start key, without
// overlaps: inserting a descriptor evicts every cached one it overlaps
// whose epoch is not newer. Not safe for concurrent use.
type rangeCache struct {
	ranges  []*rangekvpb.RangeDescriptor
	leaders map[uint64]string
}

func overlaps(a, b *rangekvpb.RangeDescriptor) bool {
	aBeforeB := len(a.EndKey) > 0 && bytes.Compare(a.EndKey, b.StartKey) <= 0
	bBeforeA := len(b.EndKey) > 0 && bytes.Compare(b.EndKey, a.StartKey) <= 0
	return !aBeforeB && !bBeforeA
}

// lookup returns the cached descriptor holding key, or nil.
func (c *rangeCache) lookup(key []byte) *rangekvpb.RangeDescriptor {
	i := sort.Search(len(c.ranges), func(i int) bool { return bytes.Compare(c.ranges[i].StartKey, key) > 0 }) - 1
	if i < 0 {
		return nil
	}
	d := c.ranges[i]
	if len(d.EndKey) > 0 && bytes.Compare(key, d.EndKey) >= 0 {
		return nil
	}
	return d
}

// insert caches d unless a cached overlapping descriptor is newer.
func (c *rangeCache) insert(d *rangekvpb.RangeDescriptor) {
	if d == nil {
		return
	}
	kept := c.ranges[:0:0]
	for _, o := range c.ranges {
		if overlaps(o, d) {
			if o.GetEpoch().GetVersion() > d.GetEpoch().GetVersion() {
				return // we know a newer layout of this span
			}
			if o.RangeId != d.RangeId {
				delete(c.leaders, o.RangeId)
			}
			continue
		}
		kept = append(kept, o)
	}
	kept = append(kept, d)
	sort.Slice(kept, func(i, j int) bool { return bytes.Compare(kept[i].StartKey, kept[j].StartKey) < 0 })
	c.ranges = kept
}

// drop forgets a range.
func (c *rangeCache) drop(rangeID uint64) {
	kept := c.ranges[:0:0]
	for _, o := range c.ranges {
		if o.RangeId != rangeID {
			kept = append(kept, o)
		}
	}
	c.ranges = kept
	delete(c.leaders, rangeID)
}
