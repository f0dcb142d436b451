// The range cache: range descriptors ordered by start key, each with the
// leader the client last learned for it. A pure data structure (no I/O, no
// locking, no clock); the Client guards it with its mutex and fills it from
// placement answers, store answers and range errors.

package router

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// leader is where the client believes a range's leader is: a store ID, an
// address, or both. The zero value means unknown.
type leader struct {
	storeID uint64
	addr    string
}

func (l leader) known() bool { return l.storeID != 0 || l.addr != "" }

func (l leader) String() string {
	switch {
	case l.storeID != 0:
		return fmt.Sprintf("s%d", l.storeID)
	case l.addr != "":
		return l.addr
	}
	return "?"
}

// cacheEntry is one cached range.
type cacheEntry struct {
	desc   *rangekvpb.RangeDescriptor
	leader leader
}

// rangeCache holds range descriptors ordered by start key, without
// overlaps.
//
// Invariant: entries are sorted by start key and no two overlap.
// Not safe for concurrent use.
type rangeCache struct {
	entries []cacheEntry
}

// overlaps reports whether the spans of a and b intersect.
func overlaps(a, b *rangekvpb.RangeDescriptor) bool {
	aBeforeB := len(a.EndKey) > 0 && bytes.Compare(a.EndKey, b.StartKey) <= 0
	bBeforeA := len(b.EndKey) > 0 && bytes.Compare(b.EndKey, a.StartKey) <= 0
	return !aBeforeB && !bBeforeA
}

// containsKey reports whether d's span holds key.
func containsKey(d *rangekvpb.RangeDescriptor, key []byte) bool {
	return bytes.Compare(key, d.StartKey) >= 0 && (len(d.EndKey) == 0 || bytes.Compare(key, d.EndKey) < 0)
}

// newerThan reports whether a describes a strictly later state than b: for
// the same range a higher (version, conf_ver); across ranges a higher
// version (a split bumps the version of both halves).
func newerThan(a, b *rangekvpb.RangeDescriptor) bool {
	av, bv := a.GetEpoch().GetVersion(), b.GetEpoch().GetVersion()
	if av != bv {
		return av > bv
	}
	return a.RangeId == b.RangeId && a.GetEpoch().GetConfVer() > b.GetEpoch().GetConfVer()
}

// hasStore reports whether d has a replica on storeID.
func hasStore(d *rangekvpb.RangeDescriptor, storeID uint64) bool {
	for _, r := range d.GetReplicas() {
		if r.StoreId == storeID {
			return true
		}
	}
	return false
}

// search returns the index of the entry that holds key, or -1.
func (c *rangeCache) search(key []byte) int {
	i := sort.Search(len(c.entries), func(i int) bool { return bytes.Compare(c.entries[i].desc.StartKey, key) > 0 }) - 1
	if i < 0 || !containsKey(c.entries[i].desc, key) {
		return -1
	}
	return i
}

// lookup returns the cached range holding key.
func (c *rangeCache) lookup(key []byte) (cacheEntry, bool) {
	if i := c.search(key); i >= 0 {
		return c.entries[i], true
	}
	return cacheEntry{}, false
}

// byID returns the cached range with this ID.
func (c *rangeCache) byID(rangeID uint64) (cacheEntry, bool) {
	for _, e := range c.entries {
		if e.desc.RangeId == rangeID {
			return e, true
		}
	}
	return cacheEntry{}, false
}

// insert caches d with leader l, evicting every cached range it overlaps,
// unless one of them is newer (then the cache is left as it was and insert
// returns false). An unknown l keeps the leader cached for the same range
// ID when that store still holds a replica of d.
func (c *rangeCache) insert(d *rangekvpb.RangeDescriptor, l leader) bool {
	if d == nil {
		return false
	}
	// The overlapping entries are contiguous: [lo, hi).
	lo := sort.Search(len(c.entries), func(i int) bool {
		e := c.entries[i].desc
		return len(e.EndKey) == 0 || bytes.Compare(e.EndKey, d.StartKey) > 0
	})
	hi := lo
	for hi < len(c.entries) && overlaps(c.entries[hi].desc, d) {
		hi++
	}
	for _, o := range c.entries[lo:hi] {
		if newerThan(o.desc, d) {
			return false // we know a newer layout of this span
		}
		if o.desc.RangeId == d.RangeId && !l.known() && (o.leader.storeID == 0 || hasStore(d, o.leader.storeID)) {
			l = o.leader
		}
	}
	if l.storeID != 0 && !hasStore(d, l.storeID) {
		l = leader{} // a store that no longer holds the range cannot lead it
	}
	e := cacheEntry{desc: d, leader: l}
	c.entries = append(c.entries[:lo], append([]cacheEntry{e}, c.entries[hi:]...)...)
	return true
}

// setLeader records the leader of a cached range; false when the range is
// not cached or l.storeID holds no replica of it.
func (c *rangeCache) setLeader(rangeID uint64, l leader) bool {
	for i := range c.entries {
		if e := &c.entries[i]; e.desc.RangeId == rangeID {
			if l.storeID != 0 && !hasStore(e.desc, l.storeID) {
				return false
			}
			e.leader = l
			return true
		}
	}
	return false
}

// setNewerLeader caches a leader hint whose replica (replicaID) the cached
// descriptor does not list. The hint is taken when the replica is newer
// than the descriptor (its ID is not below the descriptor's
// next_replica_id): the replica was added after the descriptor was cached,
// and refusing it would send every retry back to the replicas that
// answered "not leader". Stores check an epoch's version, not its
// conf_ver, so a request routed this way is served. A hint to a replica
// the descriptor already dropped (an older ID) is refused, as setLeader
// does.
func (c *rangeCache) setNewerLeader(rangeID, replicaID uint64, l leader) bool {
	for i := range c.entries {
		if e := &c.entries[i]; e.desc.RangeId == rangeID {
			if next := e.desc.GetNextReplicaId(); replicaID == 0 || next == 0 || replicaID < next {
				return c.setLeader(rangeID, l)
			}
			e.leader = l
			return true
		}
	}
	return false
}

// drop forgets a range.
func (c *rangeCache) drop(rangeID uint64) {
	for i, e := range c.entries {
		if e.desc.RangeId == rangeID {
			c.entries = append(c.entries[:i], c.entries[i+1:]...)
			return
		}
	}
}

// describe renders the cache, one range a line, for tests and debugging:
//
//	r1 [a, c) v2/c3 voters=1,2,3 leader=s2
func (c *rangeCache) describe() string {
	var b strings.Builder
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%s leader=%s\n", describeDesc(e.desc), e.leader)
	}
	if b.Len() == 0 {
		return "(empty)\n"
	}
	return b.String()
}

// describeDesc renders a descriptor on one line.
func describeDesc(d *rangekvpb.RangeDescriptor) string {
	end := string(d.EndKey)
	if end == "" {
		end = "+inf"
	}
	var stores []string
	for _, r := range d.Replicas {
		s := fmt.Sprint(r.StoreId)
		if r.Role != rangekvpb.ReplicaRole_VOTER {
			s += "(" + strings.ToLower(r.Role.String()) + ")"
		}
		stores = append(stores, s)
	}
	return fmt.Sprintf("r%d [%s, %s) v%d/c%d stores=%s", d.RangeId, d.StartKey, end,
		d.GetEpoch().GetVersion(), d.GetEpoch().GetConfVer(), strings.Join(stores, ","))
}
