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
		if id == BatchTag {
			return // reserved: no proposal has it
		}
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
			if (len(data) >= 8 && id != BatchTag && !bytes.HasPrefix(data, EncodeEntry(BatchTag, nil))) || len(data) == 0 {
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

// FuzzBatchEntryDecode: arbitrary data never panics, and what decodes as
// a batch re-encodes to itself.
func FuzzBatchEntryDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(EncodeEntry(7, []byte("x")))
	f.Add(EncodeBatchEntry([]*Proposal{{ID: 1, Cmd: []byte("a")}, {ID: 2, Cmd: []byte("bc")}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		subs, err := DecodeEntries(data)
		if err != nil || len(subs) < 2 && !bytes.HasPrefix(data, EncodeEntry(BatchTag, nil)) {
			return
		}
		var ps []*Proposal
		for _, s := range subs {
			ps = append(ps, &Proposal{ID: s.ID, Cmd: s.Cmd})
		}
		if got := EncodeBatchEntry(ps); !bytes.Equal(got, data) {
			// Uvarints have non-minimal encodings: compare decoded forms.
			again, err := DecodeEntries(got)
			if err != nil || len(again) != len(subs) {
				t.Fatalf("re-encoding %x gave %x (%v)", data, got, err)
			}
			for i := range subs {
				if again[i].ID != subs[i].ID || !bytes.Equal(again[i].Cmd, subs[i].Cmd) {
					t.Fatalf("re-encoding %x changed proposal %d", data, i)
				}
			}
		}
	})
}
