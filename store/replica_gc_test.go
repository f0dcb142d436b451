package store_test

// Replica GC against placement (issue 15 item 6): a replica whose store
// was down while its range moved entirely to other stores is removed once
// the store is back, although none of the stores in its own stale
// descriptor still knows the range; and a replica that blocks an incoming
// snapshot is checked at once, not at the next periodic GC pass.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

// gcCluster starts placement without automatic scheduling and three
// stores, gives range 1 a voter on each of them, then adds stores up to
// n; configure (may be nil) adjusts every store. It returns the cluster,
// an admin client, a router client and the stores' IDs by index.
func gcCluster(t *testing.T, n int, configure func(i int, c *store.Config)) (*testcluster.PDCluster, *router.Admin, *router.Client, []uint64) {
	t.Helper()
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{InMemory: true, Configure: configure,
		ConfigurePD: func(_ int, cfg *placement.Config) { cfg.ScheduleInterval = time.Hour }})
	cl := newRouter(t, c, nil)
	adm, err := cl.Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx := mrCtx(t, 3*time.Minute)
	c.WaitFor("range 1 to have a voter on each of the first three stores", 60*time.Second, func() bool {
		ri, err := adm.RangeByID(ctx, 1)
		if err == nil && len(ri.Descriptor_.Replicas) == 3 && ri.LeaderStoreId != 0 {
			voters := 0
			for _, r := range ri.Descriptor_.Replicas {
				if r.Role == rangekvpb.ReplicaRole_VOTER {
					voters++
				}
			}
			if voters == 3 {
				return true
			}
		}
		if st, err := adm.ClusterStatus(ctx); err == nil && len(st.Operators) == 0 {
			adm.Rebalance(ctx, false) //nolint:errcheck // retried by WaitFor
		}
		return false
	})
	for len(c.Stores) < n {
		c.AddStore()
	}
	ids := make([]uint64, n)
	for i, s := range c.Stores {
		ids[i] = s.StoreID()
	}
	c.WaitFor(fmt.Sprintf("placement to see %d stores up", n), 30*time.Second, func() bool {
		infos, err := adm.Stores(ctx)
		up := 0
		for _, s := range infos {
			if s.State == rangekvpb.StoreState_STORE_UP {
				up++
			}
		}
		return err == nil && up == n
	})
	return c, adm, cl, ids
}

// gcMove moves rangeID's replica from one store to another through a
// placement operator, retrying until one finishes.
func gcMove(t *testing.T, adm *router.Admin, rangeID, from, to uint64) {
	t.Helper()
	ctx := mrCtx(t, 90*time.Second)
	var last error
	for ctx.Err() == nil {
		op, err := adm.MoveReplica(ctx, rangeID, from, to)
		if err == nil {
			if waitOperator(ctx, adm, op) {
				return
			}
			err = errors.New("operator did not finish")
		}
		last = err
		time.Sleep(50 * time.Millisecond) // between attempts, not a condition
	}
	t.Fatalf("move range %d from store %d to store %d: %v", rangeID, from, to, last)
}

// gcHasRange reports whether the running store s has a replica of rangeID
// (initialized or not) and its replica ID.
func gcHasRange(s *store.Store, rangeID uint64) (uint64, bool) {
	for _, r := range s.Status().Replicas {
		if r.GetDescriptor_().GetRangeId() == rangeID {
			return r.GetReplicaId(), true
		}
	}
	return 0, false
}

// gcStaleGetError reads key at STALE consistency from exactly the store
// behind kv and returns the range error it answers (nil if it served it).
func gcStaleGetError(t *testing.T, kv rangekvpb.KVClient, key string) *rangekvpb.RangeError {
	t.Helper()
	resp, err := kv.Get(opCtx(t), &rangekvpb.GetRequest{
		Header: &rangekvpb.RequestHeader{Consistency: rangekvpb.ReadConsistency_STALE},
		Key:    []byte(key),
	})
	if err != nil {
		t.Fatalf("stale get %q: %v", key, err)
	}
	return resp.GetHeader().GetError()
}

// gcWaitStaleValues waits until the store behind kv serves every key of
// want at STALE consistency.
func gcWaitStaleValues(t *testing.T, kv rangekvpb.KVClient, who string, want map[string]string) {
	t.Helper()
	mrWaitFor(t, who+" to serve every key", 60*time.Second, func() (bool, string) {
		ctx := opCtx(t)
		for _, k := range sortedKeys(want) {
			v, found, err := staleGet(ctx, kv, k)
			if err != nil || !found || v != want[k] {
				return false, fmt.Sprintf("%q = (%q, %v, %v)", k, v, found, err)
			}
		}
		return true, ""
	})
}

type gcQuietPebble struct{}

func (gcQuietPebble) Infof(string, ...any)  {}
func (gcQuietPebble) Errorf(string, ...any) {}
func (gcQuietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// TestReplicaGCAsksPlacementWhenNoStoreOfItsDescriptorKnowsTheRange: range
// 1 has replicas on stores {1,2,3}; store 3 stops; the range moves to
// {4,5,6}, so stores 1 and 2 drop it too. When store 3 comes back, its
// replica's own descriptor names only stores that know nothing of the
// range: before the fix it stayed forever (serving STALE reads of old
// data). Now placement proves the removal: the replica is destroyed with
// its data and a tombstone, a STALE read gets RangeNotFound, and store 3
// can be added to the range again and catches up.
func TestReplicaGCAsksPlacementWhenNoStoreOfItsDescriptorKnowsTheRange(t *testing.T) {
	c, adm, cl, ids := gcCluster(t, 6, nil)
	const stale = 2 // index of store 3
	want := map[string]string{}
	for i := range 20 {
		k := fmt.Sprintf("gc%02d", i)
		want[k] = fmt.Sprintf("v%d", i)
		mustPut(t, cl, k, want[k])
	}
	kv := kvClient(t, c.Addrs[stale])
	gcWaitStaleValues(t, kv, "store 3", want)
	oldID, ok := gcHasRange(c.Stores[stale], 1)
	if !ok {
		t.Fatal("store 3 has no replica of range 1")
	}

	c.StopStore(stale)
	gcMove(t, adm, 1, ids[2], ids[3])
	gcMove(t, adm, 1, ids[0], ids[4])
	gcMove(t, adm, 1, ids[1], ids[5])
	c.WaitFor("stores 1 and 2 to drop range 1", 30*time.Second, func() bool {
		_, on1 := gcHasRange(c.Stores[0], 1)
		_, on2 := gcHasRange(c.Stores[1], 1)
		return !on1 && !on2
	})
	ri, err := adm.RangeByID(mrCtx(t, 10*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	final := ri.Descriptor_
	t.Logf("range 1 now %v; store 3 held replica %d", final, oldID)

	c.RestartStore(stale)
	mrWaitFor(t, "store 3's stale replica of range 1 to be GC'd", 30*time.Second, func() (bool, string) {
		id, on := gcHasRange(c.Stores[stale], 1)
		return !on, fmt.Sprintf("store 3 still holds replica %d of range 1", id)
	})
	if e := gcStaleGetError(t, kv, "gc00"); e.GetRangeNotFound() == nil {
		t.Fatalf("STALE read on store 3 after GC: range error %v, want RangeNotFound", e)
	}

	// On disk: no user data, no range-local state but the tombstone, whose
	// next_replica_id is the one placement's descriptor gave.
	c.StopStore(stale)
	cfg := c.StoreConfig(stale)
	db, err := pebble.Open(cfg.DataDir, &pebble.Options{FS: cfg.FS, Logger: gcQuietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := keys.UserSpan(nil, nil)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	userKeys := 0
	for valid := it.First(); valid; valid = it.Next() {
		userKeys++
	}
	it.Close()
	it, err = db.NewIter(&pebble.IterOptions{LowerBound: keys.RangeLocalPrefix(1), UpperBound: keys.RangeLocalEnd(1)})
	if err != nil {
		t.Fatal(err)
	}
	var local [][]byte
	for valid := it.First(); valid; valid = it.Next() {
		local = append(local, append([]byte(nil), it.Key()...))
	}
	it.Close()
	var ts rangekvpb.RangeTombstone
	v, closer, err := db.Get(keys.TombstoneKey(1))
	if err == nil {
		err = proto.Unmarshal(v, &ts)
		closer.Close()
	}
	if cerr := db.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatalf("tombstone of range 1 on store 3: %v", err)
	}
	if userKeys != 0 {
		t.Errorf("store 3 still holds %d user keys", userKeys)
	}
	if len(local) != 1 {
		t.Errorf("store 3 holds %d range-local keys of range 1, want only the tombstone: %q", len(local), local)
	}
	if ts.NextReplicaId != final.NextReplicaId || ts.NextReplicaId <= oldID {
		t.Errorf("tombstone next_replica_id = %d, want placement's %d (> old replica %d)", ts.NextReplicaId, final.NextReplicaId, oldID)
	}

	c.RestartStore(stale)
	if id, on := gcHasRange(c.Stores[stale], 1); on {
		t.Fatalf("store 3 loaded replica %d of range 1 again after a restart", id)
	}
	// Store 3 can be added to the range again (a new replica ID) and
	// catches up, with a write made after its return.
	gcMove(t, adm, 1, ids[5], ids[2])
	want["gc-after"] = "back"
	mustPut(t, cl, "gc-after", "back")
	gcWaitStaleValues(t, kv, "store 3 after it was added again", want)
	if id, _ := gcHasRange(c.Stores[stale], 1); id < final.NextReplicaId {
		t.Fatalf("store 3's new replica of range 1 has ID %d, want at least %d", id, final.NextReplicaId)
	}
}

// TestReplicaGCQueuedWhenItBlocksASnapshot: with periodic replica GC
// effectively off (an hour apart), store 3's stale replica of range 1 —
// removed while store 3 was down, before range 1 split — blocks the
// snapshot of the right half when store 3 is added to it. The rejection
// queues the blocking replica for a placement-checked GC, which removes
// it, and the next snapshot installs the right half (MULTIRAFT.md §5: "On
// overlap reject, and queue the overlapping replica for a
// placement-checked GC").
func TestReplicaGCQueuedWhenItBlocksASnapshot(t *testing.T) {
	c, adm, cl, ids := gcCluster(t, 4, func(_ int, cfg *store.Config) { cfg.ReplicaGCInterval = time.Hour })
	const stale = 2 // index of store 3
	left, right := map[string]string{}, map[string]string{}
	for i := range 10 {
		left[fmt.Sprintf("a%02d", i)] = fmt.Sprintf("l%d", i)
		right[fmt.Sprintf("n%02d", i)] = fmt.Sprintf("r%d", i)
	}
	for _, m := range []map[string]string{left, right} {
		for k, v := range m {
			mustPut(t, cl, k, v)
		}
	}
	kv := kvClient(t, c.Addrs[stale])
	gcWaitStaleValues(t, kv, "store 3", right)

	c.StopStore(stale)
	gcMove(t, adm, 1, ids[2], ids[3]) // range 1 on stores {1,2,4}
	ctx := mrCtx(t, 60*time.Second)
	var rhs *rangekvpb.RangeDescriptor
	mrWaitFor(t, "split at m", 30*time.Second, func() (bool, string) {
		_, r, err := adm.Split(ctx, []byte("m"))
		rhs = r
		return err == nil, fmt.Sprint(err)
	})
	// New values on the right, which store 3's stale replica lacks.
	for k := range right {
		right[k] += "-new"
		mustPut(t, cl, k, right[k])
	}
	c.RestartStore(stale)
	// Store 3's replica of range 1 still spans every key (serving the old
	// values); it has no leader, but no periodic GC pass comes within the
	// test.
	if _, on := gcHasRange(c.Stores[stale], 1); !on {
		t.Fatal("store 3 did not load its stale replica of range 1")
	}
	// Add store 3 to the right half (and later remove store 4): the
	// learner on store 3 needs a snapshot, which the stale replica blocks
	// until it is GC'd.
	var op *rangekvpb.OperatorInfo
	mrWaitFor(t, "a move of the right half onto store 3 to start", 30*time.Second, func() (bool, string) {
		var err error
		op, err = adm.MoveReplica(ctx, rhs.RangeId, ids[3], ids[2])
		return err == nil, fmt.Sprint(err)
	})
	gcWaitStaleValues(t, kv, "store 3's replica of the right half", right)
	if !waitOperator(ctx, adm, op) {
		t.Fatalf("operator %d moving the right half onto store 3 did not finish", op.Id)
	}
	if id, on := gcHasRange(c.Stores[stale], 1); on {
		t.Fatalf("store 3 still holds stale replica %d of range 1", id)
	}
	if _, on := gcHasRange(c.Stores[stale], rhs.RangeId); !on {
		t.Fatalf("store 3 holds no replica of the right half (range %d)", rhs.RangeId)
	}
	if e := gcStaleGetError(t, kv, "a00"); e.GetRangeNotFound() == nil {
		t.Fatalf("STALE read of the left half on store 3: range error %v, want RangeNotFound", e)
	}
}
