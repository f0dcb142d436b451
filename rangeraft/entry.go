package rangeraft

import (
	"encoding/binary"
	"fmt"
)

// Normal entries carry an 8-byte big-endian proposal ID followed by the
// state machine's command. Entries with empty data are raft's own (a new
// leader's first entry).
const idLen = 8

// EncodeEntry prefixes cmd with the proposal ID.
func EncodeEntry(id uint64, cmd []byte) []byte {
	b := make([]byte, idLen, idLen+len(cmd))
	binary.BigEndian.PutUint64(b, id)
	return append(b, cmd...)
}

// DecodeEntry splits normal entry data into proposal ID and command.
// Empty data decodes to (0, nil, nil).
func DecodeEntry(data []byte) (id uint64, cmd []byte, err error) {
	if len(data) == 0 {
		return 0, nil, nil
	}
	if len(data) < idLen {
		return 0, nil, fmt.Errorf("rangeraft: entry data of %d bytes is shorter than the %d-byte proposal ID", len(data), idLen)
	}
	return binary.BigEndian.Uint64(data), data[idLen:], nil
}
