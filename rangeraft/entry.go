package rangeraft

import (
	"encoding/binary"
	"errors"
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
// Empty data decodes to (0, nil, nil). A batch entry (EncodeBatchEntry)
// is an error here: use DecodeEntries where one may occur.
func DecodeEntry(data []byte) (id uint64, cmd []byte, err error) {
	if len(data) == 0 {
		return 0, nil, nil
	}
	if len(data) < idLen {
		return 0, nil, fmt.Errorf("rangeraft: entry data of %d bytes is shorter than the %d-byte proposal ID", len(data), idLen)
	}
	id = binary.BigEndian.Uint64(data)
	if id == BatchTag {
		return 0, nil, errors.New("rangeraft: a batch entry where one command was expected")
	}
	return id, data[idLen:], nil
}

// BatchTag in the ID position marks an entry that carries several
// proposals (EncodeBatchEntry); no proposal may have it as its ID.
const BatchTag = ^uint64(0)

// SubEntry is one proposal of an entry.
type SubEntry struct {
	ID  uint64
	Cmd []byte
}

// EncodeBatchEntry encodes the proposals ps (two or more) as one entry:
// BatchTag, then for each its ID and command, each prefixed by its
// length as a uvarint. They apply in order, as consecutive entries would.
func EncodeBatchEntry(ps []*Proposal) []byte {
	n := idLen
	for _, p := range ps {
		n += 2*binary.MaxVarintLen64 + len(p.Cmd)
	}
	b := make([]byte, idLen, n)
	binary.BigEndian.PutUint64(b, BatchTag)
	for _, p := range ps {
		b = binary.AppendUvarint(b, p.ID)
		b = binary.AppendUvarint(b, uint64(len(p.Cmd)))
		b = append(b, p.Cmd...)
	}
	return b
}

// DecodeEntries returns the proposals of normal entry data: none for
// empty data, one for an entry of EncodeEntry, several for a batch. The
// commands alias data.
func DecodeEntries(data []byte) ([]SubEntry, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if len(data) < idLen {
		return nil, fmt.Errorf("rangeraft: entry data of %d bytes is shorter than the %d-byte proposal ID", len(data), idLen)
	}
	if id := binary.BigEndian.Uint64(data); id != BatchTag {
		return []SubEntry{{ID: id, Cmd: data[idLen:]}}, nil
	}
	var out []SubEntry
	for rest := data[idLen:]; len(rest) > 0; {
		id, n := binary.Uvarint(rest)
		if n <= 0 {
			return nil, fmt.Errorf("rangeraft: batch entry: bad proposal ID at byte %d", len(data)-len(rest))
		}
		rest = rest[n:]
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return nil, fmt.Errorf("rangeraft: batch entry: bad command length at byte %d", len(data)-len(rest))
		}
		rest = rest[n:]
		out = append(out, SubEntry{ID: id, Cmd: rest[:l:l]})
		rest = rest[l:]
	}
	if len(out) == 0 {
		return nil, errors.New("rangeraft: batch entry with no proposals")
	}
	return out, nil
}
