package keys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
)

// rangeIDs exercises byte-boundary carries of the big-endian encoding.
var rangeIDs = []uint64{0, 1, 2, 255, 256, 257, 65535, 65536, 1 << 32, 1<<56 - 1, 1 << 56, math.MaxUint64 - 1, math.MaxUint64}

// logIndexes likewise for log indexes.
var logIndexes = []uint64{0, 1, 2, 9, 10, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxUint64 - 1, math.MaxUint64}

// userKeys are sorted by bytes.Compare and contain prefix relations, zero and
// 0xff bytes.
var userKeys = [][]byte{
	{},
	{0x00},
	{0x00, 0x00},
	{0x00, 0x01},
	{0x01},
	{0x02},
	{0x03},
	[]byte("a"),
	[]byte("a\x00"),
	[]byte("a\x00\x00"),
	[]byte("aa"),
	[]byte("ab"),
	[]byte("a\xff"),
	[]byte("b"),
	{0xfe, 0xff, 0xff},
	{0xff},
	{0xff, 0x00},
	{0xff, 0xff},
	{0xff, 0xff, 0xff, 0xff},
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

// localKeysOf returns every kind of range-local key of rangeID, in the order
// they must sort in.
func localKeysOf(rangeID uint64) [][]byte {
	ks := [][]byte{
		AppliedStateKey(rangeID),
		DescriptorKey(rangeID),
		HardStateKey(rangeID),
	}
	for _, i := range logIndexes {
		ks = append(ks, LogEntryKey(rangeID, i))
	}
	return append(ks, TruncatedStateKey(rangeID))
}

func TestEncodingGolden(t *testing.T) {
	be := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	rid := uint64(0x0102030405060708)
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"StoreIdentKey", StoreIdentKey(), []byte{0x01, 's'}},
		{"PeerStoreKey", PeerStoreKey(rid), cat([]byte{0x01, 's', 'p'}, be(rid))},
		{"PeerStorePrefix", PeerStorePrefix(), []byte{0x01, 's', 'p'}},
		{"RangeLocalPrefix", RangeLocalPrefix(rid), cat([]byte{0x01, 'r'}, be(rid))},
		{"RangeLocalEnd", RangeLocalEnd(rid), cat([]byte{0x01, 'r'}, be(rid+1))},
		{"RangeLocalEnd(max)", RangeLocalEnd(math.MaxUint64), []byte{0x01, 'r' + 1}},
		{"HardStateKey", HardStateKey(rid), cat([]byte{0x01, 'r'}, be(rid), []byte{'h'})},
		{"TruncatedStateKey", TruncatedStateKey(rid), cat([]byte{0x01, 'r'}, be(rid), []byte{'t'})},
		{"AppliedStateKey", AppliedStateKey(rid), cat([]byte{0x01, 'r'}, be(rid), []byte{'a'})},
		{"DescriptorKey", DescriptorKey(rid), cat([]byte{0x01, 'r'}, be(rid), []byte{'d'})},
		{"LogPrefix", LogPrefix(rid), cat([]byte{0x01, 'r'}, be(rid), []byte{'l'})},
		{"LogEnd", LogEnd(rid), cat([]byte{0x01, 'r'}, be(rid), []byte{'l' + 1})},
		{"LogEntryKey", LogEntryKey(rid, 0xa0b0c0d0e0f00010), cat([]byte{0x01, 'r'}, be(rid), []byte{'l'}, be(0xa0b0c0d0e0f00010))},
		{"UserKey", UserKey([]byte("abc")), []byte{0x02, 'a', 'b', 'c'}},
		{"UserKey(empty)", UserKey(nil), []byte{0x02}},
		{"UserKeyMax", UserKeyMax(), []byte{0x03}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Equal(tc.got, tc.want) {
				t.Errorf("got %x, want %x", tc.got, tc.want)
			}
		})
	}
}

func TestUserKeyOrderPreserved(t *testing.T) {
	for i, a := range userKeys {
		for j, b := range userKeys {
			want := sign(bytes.Compare(a, b))
			if want != sign(i-j) {
				t.Fatalf("test table not sorted at %d/%d", i, j)
			}
			if got := sign(bytes.Compare(UserKey(a), UserKey(b))); got != want {
				t.Errorf("compare(UserKey(%x), UserKey(%x)) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestUserKeyOrderPreservedRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randKey := func() []byte {
		b := make([]byte, rng.IntN(6))
		for i := range b {
			// A small alphabet produces many shared prefixes.
			b[i] = []byte{0x00, 0x01, 0x02, 0x03, 0x7f, 0xff}[rng.IntN(6)]
		}
		return b
	}
	for range 20000 {
		a, b := randKey(), randKey()
		if got, want := sign(bytes.Compare(UserKey(a), UserKey(b))), sign(bytes.Compare(a, b)); got != want {
			t.Fatalf("compare(UserKey(%x), UserKey(%x)) = %d, want %d", a, b, got, want)
		}
	}
}

func FuzzUserKeyOrder(f *testing.F) {
	for i := 1; i < len(userKeys); i++ {
		f.Add(userKeys[i-1], userKeys[i])
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if got, want := sign(bytes.Compare(UserKey(a), UserKey(b))), sign(bytes.Compare(a, b)); got != want {
			t.Fatalf("compare(UserKey(%x), UserKey(%x)) = %d, want %d", a, b, got, want)
		}
		lo, hi := UserSpan(nil, nil)
		if k := UserKey(a); bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
			t.Fatalf("UserKey(%x) = %x outside the whole user span [%x, %x)", a, k, lo, hi)
		}
	})
}

func FuzzUserKeyRoundTrip(f *testing.F) {
	for _, k := range userKeys {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k []byte) {
		got, err := DecodeUserKey(UserKey(k))
		if err != nil {
			t.Fatalf("DecodeUserKey(UserKey(%x)): %v", k, err)
		}
		if !bytes.Equal(got, k) {
			t.Fatalf("DecodeUserKey(UserKey(%x)) = %x", k, got)
		}
	})
}

func TestUserKeyDoesNotAliasInput(t *testing.T) {
	in := []byte("key")
	k := UserKey(in)
	in[0] = 'X'
	if want := []byte{0x02, 'k', 'e', 'y'}; !bytes.Equal(k, want) {
		t.Fatalf("UserKey result changed with its input: got %x, want %x", k, want)
	}
}

func TestUserKeysSortAfterLocalKeys(t *testing.T) {
	var local [][]byte
	local = append(local, StoreIdentKey(), PeerStoreKey(math.MaxUint64))
	for _, r := range rangeIDs {
		local = append(local, RangeLocalPrefix(r), RangeLocalEnd(r), LogEnd(r))
		local = append(local, localKeysOf(r)...)
	}
	lo, hi := UserSpan(nil, nil)
	for _, l := range local {
		if bytes.Compare(l, lo) >= 0 {
			t.Errorf("local key %x does not sort before the user span start %x", l, lo)
		}
	}
	for _, u := range userKeys {
		k := UserKey(u)
		if bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
			t.Errorf("UserKey(%x) = %x not inside [%x, %x)", u, k, lo, hi)
		}
		if bytes.Compare(k, UserKeyMax()) >= 0 {
			t.Errorf("UserKey(%x) = %x not below UserKeyMax %x", u, k, UserKeyMax())
		}
	}
}

func TestRangeLocalKeysOrdering(t *testing.T) {
	for idx, r := range rangeIDs {
		prefix, end := RangeLocalPrefix(r), RangeLocalEnd(r)
		if bytes.Compare(prefix, end) >= 0 {
			t.Errorf("range %d: prefix %x not below end %x", r, prefix, end)
		}
		ks := localKeysOf(r)
		if !slices.IsSortedFunc(ks, bytes.Compare) {
			t.Errorf("range %d: local keys not sorted: %x", r, ks)
		}
		for _, k := range ks {
			if !bytes.HasPrefix(k, prefix) {
				t.Errorf("range %d: key %x lacks RangeLocalPrefix %x", r, k, prefix)
			}
			if bytes.Compare(k, prefix) < 0 || bytes.Compare(k, end) >= 0 {
				t.Errorf("range %d: key %x outside [%x, %x)", r, k, prefix, end)
			}
		}
		// The store identity is never inside a range's local span.
		for _, s := range [][]byte{StoreIdentKey(), PeerStoreKey(0), PeerStoreKey(math.MaxUint64)} {
			if bytes.Compare(s, prefix) >= 0 && bytes.Compare(s, end) < 0 {
				t.Errorf("range %d: store-local key %x inside [%x, %x)", r, s, prefix, end)
			}
		}
		if r != math.MaxUint64 {
			if next := RangeLocalPrefix(r + 1); !bytes.Equal(end, next) {
				t.Errorf("RangeLocalEnd(%d) = %x, want RangeLocalPrefix(%d) = %x", r, end, r+1, next)
			}
		}
		// Every key of r sorts before every key of every larger range ID.
		for _, r2 := range rangeIDs[idx+1:] {
			for _, k := range ks {
				for _, k2 := range localKeysOf(r2) {
					if bytes.Compare(k, k2) >= 0 {
						t.Fatalf("key %x of range %d does not sort before key %x of range %d", k, r, k2, r2)
					}
				}
				if bytes.Compare(k, RangeLocalPrefix(r2)) >= 0 {
					t.Fatalf("key %x of range %d not below RangeLocalPrefix(%d)", k, r, r2)
				}
			}
		}
	}
}

func TestLogEntryKeysOrderedByIndex(t *testing.T) {
	for _, r := range []uint64{0, 1, 255, 256, math.MaxUint64} {
		var ks [][]byte
		for _, i := range logIndexes {
			ks = append(ks, LogEntryKey(r, i))
		}
		for a := range ks {
			for b := range ks {
				if got, want := sign(bytes.Compare(ks[a], ks[b])), sign(cmpUint(logIndexes[a], logIndexes[b])); got != want {
					t.Errorf("range %d: compare(LogEntryKey(%d), LogEntryKey(%d)) = %d, want %d", r, logIndexes[a], logIndexes[b], got, want)
				}
			}
		}
		lo, hi := LogPrefix(r), LogEnd(r)
		for _, k := range ks {
			if !bytes.HasPrefix(k, lo) || bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
				t.Errorf("range %d: log key %x outside [%x, %x)", r, k, lo, hi)
			}
		}
		// No other range-local key falls inside the log span.
		for _, k := range [][]byte{HardStateKey(r), TruncatedStateKey(r), AppliedStateKey(r), DescriptorKey(r)} {
			if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
				t.Errorf("range %d: non-log key %x inside log span [%x, %x)", r, k, lo, hi)
			}
		}
		// The log span is inside the range-local span.
		if bytes.Compare(lo, RangeLocalPrefix(r)) < 0 || bytes.Compare(hi, RangeLocalEnd(r)) > 0 {
			t.Errorf("range %d: log span [%x, %x) not inside range span [%x, %x)", r, lo, hi, RangeLocalPrefix(r), RangeLocalEnd(r))
		}
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestLogEntryKeyRoundTrip(t *testing.T) {
	for _, r := range rangeIDs {
		for _, i := range logIndexes {
			k := LogEntryKey(r, i)
			gotR, gotI, err := DecodeLogEntryKey(k)
			if err != nil {
				t.Fatalf("DecodeLogEntryKey(LogEntryKey(%d, %d)): %v", r, i, err)
			}
			if gotR != r || gotI != i {
				t.Errorf("DecodeLogEntryKey(LogEntryKey(%d, %d)) = (%d, %d)", r, i, gotR, gotI)
			}
			gotR, suffix, err := DecodeRangeLocalKey(k)
			if err != nil {
				t.Fatalf("DecodeRangeLocalKey(LogEntryKey(%d, %d)): %v", r, i, err)
			}
			if gotR != r || suffix != 'l' {
				t.Errorf("DecodeRangeLocalKey(LogEntryKey(%d, %d)) = (%d, %q), want (%d, 'l')", r, i, gotR, suffix, r)
			}
		}
	}
}

func TestLogEntryKeysAreIndependent(t *testing.T) {
	k1 := LogEntryKey(7, 1)
	want := slices.Clone(k1)
	_ = LogEntryKey(7, 2)
	_ = append(LogPrefix(7), 0xff, 0xff)
	_ = append(RangeLocalPrefix(7), 'x')
	if !bytes.Equal(k1, want) {
		t.Fatalf("LogEntryKey result was modified by a later call: %x, want %x", k1, want)
	}
}

func TestDecodeRangeLocalKeyRoundTrip(t *testing.T) {
	ctors := []struct {
		name       string
		fn         func(uint64) []byte
		suffix     byte
		descriptor bool
	}{
		{"HardStateKey", HardStateKey, 'h', false},
		{"TruncatedStateKey", TruncatedStateKey, 't', false},
		{"AppliedStateKey", AppliedStateKey, 'a', false},
		{"DescriptorKey", DescriptorKey, 'd', true},
		{"LogPrefix", LogPrefix, 'l', false},
	}
	for _, c := range ctors {
		for _, r := range rangeIDs {
			t.Run(fmt.Sprintf("%s/%d", c.name, r), func(t *testing.T) {
				gotR, suffix, err := DecodeRangeLocalKey(c.fn(r))
				if err != nil {
					t.Fatal(err)
				}
				if gotR != r || suffix != c.suffix {
					t.Errorf("got (%d, %q), want (%d, %q)", gotR, suffix, r, c.suffix)
				}
				if got := IsDescriptorSuffix(suffix); got != c.descriptor {
					t.Errorf("IsDescriptorSuffix(%q) = %v, want %v", suffix, got, c.descriptor)
				}
			})
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	logKey := LogEntryKey(3, 4)
	tests := []struct {
		name string
		key  []byte
		log  bool // DecodeLogEntryKey succeeds
		rl   bool // DecodeRangeLocalKey succeeds
		user bool // DecodeUserKey succeeds
	}{
		{"nil", nil, false, false, false},
		{"empty", []byte{}, false, false, false},
		{"StoreIdentKey", StoreIdentKey(), false, false, false},
		{"PeerStoreKey", PeerStoreKey(3), false, false, false},
		{"RangeLocalPrefix", RangeLocalPrefix(3), false, false, false},
		{"RangeLocalEnd(max)", RangeLocalEnd(math.MaxUint64), false, false, false},
		{"HardStateKey", HardStateKey(3), false, true, false},
		{"TruncatedStateKey", TruncatedStateKey(3), false, true, false},
		{"DescriptorKey", DescriptorKey(3), false, true, false},
		{"LogPrefix", LogPrefix(3), false, true, false},
		{"LogEnd", LogEnd(3), false, true, false},
		{"LogEntryKey", logKey, true, true, false},
		{"LogEntryKey short", logKey[:len(logKey)-1], false, true, false},
		{"LogEntryKey long", append(slices.Clone(logKey), 0), false, true, false},
		{"LogEntryKey wrong suffix", append(HardStateKey(3), logKey[len(logKey)-8:]...), false, true, false},
		{"LogEntryKey wrong prefix", append([]byte{0x02}, logKey[1:]...), false, false, true},
		{"LogEntryKey wrong tag", append([]byte{0x01, 's'}, logKey[2:]...), false, false, false},
		{"UserKey", UserKey([]byte("abc")), false, false, true},
		{"UserKey empty", UserKey(nil), false, false, true},
		{"UserKeyMax", UserKeyMax(), false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := DecodeLogEntryKey(tc.key); (err == nil) != tc.log {
				t.Errorf("DecodeLogEntryKey(%x) err = %v, want success %v", tc.key, err, tc.log)
			}
			if _, _, err := DecodeRangeLocalKey(tc.key); (err == nil) != tc.rl {
				t.Errorf("DecodeRangeLocalKey(%x) err = %v, want success %v", tc.key, err, tc.rl)
			}
			if _, err := DecodeUserKey(tc.key); (err == nil) != tc.user {
				t.Errorf("DecodeUserKey(%x) err = %v, want success %v", tc.key, err, tc.user)
			}
		})
	}
}

func TestUserKeyRoundTrip(t *testing.T) {
	for _, k := range userKeys {
		got, err := DecodeUserKey(UserKey(k))
		if err != nil {
			t.Fatalf("DecodeUserKey(UserKey(%x)): %v", k, err)
		}
		if !bytes.Equal(got, k) {
			t.Errorf("DecodeUserKey(UserKey(%x)) = %x", k, got)
		}
	}
	if got, err := DecodeUserKey(UserKey(nil)); err != nil || len(got) != 0 {
		t.Errorf("DecodeUserKey(UserKey(nil)) = %x, %v; want empty", got, err)
	}
}

func TestUserSpan(t *testing.T) {
	tests := []struct {
		name       string
		start, end []byte
		lo, hi     []byte
	}{
		{"nil end", []byte("b"), nil, []byte{0x02, 'b'}, []byte{0x03}},
		{"empty end", []byte("b"), []byte{}, []byte{0x02, 'b'}, []byte{0x03}},
		{"whole space nil", nil, nil, []byte{0x02}, []byte{0x03}},
		{"whole space empty", []byte{}, []byte{}, []byte{0x02}, []byte{0x03}},
		{"bounded", []byte("b"), []byte("d"), []byte{0x02, 'b'}, []byte{0x02, 'd'}},
		{"empty start bounded", nil, []byte("d"), []byte{0x02}, []byte{0x02, 'd'}},
		{"end 0xff", []byte{0x00}, []byte{0xff}, []byte{0x02, 0x00}, []byte{0x02, 0xff}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi := UserSpan(tc.start, tc.end)
			if !bytes.Equal(lo, tc.lo) || !bytes.Equal(hi, tc.hi) {
				t.Fatalf("UserSpan(%x, %x) = [%x, %x), want [%x, %x)", tc.start, tc.end, lo, hi, tc.lo, tc.hi)
			}
			// Engine-span membership matches user-space membership.
			for _, u := range userKeys {
				inUser := bytes.Compare(u, tc.start) >= 0 && (len(tc.end) == 0 || bytes.Compare(u, tc.end) < 0)
				k := UserKey(u)
				inEngine := bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0
				if inUser != inEngine {
					t.Errorf("user key %x: in [%x, %x) = %v, but engine key %x in [%x, %x) = %v",
						u, tc.start, tc.end, inUser, k, lo, hi, inEngine)
				}
			}
		})
	}
}

// engines runs fn against an in-memory and an on-disk Pebble.
func engines(t *testing.T, fn func(t *testing.T, db *pebble.DB)) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (*pebble.DB, error)
	}{
		{"mem", func(*testing.T) (*pebble.DB, error) { return pebble.Open("", &pebble.Options{FS: vfs.NewMem()}) }},
		{"disk", func(t *testing.T) (*pebble.DB, error) { return pebble.Open(t.TempDir(), &pebble.Options{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := tc.open(t)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := db.Close(); err != nil {
					t.Error(err)
				}
			})
			fn(t, db)
		})
	}
}

func scan(t *testing.T, db *pebble.DB, lo, hi []byte) [][]byte {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for valid := it.First(); valid; valid = it.Next() {
		out = append(out, slices.Clone(it.Key()))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSpansInPebble checks that the spans the package defines select exactly
// the intended keys of a real engine with Pebble's default (bytewise)
// comparer.
func TestSpansInPebble(t *testing.T) {
	engines(t, func(t *testing.T, db *pebble.DB) {
		ranges := []uint64{1, 2, 255, 256, math.MaxUint64}
		b := db.NewBatch()
		set := func(k []byte) {
			if err := b.Set(k, []byte("v"), nil); err != nil {
				t.Fatal(err)
			}
		}
		set(StoreIdentKey())
		for _, r := range ranges {
			for _, k := range localKeysOf(r) {
				set(k)
			}
		}
		for _, u := range userKeys {
			set(UserKey(u))
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}

		for _, r := range ranges {
			if diff := cmp.Diff(localKeysOf(r), scan(t, db, RangeLocalPrefix(r), RangeLocalEnd(r))); diff != "" {
				t.Errorf("range %d local span (-want +got):\n%s", r, diff)
			}
			var wantLog [][]byte
			for _, i := range logIndexes {
				wantLog = append(wantLog, LogEntryKey(r, i))
			}
			if diff := cmp.Diff(wantLog, scan(t, db, LogPrefix(r), LogEnd(r))); diff != "" {
				t.Errorf("range %d log span (-want +got):\n%s", r, diff)
			}
		}
		var wantUser [][]byte
		for _, u := range userKeys {
			wantUser = append(wantUser, UserKey(u))
		}
		lo, hi := UserSpan(nil, nil)
		if diff := cmp.Diff(wantUser, scan(t, db, lo, hi)); diff != "" {
			t.Errorf("user span (-want +got):\n%s", diff)
		}
		lo, hi = UserSpan([]byte("a"), []byte("b"))
		want := [][]byte{UserKey([]byte("a")), UserKey([]byte("a\x00")), UserKey([]byte("a\x00\x00")), UserKey([]byte("aa")), UserKey([]byte("ab")), UserKey([]byte("a\xff"))}
		if diff := cmp.Diff(want, scan(t, db, lo, hi)); diff != "" {
			t.Errorf("user span [a, b) (-want +got):\n%s", diff)
		}
		lo, hi = UserSpan([]byte{0xff}, nil)
		want = [][]byte{UserKey([]byte{0xff}), UserKey([]byte{0xff, 0x00}), UserKey([]byte{0xff, 0xff}), UserKey([]byte{0xff, 0xff, 0xff, 0xff})}
		if diff := cmp.Diff(want, scan(t, db, lo, hi)); diff != "" {
			t.Errorf("user span [0xff, inf) (-want +got):\n%s", diff)
		}

		// Clearing one range's local span leaves neighbours, the store
		// identity and user data alone.
		if err := db.DeleteRange(RangeLocalPrefix(255), RangeLocalEnd(255), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteRange(RangeLocalPrefix(math.MaxUint64), RangeLocalEnd(math.MaxUint64), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if got := scan(t, db, RangeLocalPrefix(255), RangeLocalEnd(255)); len(got) != 0 {
			t.Errorf("range 255 not cleared: %x", got)
		}
		if got := scan(t, db, RangeLocalPrefix(math.MaxUint64), RangeLocalEnd(math.MaxUint64)); len(got) != 0 {
			t.Errorf("range max not cleared: %x", got)
		}
		for _, r := range []uint64{1, 2, 256} {
			if diff := cmp.Diff(localKeysOf(r), scan(t, db, RangeLocalPrefix(r), RangeLocalEnd(r))); diff != "" {
				t.Errorf("range %d damaged by clearing another range (-want +got):\n%s", r, diff)
			}
		}
		if got := scan(t, db, StoreIdentKey(), append(StoreIdentKey(), 0)); len(got) != 1 {
			t.Errorf("store ident key lost: %x", got)
		}
		lo, hi = UserSpan(nil, nil)
		if diff := cmp.Diff(wantUser, scan(t, db, lo, hi)); diff != "" {
			t.Errorf("user span damaged (-want +got):\n%s", diff)
		}
	})
}
