// Package keys defines the layout of a store's single Pebble engine.
//
//	0x01 's'                          store identity (cluster ID, store ID)
//	0x01 's' 'i'                      the store's range ID allocator
//	0x01 's' 'p' storeID(8B BE)       a peer store's descriptor (address),
//	                                  as last learned from placement
//	0x01 'r' rangeID(8B BE) suffix    range-local state of one range:
//	                                  'h' hard state, 't' truncated state,
//	                                  'a' applied state, 'd' descriptor,
//	                                  'x' tombstone (removed replica),
//	                                  'l' index(8B BE) log entries
//	0x02 userkey                      user data, one global key space
//	0x03 'c' | 's' id | 'r' id        placement driver metadata (its own
//	                                  engine): cluster record, stores, ranges
//
// Invariants: every key of one range's local state sorts inside
// RangeLocalPrefix(rangeID) and after every other range's with a smaller ID;
// user keys keep their order after encoding, so a range [start, end) of user
// keys is the engine span [UserKey(start), UserKey(end)) (or UserKeyMax
// for an unbounded end).
package keys
