package rangeraft

// Fuzzing the entry payload framing: decode(encode(id, cmd)) == (id, cmd);
// arbitrary data never panics, and what decodes re-encodes to itself.

import (
	"bytes"
	"testing"
)

func FuzzEntryRoundTrip(f *testing.F) {
	f.Add(uint64(1), []byte("cmd"))
	f.Add(uint64(0), []byte{})
	f.Add(^uint64(0), []byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, id uint64, cmd []byte) {
		data := EncodeEntry(id, cmd)
		gid, gcmd, err := DecodeEntry(data)
		if err != nil || gid != id || !bytes.Equal(gcmd, cmd) {
			t.Fatalf("DecodeEntry(EncodeEntry(%d, %x)) = %d, %x, %v", id, cmd, gid, gcmd, err)
		}
	})
}

func FuzzEntryDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add(EncodeEntry(7, []byte("x")))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, cmd, err := DecodeEntry(data)
		switch {
		case err != nil:
			if len(data) >= 8 || len(data) == 0 {
				t.Fatalf("DecodeEntry(%x) of %d bytes failed: %v", data, len(data), err)
			}
		case len(data) == 0:
			if id != 0 || cmd != nil {
				t.Fatalf("empty data decoded to %d, %x", id, cmd)
			}
		case !bytes.Equal(EncodeEntry(id, cmd), data):
			t.Fatalf("DecodeEntry(%x) = %d, %x does not re-encode to the input", data, id, cmd)
		}
	})
}
