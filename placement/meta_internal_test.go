package placement

// Unit tests of the replicated metadata state machine (meta): bootstrap,
// the ID allocator, descriptor epochs and overlaps, persistence and
// snapshot/restore. No Raft, no network: commands are applied into Pebble
// batches over an in-memory filesystem, as the Raft loop does.
//
// The file also holds a few read-only hooks (…ForTest) that the external
// tests (package placement_test) use to look at a running member's applied
// index, metadata and heartbeat counters, which no API exposes.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// AppliedIndexForTest is the member's persisted placement Raft applied
// index (read from its engine; safe while the member runs).
func AppliedIndexForTest(s *Server) uint64 {
	v, c, err := s.db.Get(keys.AppliedStateKey(groupID))
	if err != nil {
		return 0
	}
	defer c.Close()
	var st rangekvpb.AppliedState
	if proto.Unmarshal(v, &st) != nil {
		return 0
	}
	return st.Index
}

// HeartbeatsForTest returns the member's store and range heartbeat
// counters (rangekv_placement_{store,range}_heartbeats_total).
func HeartbeatsForTest(s *Server) (stores, ranges float64) {
	mfs, err := s.reg.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 0 {
			continue
		}
		switch mf.GetName() {
		case "rangekv_placement_store_heartbeats_total":
			stores = mf.GetMetric()[0].GetCounter().GetValue()
		case "rangekv_placement_range_heartbeats_total":
			ranges = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return stores, ranges
}

// MetaForTest returns the member's replicated metadata: cluster ID, store
// IDs (sorted) and range descriptors (by start key).
func MetaForTest(s *Server) (clusterID uint64, stores []uint64, ranges []*rangekvpb.RangeDescriptor) {
	for _, st := range s.group.meta.allStores() {
		stores = append(stores, st.StoreId)
	}
	return s.group.meta.clusterRecord().ClusterId, stores, s.group.meta.allRanges()
}

func memDB(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("meta", &pebble.Options{FS: vfs.NewMem(), Logger: pebbleLogger{L: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// applyCmd applies one command to m and commits it to db, as the Raft loop
// does (one batch per apply).
func applyCmd(t *testing.T, db *pebble.DB, m *meta, cmd *rangekvpb.PlacementCommand) (any, error) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	v, err := m.apply(b, cmd)
	if cerr := b.Commit(pebble.Sync); cerr != nil {
		t.Fatal(cerr)
	}
	return v, err
}

func bootstrapCmd(clusterID, storeID uint64) *rangekvpb.PlacementCommand {
	return &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_Bootstrap{Bootstrap: &rangekvpb.BootstrapCmd{
		ClusterId: clusterID,
		Store:     &rangekvpb.StoreDescriptor{StoreId: storeID, Address: fmt.Sprintf("127.0.0.1:%d", 7500+storeID)},
		Range: &rangekvpb.RangeDescriptor{RangeId: 1, Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1},
			Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: storeID}}, NextReplicaId: 2},
	}}}
}

func allocCmd(n uint64) *rangekvpb.PlacementCommand {
	return &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_AllocIds{AllocIds: &rangekvpb.AllocIDsCmd{Count: n}}}
}

func putRangesCmd(ds ...*rangekvpb.RangeDescriptor) *rangekvpb.PlacementCommand {
	return &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_PutRanges{PutRanges: &rangekvpb.PutRangesCmd{Ranges: ds}}}
}

func putStoreCmd(id uint64, addr string) *rangekvpb.PlacementCommand {
	return &rangekvpb.PlacementCommand{Cmd: &rangekvpb.PlacementCommand_PutStore{PutStore: &rangekvpb.PutStoreCmd{
		Store: &rangekvpb.StoreDescriptor{StoreId: id, Address: addr}}}}
}

// desc builds a descriptor of [start, end) ("" end: +inf) at version.confVer
// with one voter per store.
func desc(id uint64, start, end string, version, confVer uint64, stores ...uint64) *rangekvpb.RangeDescriptor {
	d := &rangekvpb.RangeDescriptor{RangeId: id, Epoch: &rangekvpb.RangeEpoch{Version: version, ConfVer: confVer}}
	if start != "" {
		d.StartKey = []byte(start)
	}
	if end != "" {
		d.EndKey = []byte(end)
	}
	for i, s := range stores {
		d.Replicas = append(d.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: uint64(i + 1), StoreId: s})
	}
	d.NextReplicaId = uint64(len(stores) + 1)
	return d
}

// layout renders the ranges by start key as "id[start,end)v.c ...".
func layout(ds []*rangekvpb.RangeDescriptor) string {
	var b bytes.Buffer
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(' ')
		}
		end := string(d.EndKey)
		if end == "" {
			end = "+inf"
		}
		fmt.Fprintf(&b, "%d[%s,%s)v%d.%d", d.RangeId, d.StartKey, end, d.Epoch.GetVersion(), d.Epoch.GetConfVer())
	}
	return b.String()
}

// checkPersisted reloads meta from db and compares it with m.
func checkPersisted(t *testing.T, db *pebble.DB, m *meta) {
	t.Helper()
	re, err := loadMeta(db)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(re.clusterRecord(), m.clusterRecord()) {
		t.Errorf("persisted cluster record %v, in memory %v", re.clusterRecord(), m.clusterRecord())
	}
	if got, want := layout(re.allRanges()), layout(m.allRanges()); got != want {
		t.Errorf("persisted ranges %s, in memory %s", got, want)
	}
	for i, d := range re.allRanges() {
		if !proto.Equal(d, m.allRanges()[i]) {
			t.Errorf("persisted descriptor %v differs from the one in memory %v", d, m.allRanges()[i])
		}
	}
	rs, ms := re.allStores(), m.allStores()
	if len(rs) != len(ms) {
		t.Fatalf("persisted %d stores, in memory %d", len(rs), len(ms))
	}
	for i := range rs {
		if !proto.Equal(rs[i], ms[i]) {
			t.Errorf("persisted store %v, in memory %v", rs[i], ms[i])
		}
	}
}

// checkDisjoint checks the documented invariant of byStart: sorted by
// start key, disjoint.
func checkDisjoint(t *testing.T, m *meta) {
	t.Helper()
	ds := m.allRanges()
	for i := 1; i < len(ds); i++ {
		prev := ds[i-1]
		if len(prev.EndKey) == 0 || bytes.Compare(prev.EndKey, ds[i].StartKey) > 0 {
			t.Errorf("ranges overlap: %s", layout(ds))
			return
		}
	}
}

func TestMetaBootstrapTwice(t *testing.T) {
	db := memDB(t)
	m := newMeta()
	if _, err := applyCmd(t, db, m, bootstrapCmd(0xc1, 2)); err != nil {
		t.Fatalf("first bootstrap: %v", err)
	}
	rec := m.clusterRecord()
	if !rec.Bootstrapped || rec.ClusterId != 0xc1 || rec.IdEnd <= 2 {
		t.Fatalf("cluster record after bootstrap: %v", rec)
	}
	// A second bootstrap (a lost race, another cluster ID) fails and
	// changes nothing, in memory or on disk.
	b := db.NewBatch()
	_, err := m.apply(b, bootstrapCmd(0xc2, 7))
	if !errors.Is(err, errAlreadyBootstrapped) {
		t.Fatalf("second bootstrap: err %v, want errAlreadyBootstrapped", err)
	}
	if !b.Empty() {
		t.Errorf("the failed bootstrap staged %d writes", b.Count())
	}
	b.Close()
	if got := m.clusterRecord(); !proto.Equal(got, rec) {
		t.Errorf("cluster record changed by the failed bootstrap: %v, was %v", got, rec)
	}
	if m.store(7) != nil {
		t.Errorf("the failed bootstrap registered store 7")
	}
	if d := m.rangeByID(1); d == nil || d.Replicas[0].StoreId != 2 {
		t.Errorf("range 1 after the failed bootstrap: %v", d)
	}
	checkPersisted(t, db, m)
}

func TestMetaAllocIDsDisjoint(t *testing.T) {
	db := memDB(t)
	m := newMeta()
	type span struct{ first, end uint64 }
	var spans []span
	alloc := func(n uint64) {
		t.Helper()
		v, err := applyCmd(t, db, m, allocCmd(n))
		if err != nil {
			t.Fatalf("alloc %d: %v", n, err)
		}
		first := v.(uint64)
		spans = append(spans, span{first, first + n})
	}
	alloc(1) // the first store's ID, before bootstrap (as join does)
	if spans[0].first != firstAllocID || spans[0].first <= 1 {
		t.Fatalf("first ID %d: want %d (range 1 is taken by bootstrap)", spans[0].first, firstAllocID)
	}
	if _, err := applyCmd(t, db, m, bootstrapCmd(0xc1, spans[0].first)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint64{1000, 1, 7, 1 << 20, 3} {
		alloc(n)
	}
	// A restarted member continues from the persisted allocator.
	re, err := loadMeta(db)
	if err != nil {
		t.Fatal(err)
	}
	m = re
	alloc(5)
	for i, s := range spans {
		if s.first <= 1 {
			t.Errorf("span %d [%d,%d) includes range 1's ID", i, s.first, s.end)
		}
		if i > 0 && s.first < spans[i-1].end {
			t.Errorf("span %d [%d,%d) overlaps span %d [%d,%d)", i, s.first, s.end, i-1, spans[i-1].first, spans[i-1].end)
		}
	}
	if got := m.clusterRecord().IdEnd; got != spans[len(spans)-1].end {
		t.Errorf("id_end %d, want %d", got, spans[len(spans)-1].end)
	}
	// Bootstrap with a store ID past the allocator moves the allocator past
	// it.
	db2 := memDB(t)
	m2 := newMeta()
	if _, err := applyCmd(t, db2, m2, bootstrapCmd(0xc3, 50)); err != nil {
		t.Fatal(err)
	}
	v, _ := applyCmd(t, db2, m2, allocCmd(1))
	if v.(uint64) <= 50 {
		t.Errorf("allocated %d after a bootstrap with store 50", v)
	}
}

func TestMetaPutRangesEpochs(t *testing.T) {
	db := memDB(t)
	m := newMeta()
	if _, err := applyCmd(t, db, m, bootstrapCmd(0xc1, 2)); err != nil {
		t.Fatal(err)
	}
	put := func(want int, ds ...*rangekvpb.RangeDescriptor) {
		t.Helper()
		v, err := applyCmd(t, db, m, putRangesCmd(ds...))
		if err != nil {
			t.Fatalf("put ranges: %v", err)
		}
		if v.(int) != want {
			t.Errorf("put %s: %d changed, want %d", layout(ds), v, want)
		}
	}
	expect := func(want string) {
		t.Helper()
		if got := layout(m.allRanges()); got != want {
			t.Errorf("ranges: %s\nwant:   %s", got, want)
		}
		checkDisjoint(t, m)
		checkPersisted(t, db, m)
	}
	expect("1[,+inf)v1.1")

	// Membership changes: a newer conf_ver replaces; the same or an older
	// epoch is ignored.
	put(1, desc(1, "", "", 1, 2, 2, 3))
	put(1, desc(1, "", "", 1, 3, 2, 3, 4))
	put(0, desc(1, "", "", 1, 2, 2, 3)) // older conf_ver
	put(0, desc(1, "", "", 1, 3, 9))    // same epoch, other content: not a change
	put(0, desc(1, "", "", 0, 9, 2))    // older version, higher conf_ver
	if got := len(m.rangeByID(1).Replicas); got != 3 {
		t.Errorf("range 1 has %d replicas, want 3 (conf_ver 3)", got)
	}
	expect("1[,+inf)v1.3")

	// A split reported whole.
	put(2, desc(1, "", "m", 2, 3, 2, 3, 4), desc(5, "m", "", 2, 3, 2, 3, 4))
	expect("1[,m)v2.3 5[m,+inf)v2.3")
	// The pre-split descriptor arriving late is ignored.
	put(0, desc(1, "", "", 1, 3, 2, 3, 4))
	expect("1[,m)v2.3 5[m,+inf)v2.3")

	// The right half of a split reported before the left: the older
	// overlapping range 5 is evicted (from memory and disk), then the left
	// half arrives.
	put(1, desc(9, "t", "", 3, 3, 2, 3, 4))
	expect("1[,m)v2.3 9[t,+inf)v3.3")
	if m.rangeByID(5) != nil {
		t.Errorf("range 5 still known after a newer overlapping descriptor")
	}
	put(1, desc(5, "m", "t", 3, 3, 2, 3, 4))
	expect("1[,m)v2.3 5[m,t)v3.3 9[t,+inf)v3.3")

	// A newer descriptor spanning several older ones evicts them all, and
	// not the ones it does not overlap.
	put(1, desc(12, "c", "x", 4, 1, 2))
	expect("12[c,x)v4.1")
	// ... and lookups follow the layout.
	for key, want := range map[string]uint64{"c": 12, "d": 12, "w": 12} {
		if d, _ := m.lookup([]byte(key)); d == nil || d.RangeId != want {
			t.Errorf("lookup %q: %v, want range %d", key, d, want)
		}
	}
	for _, key := range []string{"a", "x", "z"} {
		if d, _ := m.lookup([]byte(key)); d != nil {
			t.Errorf("lookup %q: %v, want none", key, layout([]*rangekvpb.RangeDescriptor{d}))
		}
	}
}

// TestMetaPutRangesStaleOverlap: a descriptor of a range placement does not
// know yet, older than a known descriptor it overlaps, must not be stored:
// byStart is documented "sorted by start key, disjoint" and lookups and
// scans rely on it. (PD's region heartbeat rejects such a region as stale.)
// The interleaving: range 5 [m,+inf) v2 is split again into 5 [m,t) v3 and
// 9 [t,+inf) v3; placement learns range 9 first, then a delayed heartbeat
// batch still carries 5 [m,+inf) v2 while placement never stored range 5.
func TestMetaPutRangesStaleOverlap(t *testing.T) {
	db := memDB(t)
	m := newMeta()
	if _, err := applyCmd(t, db, m, bootstrapCmd(0xc1, 2)); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []*rangekvpb.PlacementCommand{
		putRangesCmd(desc(1, "", "m", 2, 1, 2)),
		putRangesCmd(desc(9, "t", "", 3, 1, 2)),
		putRangesCmd(desc(5, "m", "", 2, 1, 2)), // stale: overlaps 9, which is newer
	} {
		if _, err := applyCmd(t, db, m, cmd); err != nil {
			t.Fatal(err)
		}
	}
	checkDisjoint(t, m)
	if got := layout(m.scanRanges([]byte("m"), nil, 0)); got != "9[t,+inf)v3.1" {
		t.Errorf("scan [m, +inf): %s, want 9[t,+inf)v3.1 (the stale range 5 ignored)", got)
	}
}

func TestMetaSnapshotRestoreRoundTrip(t *testing.T) {
	db := memDB(t)
	m := newMeta()
	for _, cmd := range []*rangekvpb.PlacementCommand{
		allocCmd(1),
		bootstrapCmd(0xfeed, 2),
		allocCmd(1000),
		putStoreCmd(3, "127.0.0.1:7503"),
		putStoreCmd(4, "127.0.0.1:7504"),
		putStoreCmd(3, "127.0.0.1:7603"), // address change
		putRangesCmd(desc(1, "", "g", 2, 4, 2, 3, 4), desc(7, "g", "p", 3, 4, 2, 3, 4), desc(8, "p", "", 3, 4, 2, 3, 4)),
	} {
		if _, err := applyCmd(t, db, m, cmd); err != nil {
			t.Fatal(err)
		}
	}
	snap := m.snapshot()
	data, err := proto.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}

	// The receiver has state of its own that the snapshot must replace:
	// another cluster record, a store and ranges the sender does not have.
	db2 := memDB(t)
	m2 := newMeta()
	for _, cmd := range []*rangekvpb.PlacementCommand{
		bootstrapCmd(0xbad, 99),
		putStoreCmd(98, "127.0.0.1:9998"),
		putRangesCmd(desc(77, "a", "b", 5, 1, 99)),
	} {
		if _, err := applyCmd(t, db2, m2, cmd); err != nil {
			t.Fatal(err)
		}
	}
	var decoded rangekvpb.PlacementSnapshot
	if err := proto.Unmarshal(data, &decoded); err != nil {
		t.Fatal(err)
	}
	b := db2.NewBatch()
	if err := m2.restore(b, &decoded); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()

	same := func(what string, a, b *meta) {
		t.Helper()
		if !proto.Equal(a.clusterRecord(), b.clusterRecord()) {
			t.Errorf("%s: cluster record %v, want %v", what, b.clusterRecord(), a.clusterRecord())
		}
		as, bs := a.allStores(), b.allStores()
		if len(as) != len(bs) {
			t.Fatalf("%s: %d stores, want %d", what, len(bs), len(as))
		}
		for i := range as {
			if !proto.Equal(as[i], bs[i]) {
				t.Errorf("%s: store %v, want %v", what, bs[i], as[i])
			}
		}
		ar, br := a.allRanges(), b.allRanges()
		if layout(ar) != layout(br) {
			t.Fatalf("%s: ranges %s, want %s", what, layout(br), layout(ar))
		}
		for i := range ar {
			if !proto.Equal(ar[i], br[i]) {
				t.Errorf("%s: descriptor %v, want %v", what, br[i], ar[i])
			}
		}
	}
	same("restored", m, m2)
	checkPersisted(t, db2, m2)
	re, err := loadMeta(db2)
	if err != nil {
		t.Fatal(err)
	}
	same("restored, reloaded", m, re)
	if m2.store(98) != nil || m2.rangeByID(77) != nil || re.store(98) != nil || re.rangeByID(77) != nil {
		t.Errorf("the receiver's own store 98 / range 77 survived the restore")
	}
	if d, _ := m2.lookup([]byte("h")); d == nil || d.RangeId != 7 {
		t.Errorf("lookup h after restore: %v", d)
	}
	// The allocator continues past the sender's reservations.
	v, err := applyCmd(t, db2, m2, allocCmd(1))
	if err != nil || v.(uint64) < m.clusterRecord().IdEnd {
		t.Errorf("alloc after restore: %v %v, want at least %d", v, err, m.clusterRecord().IdEnd)
	}
	// A second bootstrap after restore fails too.
	if _, err := applyCmd(t, db2, m2, bootstrapCmd(0xbad, 5)); !errors.Is(err, errAlreadyBootstrapped) {
		t.Errorf("bootstrap after restore: %v", err)
	}
	ids := []uint64{}
	for _, s := range m2.allStores() {
		ids = append(ids, s.StoreId)
	}
	if !sort.SliceIsSorted(ids, func(i, j int) bool { return ids[i] < ids[j] }) || fmt.Sprint(ids) != "[2 3 4]" {
		t.Errorf("stores after restore: %v, want [2 3 4]", ids)
	}
}
