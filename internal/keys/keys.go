package keys

import (
	"encoding/binary"
	"fmt"
)

const (
	localPrefix byte = 0x01
	userPrefix  byte = 0x02

	storeIdentTag byte = 's'
	rangeLocalTag byte = 'r'

	hardStateSuffix     byte = 'h'
	truncatedSuffix     byte = 't'
	appliedSuffix       byte = 'a'
	descriptorSuffix    byte = 'd'
	logEntrySuffix      byte = 'l'
	tombstoneSuffix     byte = 'x'
	rangeIDAllocTag     byte = 'i'
	peerStoreTag        byte = 'p'
	incarnationTag      byte = 'n'
	peerIncarnationTag  byte = 'q'
	rangeLocalPrefixLen      = 2 + 8
)

// StoreIdentKey holds the store's StoreIdent.
func StoreIdentKey() []byte { return []byte{localPrefix, storeIdentTag} }

// RangeIDAllocKey holds the store's counter for range IDs it allocates
// itself (until placement allocates them).
func RangeIDAllocKey() []byte { return []byte{localPrefix, storeIdentTag, rangeIDAllocTag} }

// PeerStoreKey holds what this store learned of another store (its
// address), so that a restarted store finds its peers without placement.
func PeerStoreKey(storeID uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{localPrefix, storeIdentTag, peerStoreTag}, storeID)
}

// PeerStorePrefix is the prefix of all PeerStoreKeys.
func PeerStorePrefix() []byte { return []byte{localPrefix, storeIdentTag, peerStoreTag} }

// StoreIncarnationKey holds the random ID this data directory got when it
// was first initialized: a wiped store started again under the same store
// ID has another one.
func StoreIncarnationKey() []byte { return []byte{localPrefix, storeIdentTag, incarnationTag} }

// PeerIncarnationKey holds the incarnation of store peer that this store
// first accepted Raft traffic from.
func PeerIncarnationKey(peer uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{localPrefix, storeIdentTag, peerIncarnationTag}, peer)
}

// RangeLocalPrefix is the prefix of every local key of rangeID.
func RangeLocalPrefix(rangeID uint64) []byte {
	b := make([]byte, rangeLocalPrefixLen, rangeLocalPrefixLen+9)
	b[0], b[1] = localPrefix, rangeLocalTag
	binary.BigEndian.PutUint64(b[2:], rangeID)
	return b
}

// RangeLocalEnd is the exclusive end of RangeLocalPrefix(rangeID).
func RangeLocalEnd(rangeID uint64) []byte {
	if rangeID == ^uint64(0) {
		return []byte{localPrefix, rangeLocalTag + 1}
	}
	return RangeLocalPrefix(rangeID + 1)
}

func rangeLocal(rangeID uint64, suffix byte) []byte {
	return append(RangeLocalPrefix(rangeID), suffix)
}

// HardStateKey holds raftpb.HardState.
func HardStateKey(rangeID uint64) []byte { return rangeLocal(rangeID, hardStateSuffix) }

// TruncatedStateKey holds rangekvpb.TruncatedState.
func TruncatedStateKey(rangeID uint64) []byte { return rangeLocal(rangeID, truncatedSuffix) }

// AppliedStateKey holds rangekvpb.AppliedState.
func AppliedStateKey(rangeID uint64) []byte { return rangeLocal(rangeID, appliedSuffix) }

// DescriptorKey holds rangekvpb.RangeDescriptor.
func DescriptorKey(rangeID uint64) []byte { return rangeLocal(rangeID, descriptorSuffix) }

// TombstoneKey holds rangekvpb.RangeTombstone.
func TombstoneKey(rangeID uint64) []byte { return rangeLocal(rangeID, tombstoneSuffix) }

// LogEntryKey holds the raftpb.Entry at index.
func LogEntryKey(rangeID, index uint64) []byte {
	b := rangeLocal(rangeID, logEntrySuffix)
	return binary.BigEndian.AppendUint64(b, index)
}

// LogPrefix is the prefix of all log entries of rangeID.
func LogPrefix(rangeID uint64) []byte { return rangeLocal(rangeID, logEntrySuffix) }

// LogEnd is the exclusive end of LogPrefix(rangeID).
func LogEnd(rangeID uint64) []byte { return rangeLocal(rangeID, logEntrySuffix+1) }

// DecodeLogEntryKey returns the range ID and index of a log entry key.
func DecodeLogEntryKey(k []byte) (rangeID, index uint64, err error) {
	if len(k) != rangeLocalPrefixLen+1+8 || k[0] != localPrefix || k[1] != rangeLocalTag || k[rangeLocalPrefixLen] != logEntrySuffix {
		return 0, 0, fmt.Errorf("keys: %x is not a log entry key", k)
	}
	return binary.BigEndian.Uint64(k[2:]), binary.BigEndian.Uint64(k[rangeLocalPrefixLen+1:]), nil
}

// DecodeRangeLocalKey returns the range ID and the suffix tag of a
// range-local key.
func DecodeRangeLocalKey(k []byte) (rangeID uint64, suffix byte, err error) {
	if len(k) < rangeLocalPrefixLen+1 || k[0] != localPrefix || k[1] != rangeLocalTag {
		return 0, 0, fmt.Errorf("keys: %x is not a range-local key", k)
	}
	return binary.BigEndian.Uint64(k[2:]), k[rangeLocalPrefixLen], nil
}

// IsDescriptorSuffix reports whether suffix is the descriptor tag.
func IsDescriptorSuffix(suffix byte) bool { return suffix == descriptorSuffix }

// UserKey encodes a user key into the engine key space.
func UserKey(k []byte) []byte {
	b := make([]byte, 0, len(k)+1)
	return append(append(b, userPrefix), k...)
}

// UserKeyMax is the exclusive upper bound of all user keys.
func UserKeyMax() []byte { return []byte{userPrefix + 1} }

// UserSpan returns the engine span of the user keys [start, end); an empty
// end means +infinity.
func UserSpan(start, end []byte) (lo, hi []byte) {
	lo = UserKey(start)
	if len(end) == 0 {
		return lo, UserKeyMax()
	}
	return lo, UserKey(end)
}

// DecodeUserKey strips the user prefix.
func DecodeUserKey(k []byte) ([]byte, error) {
	if len(k) == 0 || k[0] != userPrefix {
		return nil, fmt.Errorf("keys: %x is not a user key", k)
	}
	return k[1:], nil
}

// Placement driver metadata (its own engine): 0x03 tag ...
const placementPrefix byte = 0x03

// PlacementClusterKey holds the placement cluster record.
func PlacementClusterKey() []byte { return []byte{placementPrefix, 'c'} }

// PlacementStoreKey holds a StoreDescriptor.
func PlacementStoreKey(storeID uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{placementPrefix, 's'}, storeID)
}

// PlacementStorePrefix is the prefix of all PlacementStoreKeys.
func PlacementStorePrefix() []byte { return []byte{placementPrefix, 's'} }

// PlacementRangeKey holds a RangeDescriptor.
func PlacementRangeKey(rangeID uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{placementPrefix, 'r'}, rangeID)
}

// PlacementRangePrefix is the prefix of all PlacementRangeKeys.
func PlacementRangePrefix() []byte { return []byte{placementPrefix, 'r'} }

// PrefixEnd is the exclusive end of all keys starting with prefix.
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
