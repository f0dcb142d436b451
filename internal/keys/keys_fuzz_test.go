package keys

// Fuzzing the engine key encodings: decode(encode(x)) == x, the encodings
// keep the order the layout relies on, and decoding arbitrary bytes never
// panics and accepts only what the encoder produces.

import (
	"bytes"
	"testing"
)

func FuzzKeyRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint64(10), []byte("a"), uint64(2), uint64(11), []byte("b"))
	f.Add(uint64(0), uint64(0), []byte(""), uint64(0), uint64(0), []byte{0xff})
	f.Add(^uint64(0), ^uint64(0), []byte{0x00}, ^uint64(0)-1, uint64(1), []byte{0x00, 0x00})
	f.Add(uint64(1<<32), uint64(255), []byte{0x02, 0x03}, uint64(1<<32), uint64(256), []byte{0x02})
	f.Fuzz(func(t *testing.T, r1, i1 uint64, u1 []byte, r2, i2 uint64, u2 []byte) {
		gr, gi, err := DecodeLogEntryKey(LogEntryKey(r1, i1))
		if err != nil || gr != r1 || gi != i1 {
			t.Fatalf("DecodeLogEntryKey(LogEntryKey(%d, %d)) = %d, %d, %v", r1, i1, gr, gi, err)
		}
		for _, c := range []struct {
			k      []byte
			suffix byte
		}{
			{HardStateKey(r1), hardStateSuffix}, {TruncatedStateKey(r1), truncatedSuffix},
			{AppliedStateKey(r1), appliedSuffix}, {DescriptorKey(r1), descriptorSuffix},
			{TombstoneKey(r1), tombstoneSuffix}, {LogEntryKey(r1, i1), logEntrySuffix},
		} {
			id, suffix, err := DecodeRangeLocalKey(c.k)
			if err != nil || id != r1 || suffix != c.suffix {
				t.Fatalf("DecodeRangeLocalKey(%x) = %d, %q, %v; want %d, %q", c.k, id, suffix, err, r1, c.suffix)
			}
			if !bytes.HasPrefix(c.k, RangeLocalPrefix(r1)) || bytes.Compare(c.k, RangeLocalEnd(r1)) >= 0 {
				t.Fatalf("%x is outside range %d's local span", c.k, r1)
			}
		}
		lp, le := LogPrefix(r1), LogEnd(r1)
		if k := LogEntryKey(r1, i1); bytes.Compare(k, lp) < 0 || bytes.Compare(k, le) >= 0 {
			t.Fatalf("log key %x outside [%x, %x)", k, lp, le)
		}
		u, err := DecodeUserKey(UserKey(u1))
		if err != nil || !bytes.Equal(u, u1) {
			t.Fatalf("DecodeUserKey(UserKey(%x)) = %x, %v", u1, u, err)
		}
		// Order: user keys keep theirs; one range's log sorts by index;
		// range-local spans sort by range ID; every user key is below
		// UserKeyMax and above every local key.
		if a, b := bytes.Compare(UserKey(u1), UserKey(u2)), bytes.Compare(u1, u2); a != b {
			t.Fatalf("UserKey order %d differs from key order %d for %x, %x", a, b, u1, u2)
		}
		if bytes.Compare(UserKey(u1), UserKeyMax()) >= 0 || bytes.Compare(UserKey(u1), RangeLocalEnd(^uint64(0))) < 0 {
			t.Fatalf("UserKey(%x) outside the user key space", u1)
		}
		if a, b := bytes.Compare(LogEntryKey(r1, i1), LogEntryKey(r1, i2)), cmpU64(i1, i2); a != b {
			t.Fatalf("log key order %d differs from index order %d (%d, %d)", a, b, i1, i2)
		}
		if a, b := bytes.Compare(RangeLocalPrefix(r1), RangeLocalPrefix(r2)), cmpU64(r1, r2); a != b {
			t.Fatalf("range-local order %d differs from range ID order %d (%d, %d)", a, b, r1, r2)
		}
		lo, hi := UserSpan(u1, u2)
		if !bytes.Equal(lo, UserKey(u1)) || (len(u2) == 0 && !bytes.Equal(hi, UserKeyMax())) || (len(u2) > 0 && !bytes.Equal(hi, UserKey(u2))) {
			t.Fatalf("UserSpan(%x, %x) = [%x, %x)", u1, u2, lo, hi)
		}
		// PrefixEnd: every key with the prefix sorts below it, and it is
		// the smallest such bound (nil when no bound exists).
		end := PrefixEnd(u1)
		if end == nil {
			if len(bytes.TrimLeft(u1, "\xff")) != 0 {
				t.Fatalf("PrefixEnd(%x) = nil, but a bound exists", u1)
			}
		} else {
			withPrefix := append(append([]byte(nil), u1...), u2...)
			if bytes.Compare(withPrefix, end) >= 0 || bytes.HasPrefix(end, u1) {
				t.Fatalf("PrefixEnd(%x) = %x does not bound %x", u1, end, withPrefix)
			}
		}
	})
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func FuzzKeyDecode(f *testing.F) {
	f.Add(LogEntryKey(3, 42))
	f.Add(DescriptorKey(7))
	f.Add(UserKey([]byte("user")))
	f.Add(StoreIdentKey())
	f.Add([]byte{})
	f.Add([]byte{localPrefix, rangeLocalTag, 0, 0})
	f.Fuzz(func(t *testing.T, k []byte) {
		if id, idx, err := DecodeLogEntryKey(k); err == nil && !bytes.Equal(LogEntryKey(id, idx), k) {
			t.Fatalf("DecodeLogEntryKey(%x) = %d, %d, but LogEntryKey gives %x", k, id, idx, LogEntryKey(id, idx))
		}
		if id, suffix, err := DecodeRangeLocalKey(k); err == nil {
			if !bytes.HasPrefix(k, append(RangeLocalPrefix(id), suffix)) {
				t.Fatalf("DecodeRangeLocalKey(%x) = %d, %q: not its prefix", k, id, suffix)
			}
		}
		if u, err := DecodeUserKey(k); err == nil && !bytes.Equal(UserKey(u), k) {
			t.Fatalf("DecodeUserKey(%x) = %x, but UserKey gives %x", k, u, UserKey(u))
		}
	})
}
