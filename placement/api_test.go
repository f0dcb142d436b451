package placement_test

// The Placement API: operator validation and lifecycle, dry-run
// rebalancing, cluster identity checks, and leader balancing driven by the
// scheduler over ranges split through the API.

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// wantCode checks that err is a gRPC status with code and a message
// containing field.
func wantCode(t *testing.T, what string, err error, code codes.Code, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil || st.Code() != code || !strings.Contains(st.Message(), field) {
		t.Errorf("%s: got %v, want %s naming %q", what, err, code, field)
	}
}

// rangeOnPD is placement's descriptor of rangeID and the leader it knows.
func rangeOnPD(ctx context.Context, pd rangekvpb.PlacementClient, rangeID uint64) (*rangekvpb.RangeDescriptor, uint64) {
	r, err := pd.GetRange(ctx, &rangekvpb.GetRangeRequest{RangeId: rangeID})
	if err != nil || r.Error != nil || len(r.Ranges) != 1 {
		return nil, 0
	}
	return r.Ranges[0].Descriptor_, r.Ranges[0].LeaderStoreId
}

// waitOperator waits until the operator ends and returns it.
func waitOperator(t *testing.T, c *testcluster.PDCluster, pd rangekvpb.PlacementClient, id uint64) *rangekvpb.OperatorInfo {
	t.Helper()
	var op *rangekvpb.OperatorInfo
	c.WaitFor(fmt.Sprintf("operator %d to end", id), 30*time.Second, func() bool {
		r, err := pd.GetOperator(context.Background(), &rangekvpb.GetOperatorRequest{OperatorId: id})
		if err != nil {
			t.Fatalf("get operator %d: %v", id, err)
		}
		op = r.Operator
		return op.State != "running"
	})
	return op
}

// TestAPIOperators: the scheduler runs only through Rebalance here (its
// interval is an hour), so what placement proposes and starts is what the
// test asks for.
func TestAPIOperators(t *testing.T) {
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{ConfigurePD: func(_ int, cfg *placement.Config) {
		cfg.ScheduleInterval = time.Hour
	}})
	pd := pdClient(t, c.PDAddrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c.WaitFor("range 1's leader known to placement", 10*time.Second, func() bool {
		_, l := rangeOnPD(ctx, pd, 1)
		return l != 0
	})

	// Dry run on an under-replicated range: proposals, nothing started.
	dry, err := pd.Rebalance(ctx, &rangekvpb.RebalanceRequest{DryRun: true})
	if err != nil || dry.Error != nil || len(dry.Operators) == 0 {
		t.Fatalf("dry-run rebalance with range 1 on one store: %v %v, want a repair", dry, err)
	}
	for _, op := range dry.Operators {
		if op.State != "proposed" || op.RangeId != 1 || !strings.HasPrefix(op.Kind, "repair") || len(op.Steps) == 0 {
			t.Errorf("dry-run operator %v: want a proposed repair of range 1", op)
		}
	}
	if st, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{}); err != nil || len(st.Operators) != 0 {
		t.Fatalf("a dry run started operators: %v %v", st.GetOperators(), err)
	}
	if d, _ := rangeOnPD(ctx, pd, 1); len(d.GetReplicas()) != 1 {
		t.Fatalf("range 1 changed after a dry run: %v", d)
	}

	// Rebalance for real until range 1 has three voters.
	c.WaitFor("range 1 repaired through Rebalance", 30*time.Second, func() bool {
		if _, err := pd.Rebalance(ctx, &rangekvpb.RebalanceRequest{}); err != nil {
			t.Fatal(err)
		}
		return fullyReplicated(c, 1, 3)
	})
	c.WaitFor("placement to see range 1 repaired", 10*time.Second, func() bool {
		st, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
		d, l := rangeOnPD(ctx, pd, 1)
		return err == nil && len(st.Operators) == 0 && len(st.UnderReplicated) == 0 && len(d.GetReplicas()) == 3 && l != 0
	})
	// A fourth, empty store: 1,1,1,0 replicas and one leader is balanced.
	c.AddStore()
	s4 := c.Stores[3].StoreID()
	c.WaitFor("store 4 heartbeating", 10*time.Second, func() bool {
		r, err := pd.GetStore(ctx, &rangekvpb.GetStoreRequest{StoreId: s4})
		return err == nil && r.Store.Stats.GetCapacity() > 0
	})
	if dry, err := pd.Rebalance(ctx, &rangekvpb.RebalanceRequest{DryRun: true}); err != nil || dry.Error != nil || len(dry.Operators) != 0 {
		t.Fatalf("dry-run rebalance on a balanced cluster: %v %v, want no operator", dry.GetOperators(), err)
	}

	d, leader := rangeOnPD(ctx, pd, 1)
	var follower, holder uint64
	for _, r := range d.Replicas {
		if r.StoreId != leader {
			follower = r.StoreId
		}
		holder = r.StoreId
	}
	other := d.Replicas[0].StoreId
	if other == holder {
		other = d.Replicas[1].StoreId
	}

	// Invalid operators name the field.
	_, err = pd.MoveReplica(ctx, &rangekvpb.MoveReplicaRequest{RangeId: 1, FromStoreId: holder, ToStoreId: other})
	wantCode(t, "move to a store that already holds a replica", err, codes.InvalidArgument, "to_store_id")
	_, err = pd.MoveReplica(ctx, &rangekvpb.MoveReplicaRequest{RangeId: 1, FromStoreId: s4, ToStoreId: holder})
	wantCode(t, "move from a store without a replica", err, codes.InvalidArgument, "from_store_id")
	_, err = pd.MoveReplica(ctx, &rangekvpb.MoveReplicaRequest{RangeId: 1, FromStoreId: holder, ToStoreId: 424242})
	wantCode(t, "move to an unknown store", err, codes.InvalidArgument, "to_store_id")
	_, err = pd.MoveReplica(ctx, &rangekvpb.MoveReplicaRequest{RangeId: 424242, FromStoreId: holder, ToStoreId: s4})
	wantCode(t, "move of an unknown range", err, codes.InvalidArgument, "range_id")
	_, err = pd.TransferLeader(ctx, &rangekvpb.TransferLeaderOpRequest{RangeId: 1, ToStoreId: s4})
	wantCode(t, "transfer to a store without a voter", err, codes.InvalidArgument, "to_store_id")
	_, err = pd.TransferLeader(ctx, &rangekvpb.TransferLeaderOpRequest{RangeId: 1, ToStoreId: 424242})
	wantCode(t, "transfer to an unknown store", err, codes.InvalidArgument, "to_store_id")
	_, err = pd.TransferLeader(ctx, &rangekvpb.TransferLeaderOpRequest{RangeId: 424242, ToStoreId: holder})
	wantCode(t, "transfer of an unknown range", err, codes.InvalidArgument, "range_id")
	_, err = pd.TransferLeader(ctx, &rangekvpb.TransferLeaderOpRequest{RangeId: 1, ToStoreId: leader})
	wantCode(t, "transfer to the store that leads", err, codes.InvalidArgument, "to_store_id: store "+strconv.FormatUint(leader, 10)+" already leads range 1")
	_, err = pd.GetOperator(ctx, &rangekvpb.GetOperatorRequest{OperatorId: 424242})
	wantCode(t, "unknown operator", err, codes.NotFound, "operator_id")
	_, err = pd.AllocID(ctx, &rangekvpb.AllocIDRequest{Count: 1<<20 + 1})
	wantCode(t, "too many IDs", err, codes.InvalidArgument, "count")
	_, err = pd.Join(ctx, &rangekvpb.JoinRequest{})
	wantCode(t, "join without an address", err, codes.InvalidArgument, "address")
	_, err = pd.StoreHeartbeat(ctx, &rangekvpb.StoreHeartbeatRequest{Stats: &rangekvpb.StoreStats{}})
	wantCode(t, "store heartbeat without a store ID", err, codes.InvalidArgument, "store_id")
	_, err = pd.ReportSplit(ctx, &rangekvpb.ReportSplitRequest{Left: d})
	wantCode(t, "split report without the right half", err, codes.InvalidArgument, "right")
	_, err = pd.Split(ctx, &rangekvpb.SplitRequest{})
	wantCode(t, "split without a key", err, codes.InvalidArgument, "key")
	_, err = pd.GetStore(ctx, &rangekvpb.GetStoreRequest{StoreId: 424242})
	wantCode(t, "unknown store", err, codes.NotFound, "store_id")
	if r, err := pd.StoreHeartbeat(ctx, &rangekvpb.StoreHeartbeatRequest{Stats: &rangekvpb.StoreStats{StoreId: 424242}}); err != nil || r.Error == nil {
		t.Errorf("heartbeat of an unknown store: %v %v, want an error", r, err)
	}
	if st, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{}); err != nil || len(st.Operators) != 0 {
		t.Fatalf("invalid requests started operators: %v %v", st.GetOperators(), err)
	}
	// A caller from another cluster is refused.
	st, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wrong := &rangekvpb.PlacementHeader{ClusterId: st.ClusterId ^ 0xff00}
	if r, err := pd.GetRange(ctx, &rangekvpb.GetRangeRequest{Header: wrong, Key: []byte("a")}); err != nil || !r.GetError().GetClusterMismatch() || len(r.Ranges) != 0 {
		t.Errorf("GetRange with another cluster's ID: %v %v, want cluster_mismatch", r, err)
	}
	if r, err := pd.GetRange(ctx, &rangekvpb.GetRangeRequest{Header: &rangekvpb.PlacementHeader{ClusterId: st.ClusterId}, Key: []byte("a")}); err != nil || r.Error != nil || len(r.Ranges) != 1 {
		t.Errorf("GetRange with the cluster's ID: %v %v", r, err)
	}

	// A leadership transfer, then a move, both run to the end.
	tr, err := pd.TransferLeader(ctx, &rangekvpb.TransferLeaderOpRequest{RangeId: 1, ToStoreId: follower})
	if err != nil || tr.Error != nil || tr.Operator.State != "running" || tr.Operator.Kind != "transfer-leader" {
		t.Fatalf("transfer leader to store %d: %v %v", follower, tr, err)
	}
	if op := waitOperator(t, c, pd, tr.Operator.Id); op.State != "finished" {
		t.Fatalf("transfer operator ended %q: %s", op.State, op.Reason)
	}
	if _, l := rangeOnPD(ctx, pd, 1); l != follower {
		t.Errorf("range 1 leader %d after the transfer, want %d", l, follower)
	}
	from := leader // now a follower
	mv, err := pd.MoveReplica(ctx, &rangekvpb.MoveReplicaRequest{RangeId: 1, FromStoreId: from, ToStoreId: s4})
	if err != nil || mv.Error != nil || mv.Operator.State != "running" || len(mv.Operator.Steps) < 3 {
		t.Fatalf("move replica %d -> %d: %v %v", from, s4, mv, err)
	}
	// One operator per range at a time (asked of a voter that does not
	// lead: a transfer to the leader's own store is refused before).
	third := uint64(0)
	for _, r := range d.Replicas {
		if r.StoreId != leader && r.StoreId != follower {
			third = r.StoreId
		}
	}
	_, err = pd.TransferLeader(ctx, &rangekvpb.TransferLeaderOpRequest{RangeId: 1, ToStoreId: third})
	wantCode(t, "a second operator on a busy range", err, codes.FailedPrecondition, "already has operator")
	if op := waitOperator(t, c, pd, mv.Operator.Id); op.State != "finished" || int(op.CurrentStep) != len(op.Steps) {
		t.Fatalf("move operator ended %q at step %d of %d: %s", op.State, op.CurrentStep, len(op.Steps), op.Reason)
	}
	c.WaitFor("range 1 on store 4 and off the source, on the stores", 10*time.Second, func() bool {
		d := c.Descriptors()[1]
		return d != nil && fullyReplicated(c, 1, 3) && slices.ContainsFunc(d.Replicas, func(r *rangekvpb.ReplicaDescriptor) bool { return r.StoreId == s4 }) &&
			!slices.ContainsFunc(d.Replicas, func(r *rangekvpb.ReplicaDescriptor) bool { return r.StoreId == from })
	})

	// History: newest first, both finished, filtered by range and limited.
	h, err := pd.OperatorHistory(ctx, &rangekvpb.OperatorHistoryRequest{RangeId: 1})
	if err != nil || h.Error != nil {
		t.Fatal(h, err)
	}
	var ids []uint64
	for _, op := range h.Operators {
		ids = append(ids, op.Id)
		if op.State != "finished" || op.FinishedUnixMs < op.CreatedUnixMs || op.FinishedUnixMs == 0 {
			t.Errorf("history entry %v: want finished with a finish time", op)
		}
	}
	// Earlier entries: the repairs started through Rebalance.
	if len(ids) < 2 || ids[0] != mv.Operator.Id || ids[1] != tr.Operator.Id {
		t.Errorf("history of range 1: operators %v, want [%d %d ...] (newest first)", ids, mv.Operator.Id, tr.Operator.Id)
	}
	if h, err := pd.OperatorHistory(ctx, &rangekvpb.OperatorHistoryRequest{Limit: 1}); err != nil || len(h.Operators) != 1 || h.Operators[0].Id != mv.Operator.Id {
		t.Errorf("history limit 1: %v %v", h, err)
	}
	if h, err := pd.OperatorHistory(ctx, &rangekvpb.OperatorHistoryRequest{RangeId: 424242}); err != nil || len(h.Operators) != 0 {
		t.Errorf("history of an unknown range: %v %v", h, err)
	}
	c.WaitFor("placement to see the move", 10*time.Second, func() bool {
		st, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
		d, _ := rangeOnPD(ctx, pd, 1)
		return err == nil && len(st.UnderReplicated) == 0 && len(d.GetReplicas()) == 3 && !slices.ContainsFunc(d.Replicas, func(r *rangekvpb.ReplicaDescriptor) bool { return r.StoreId == from })
	})
	if dry, err := pd.Rebalance(ctx, &rangekvpb.RebalanceRequest{DryRun: true}); err != nil || dry.Error != nil || len(dry.Operators) != 0 {
		t.Errorf("dry-run rebalance after the move: %v %v, want no operator", dry.GetOperators(), err)
	}

	// A move onto a store that is down is refused.
	var fromIdx int
	for i, s := range c.Stores {
		if s.StoreID() == from {
			fromIdx = i
		}
	}
	c.StopStore(fromIdx)
	c.WaitFor("the stopped store down", 10*time.Second, func() bool {
		r, err := pd.GetStore(ctx, &rangekvpb.GetStoreRequest{StoreId: from})
		return err == nil && r.Store.State == rangekvpb.StoreState_STORE_DOWN && r.Store.DownSinceUnixMs > 0
	})
	_, err = pd.MoveReplica(ctx, &rangekvpb.MoveReplicaRequest{RangeId: 1, FromStoreId: s4, ToStoreId: from})
	wantCode(t, "move to a down store", err, codes.FailedPrecondition, "down")
}

// TestLeaderBalanceAfterSplits: ranges split through the API start with
// their leaders on the store that led the range they split from; the
// scheduler spreads leadership until the stores' leader counts are within
// one (LeaderBalanceTolerance) and it stays so.
func TestLeaderBalanceAfterSplits(t *testing.T) {
	start := time.Now()
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{})
	c.WaitFor("range 1 on three stores", 30*time.Second, func() bool { return fullyReplicated(c, 1, 3) })
	pd := pdClient(t, c.PDAddrs[0])
	const ranges = 12
	splits := time.Now()
	for i := 1; i < ranges; i++ {
		splitAt(t, pd, fmt.Sprintf("key%02d", i))
	}
	split := time.Now()
	c.WaitFor(fmt.Sprintf("%d ranges, 3 replicas each", ranges), 30*time.Second, func() bool { return fullyReplicated(c, ranges, 3) })
	spread := func(m map[uint64]int) int {
		lo, hi := 1<<30, 0
		for _, v := range m {
			lo, hi = min(lo, v), max(hi, v)
		}
		return hi - lo
	}
	balanced := func() bool {
		counts := c.LeaderCounts()
		total := 0
		for _, n := range counts {
			total += n
		}
		return len(counts) == 3 && total == ranges && spread(counts) <= 1
	}
	c.WaitFor("leader counts within one", 60*time.Second, balanced)
	took := time.Since(split)
	counts := c.LeaderCounts()
	// Placement's view agrees once the stores report.
	var reported map[uint64]int
	c.WaitFor("placement's leader counts within one", 10*time.Second, func() bool {
		r, err := pd.ListStores(context.Background(), &rangekvpb.ListStoresRequest{})
		if err != nil || r.Error != nil {
			return false
		}
		reported = map[uint64]int{}
		total := 0
		for _, s := range r.Stores {
			reported[s.Store.StoreId] = int(s.Stats.GetLeaderCount())
			total += int(s.Stats.GetLeaderCount())
		}
		return total == ranges && spread(reported) <= 1
	})
	// Stable: still balanced after 20 more scheduling rounds (100ms each),
	// and no transfer running.
	var sh0 float64
	c.WaitFor("20 scheduling rounds", 10*time.Second, func() bool {
		sh, _ := placement.HeartbeatsForTest(c.PDs[0])
		if sh0 == 0 {
			sh0 = sh
		}
		return sh-sh0 >= 60 // 3 stores, 100ms
	})
	if !balanced() {
		t.Errorf("leader counts drifted after balancing: %v", c.LeaderCounts())
	}
	h, err := pd.OperatorHistory(context.Background(), &rangekvpb.OperatorHistoryRequest{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	transfers := 0
	for _, op := range h.Operators {
		if op.Kind == "balance-leader" {
			transfers++
			if op.State != "finished" {
				t.Logf("balance-leader operator %d on range %d ended %s: %s", op.Id, op.RangeId, op.State, op.Reason)
			}
		}
	}
	t.Logf("%d ranges: leader counts %v (placement: %v) within one %s after the first split, %s after the last (splits took %s; %d balance-leader operators); %s in all",
		ranges, counts, reported, (split.Sub(splits) + took).Round(time.Millisecond), took.Round(time.Millisecond),
		split.Sub(splits).Round(time.Millisecond), transfers, time.Since(start).Round(time.Millisecond))
}

// TestAPIStoreFromAnotherCluster: a store whose data directory belongs to
// cluster A refuses to start against cluster B's placement, new or
// bootstrapped, with a message naming the other cluster; it changes
// nothing on either side and still starts against A.
func TestAPIStoreFromAnotherCluster(t *testing.T) {
	a := testcluster.StartPD(t, 1, testcluster.PDOptions{})
	a.WaitFor("cluster A's range 1 led", 10*time.Second, func() bool { return len(a.Descriptors()) == 1 })
	pdA := pdClient(t, a.PDAddrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stA, err := pdA.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
	if err != nil || stA.ClusterId == 0 {
		t.Fatal(stA, err)
	}
	idA := a.Stores[0].StoreID()
	cfg := a.StoreConfig(0)
	a.StopStore(0)

	b := testcluster.StartPD(t, 0, testcluster.PDOptions{})
	pdB := pdClient(t, b.PDAddrs[0])
	openOnB := func(what string) string {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c := cfg
		c.Placement = b.PDAddrs
		c.Listener, c.Addr, c.AdvertiseAddr = ln, ln.Addr().String(), ""
		c.Registry = nil
		begin := time.Now()
		s, err := store.Open(c)
		if err == nil {
			s.Stop()
			t.Fatalf("%s: a store with cluster %x's data directory opened against cluster B", what, stA.ClusterId)
		}
		if !strings.Contains(err.Error(), "another cluster") || !strings.Contains(err.Error(), cfg.DataDir) {
			t.Errorf("%s: error %q does not say that data directory %s belongs to another cluster", what, err, cfg.DataDir)
		}
		if d := time.Since(begin); d > 10*time.Second {
			t.Errorf("%s: refused after %s; want a prompt refusal", what, d)
		}
		t.Logf("%s: %v", what, err)
		return err.Error()
	}
	statusB := func() *rangekvpb.ClusterStatusResponse {
		var st *rangekvpb.ClusterStatusResponse
		b.WaitFor("cluster B's status", 10*time.Second, func() bool {
			r, err := pdB.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
			st = r
			return err == nil && r.Error == nil
		})
		return st
	}

	// Cluster B has no store yet: the old store must not bootstrap it.
	openOnB("cluster B new")
	if st := statusB(); st.Bootstrapped || len(st.Stores) != 0 || st.ClusterId != 0 {
		t.Fatalf("cluster B after the refused store: %v", st)
	}
	// Cluster B bootstrapped by a store of its own.
	b.AddStore()
	stB := statusB()
	if !stB.Bootstrapped || stB.ClusterId == stA.ClusterId || len(stB.Stores) != 1 {
		t.Fatalf("cluster B: %v", stB)
	}
	msg := openOnB("cluster B bootstrapped")
	if !strings.Contains(msg, fmt.Sprintf("%x", stA.ClusterId)) || !strings.Contains(msg, fmt.Sprintf("%x", stB.ClusterId)) {
		t.Errorf("error %q does not name both clusters (%x, %x)", msg, stA.ClusterId, stB.ClusterId)
	}
	if st := statusB(); len(st.Stores) != 1 || st.Stores[0].Store.StoreId != b.Stores[0].StoreID() || st.Stores[0].Store.Address != b.Addrs[0] {
		t.Errorf("cluster B's stores changed: %v", st.Stores)
	}

	// The data directory is intact: the store starts against A as before.
	a.RestartStore(0)
	if got := a.Stores[0].StoreID(); got != idA {
		t.Fatalf("store restarted on cluster A with ID %d, was %d", got, idA)
	}
	a.WaitFor("cluster A's range 1 led again", 10*time.Second, func() bool { return len(a.Descriptors()) == 1 })
}

// TestSplitSendsNewRangeID: placement allocates the new range's ID through
// its replicated allocator and sends it with the one SplitRange call: the
// store allocates nothing (no AllocID call), and the new range's ID lies
// between IDs allocated before and after. A retry at the same key (its
// first answer lost) gets a fresh ID and is refused, naming split_key, with
// no range created. A SplitRange sent to the store without an ID (an older
// placement, a tool) still works: the store asks placement itself.
func TestSplitSendsNewRangeID(t *testing.T) {
	var storeAllocs atomic.Int64
	c := testcluster.StartPD(t, 1, testcluster.PDOptions{InMemory: true,
		ConfigurePD: func(_ int, cfg *placement.Config) { cfg.ScheduleInterval = time.Hour },
		Configure: func(_ int, cfg *store.Config) {
			cfg.Knobs = &store.TestingKnobs{AllocatingRangeID: func() { storeAllocs.Add(1) }}
		}})
	pd := pdClient(t, c.PDAddrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := allocIDs(t, pd, 1)[0]
	r := splitAt(t, pd, "m")
	after := allocIDs(t, pd, 1)[0]
	if id := r.Right.GetRangeId(); id <= before || id >= after || string(r.Right.StartKey) != "m" || string(r.Left.EndKey) != "m" {
		t.Fatalf("split at m: left %v right %v, want the right range from m with an ID in (%d, %d)", r.Left, r.Right, before, after)
	}
	if n := storeAllocs.Load(); n != 0 {
		t.Fatalf("the store allocated %d range IDs during a placement-driven split, want 0", n)
	}
	rangesOnStore := func() int { return len(c.Stores[0].Status().Replicas) }
	// The right replica is installed just after the split is answered.
	c.WaitFor("the store to hold both halves of the split", 10*time.Second, func() bool { return rangesOnStore() == 2 })

	// The retry: once placement knows the new range's leader, Split at m
	// reaches the store, which refuses it (m starts a range).
	c.WaitFor("placement knows the new range's leader", 10*time.Second, func() bool {
		_, lead := rangeOnPD(ctx, pd, r.Right.RangeId)
		return lead != 0
	})
	_, err := pd.Split(ctx, &rangekvpb.SplitRequest{Key: []byte("m")})
	wantCode(t, "split again at m", err, codes.InvalidArgument, "split_key")
	if n := rangesOnStore(); n != 2 || storeAllocs.Load() != 0 {
		t.Fatalf("after the refused retry: %d ranges on the store, %d store allocations; want 2 and 0", n, storeAllocs.Load())
	}

	// Fallback: the store's own allocation, from placement.
	conn, err := grpc.NewClient(c.Addrs[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var resp *rangekvpb.SplitRangeResponse
	c.WaitFor("split at t on the store, without new_range_id", 10*time.Second, func() bool {
		resp, err = rangekvpb.NewAdminClient(conn).SplitRange(ctx, &rangekvpb.SplitRangeRequest{SplitKey: []byte("t")})
		if err != nil {
			t.Fatalf("split at t on the store: %v", err)
		}
		return resp.Error == nil // NotLeader: range m..'s leader not elected yet
	})
	if n := storeAllocs.Load(); n != 1 || resp.Right.RangeId <= after {
		t.Fatalf("split without new_range_id: %d store allocations, right range %d; want 1 and an ID from placement past %d", n, resp.Right.RangeId, after)
	}
}

// TestScanRangesPages: placement's ScanRanges pages (limit, page token)
// and refuses a limit above its maximum or a token it did not make,
// naming the field.
func TestScanRangesPages(t *testing.T) {
	c := testcluster.StartPD(t, 1, testcluster.PDOptions{InMemory: true,
		ConfigurePD: func(_ int, cfg *placement.Config) { cfg.ScheduleInterval = time.Hour }})
	pd := pdClient(t, c.PDAddrs[0])
	splitAt(t, pd, "m")
	splitAt(t, pd, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := pd.ScanRanges(ctx, &rangekvpb.ScanRangesRequest{Limit: 2})
	if err != nil || len(first.Ranges) != 2 || first.NextPageToken == "" {
		t.Fatalf("first page of 2: %v, %v; want 2 ranges and a token", first, err)
	}
	last, err := pd.ScanRanges(ctx, &rangekvpb.ScanRangesRequest{Limit: 2, PageToken: first.NextPageToken})
	if err != nil || len(last.Ranges) != 1 || string(last.Ranges[0].GetDescriptor_().GetStartKey()) != "t" || last.NextPageToken != "" {
		t.Fatalf("second page: %v, %v; want the range from t alone, no token", last, err)
	}
	all, err := pd.ScanRanges(ctx, &rangekvpb.ScanRangesRequest{})
	if err != nil || len(all.Ranges) != 3 || all.NextPageToken != "" {
		t.Fatalf("default page: %v, %v; want all 3 ranges, no token", all, err)
	}
	_, err = pd.ScanRanges(ctx, &rangekvpb.ScanRangesRequest{Limit: 10001})
	wantCode(t, "limit 10001", err, codes.InvalidArgument, "limit: 10001 is above the maximum of 10000")
	_, err = pd.ScanRanges(ctx, &rangekvpb.ScanRangesRequest{PageToken: "bogus"})
	wantCode(t, "a made-up page token", err, codes.InvalidArgument, "page_token")
}

// Callers that find the ID pool empty at once refill it one at a time, so
// a burst's IDs all come from the one batch the first of them reserved.
// Each refilled it for itself before: every caller reserved a batch, and
// the pool kept whichever answer its goroutine handled last (the
// simulation's seed 1125 split off a range as 1003 or 2002).
func TestAllocIDsRefillOneAtATime(t *testing.T) {
	const batch = 100
	c := testcluster.StartPD(t, 1, testcluster.PDOptions{InMemory: true, ConfigurePD: func(_ int, cfg *placement.Config) {
		cfg.ScheduleInterval = time.Hour
		cfg.IDBatch = batch
		// A slow sync keeps the first refill in flight while the others
		// arrive.
		cfg.FS = slowSyncFS{cfg.FS}
	}})
	pd := pdClient(t, c.PDAddrs[0])
	for round := range 5 {
		// Empty the pool: a batch of its own for the rest.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := pd.AllocID(ctx, &rangekvpb.AllocIDRequest{Count: batch})
		cancel()
		if err != nil || r.Error != nil {
			t.Fatalf("alloc %d: %v %v", batch, r, err)
		}
		const callers = 8
		ids := make([]uint64, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				r, err := pd.AllocID(ctx, &rangekvpb.AllocIDRequest{Count: 1})
				if err != nil || r.Error != nil {
					t.Errorf("alloc 1: %v %v", r, err)
					return
				}
				ids[i] = r.First
			})
		}
		wg.Wait()
		slices.Sort(ids)
		if ids[callers-1]-ids[0] != callers-1 {
			t.Fatalf("round %d: %d callers at once got IDs %v, want %d consecutive IDs of one batch", round, callers, ids, callers)
		}
	}
}

// slowSyncFS makes every file's sync take 20 ms.
type slowSyncFS struct{ vfs.FS }

func (fs slowSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return slowSyncFile{f}, err
}

func (fs slowSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return slowSyncFile{f}, err
}

type slowSyncFile struct{ vfs.File }

const slowSync = 20 * time.Millisecond

func (f slowSyncFile) Sync() error {
	time.Sleep(slowSync)
	return f.File.Sync()
}

func (f slowSyncFile) SyncData() error {
	time.Sleep(slowSync)
	return f.File.SyncData()
}

func (f slowSyncFile) SyncTo(n int64) (bool, error) {
	time.Sleep(slowSync)
	return f.File.SyncTo(n)
}
