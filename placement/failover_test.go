package placement_test

// Placement group failover and restart: a 3-member group loses its leader
// and keeps serving (routing, heartbeats, ID allocation, joins, redirects);
// descriptors are written through Raft only when they change; every member
// restarted keeps the cluster's stores, ranges and ID.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
	"github.com/rangekv/rangekv/store"
)

// waitPDLeader waits until a running member other than not leads the
// placement group and returns its index.
func waitPDLeader(t *testing.T, c *testcluster.PDCluster, not int, timeout time.Duration) int {
	t.Helper()
	lead := -1
	c.WaitFor("a placement leader", timeout, func() bool {
		lead = c.PDLeader()
		return lead >= 0 && lead != not
	})
	return lead
}

// splitAt splits the range holding key through the Placement Split API,
// retrying while the range's leader is not known to placement yet, and
// returns placement's answer.
func splitAt(t *testing.T, pd rangekvpb.PlacementClient, key string) *rangekvpb.SplitResponse {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := pd.Split(ctx, &rangekvpb.SplitRequest{Key: []byte(key)})
		cancel()
		if err == nil && r.Error == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("split at %q: %v %v", key, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allocIDs allocates n single IDs and count-sized batches, expanded.
func allocIDs(t *testing.T, pd rangekvpb.PlacementClient, n int) []uint64 {
	t.Helper()
	var out []uint64
	for i := range n {
		count := uint32(1 + i%3)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := pd.AllocID(ctx, &rangekvpb.AllocIDRequest{Count: count})
		cancel()
		if err != nil || r.Error != nil || r.First == 0 {
			t.Fatalf("alloc id: %v %v", r, err)
		}
		for j := range uint64(count) {
			out = append(out, r.First+j)
		}
	}
	return out
}

// allocFollowing allocates one ID through any member, following NotLeader
// redirects and moving on from members that do not answer, until ctx ends.
func allocFollowing(ctx context.Context, clients map[string]rangekvpb.PlacementClient, addrs []string) (uint64, error) {
	addr := addrs[0]
	for i := 0; ; i++ {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := clients[addr].AllocID(cctx, &rangekvpb.AllocIDRequest{Count: 1})
		cancel()
		switch {
		case err == nil && r.Error == nil:
			return r.First, nil
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case err == nil && r.Error.GetNotLeader().GetLeaderAddress() != "":
			addr = r.Error.NotLeader.LeaderAddress
		default:
			addr = addrs[i%len(addrs)]
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// metaMatchesStores reports whether placement's descriptors are the ones
// the stores' range leaders hold.
func metaMatchesStores(c *testcluster.PDCluster, s *placement.Server) bool {
	_, _, ranges := placement.MetaForTest(s)
	descs := c.Descriptors()
	if len(ranges) != len(descs) {
		return false
	}
	for _, d := range ranges {
		if !proto.Equal(d, descs[d.RangeId]) {
			return false
		}
	}
	return true
}

func storeIDs(c *testcluster.PDCluster) []uint64 {
	var out []uint64
	for _, s := range c.Stores {
		if s != nil {
			out = append(out, s.StoreID())
		}
	}
	slices.Sort(out)
	return out
}

// checkRoutes checks that GetRange routes each key to the range holding
// it, with the descriptor the range's leader holds and a known leader.
func routesOK(pd rangekvpb.PlacementClient, c *testcluster.PDCluster, keys ...string) error {
	descs := c.Descriptors()
	for _, k := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := pd.GetRange(ctx, &rangekvpb.GetRangeRequest{Key: []byte(k)})
		cancel()
		if err != nil || r.Error != nil || len(r.Ranges) != 1 {
			return fmt.Errorf("get range %q: %v %v", k, r, err)
		}
		d := r.Ranges[0].Descriptor_
		if string(d.StartKey) > k || (len(d.EndKey) > 0 && string(d.EndKey) <= k) {
			return fmt.Errorf("key %q routed to range %d [%q, %q)", k, d.RangeId, d.StartKey, d.EndKey)
		}
		if !proto.Equal(d, descs[d.RangeId]) {
			return fmt.Errorf("key %q: placement's descriptor %v, the leader's %v", k, d, descs[d.RangeId])
		}
		if l := r.Ranges[0].LeaderStoreId; l == 0 || !slices.ContainsFunc(d.Replicas, func(x *rangekvpb.ReplicaDescriptor) bool { return x.StoreId == l }) {
			return fmt.Errorf("key %q: range %d leader %d not known or not a replica", k, d.RangeId, l)
		}
	}
	return nil
}

// storesUpSince reports whether every store in want is listed UP with a
// heartbeat (with stats) at or after since.
func storesUpSince(pd rangekvpb.PlacementClient, want []uint64, since time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := pd.ListStores(ctx, &rangekvpb.ListStoresRequest{})
	if err != nil || r.Error != nil {
		return fmt.Errorf("list stores: %v %v", r, err)
	}
	var got []uint64
	for _, s := range r.Stores {
		got = append(got, s.Store.StoreId)
		if s.State != rangekvpb.StoreState_STORE_UP || s.LastHeartbeatUnixMs < since.UnixMilli() ||
			s.Stats.GetReplicaCount() == 0 || s.Stats.GetCapacity() == 0 {
			return fmt.Errorf("store %d: %v, last heartbeat %dms before %s", s.Store.StoreId, s.State,
				since.UnixMilli()-s.LastHeartbeatUnixMs, since.Format(time.StampMilli))
		}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("stores %v, want %v", got, want)
	}
	return nil
}

func TestFailoverPlacementLeader(t *testing.T) {
	start := time.Now()
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{Members: 3})
	c.WaitFor("range 1 on three stores", 30*time.Second, func() bool { return fullyReplicated(c, 1, 3) })
	old := waitPDLeader(t, c, -1, 10*time.Second)
	pd := pdClient(t, c.PDAddrs[old])
	for _, k := range []string{"g", "p"} {
		splitAt(t, pd, k)
	}
	c.WaitFor("3 ranges, 3 replicas each", 30*time.Second, func() bool { return fullyReplicated(c, 3, 3) })
	keys := []string{"a", "g", "h", "p", "zz"}
	c.WaitFor("routes on the first leader", 10*time.Second, func() bool { return routesOK(pd, c, keys...) == nil })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st0, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
	if err != nil || st0.Error != nil || st0.ClusterId == 0 {
		t.Fatalf("cluster status: %v %v", st0, err)
	}
	before := allocIDs(t, pd, 20)
	maxBefore := slices.Max(before)
	stores0 := storeIDs(c)

	// Meanwhile, allocations through whichever member leads, across the
	// leader change.
	clients := map[string]rangekvpb.PlacementClient{}
	for _, a := range c.PDAddrs {
		clients[a] = pdClient(t, a)
	}
	allocCtx, stopAlloc := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	concurrent := make([][]uint64, 3)
	for g := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, err := allocFollowing(allocCtx, clients, c.PDAddrs)
				if err != nil {
					return
				}
				concurrent[g] = append(concurrent[g], id)
			}
		}()
	}

	c.StopPD(old)
	stopped := time.Now()
	lead := waitPDLeader(t, c, old, 10*time.Second)
	elected := time.Now()
	t.Logf("placement member %d led; stopped it; member %d leads after %s", old+1, lead+1, elected.Sub(stopped).Round(time.Millisecond))
	pd = pdClient(t, c.PDAddrs[lead])

	// IDs after the leader change never repeat and are above every ID
	// handed out before it.
	after := allocIDs(t, pd, 20)
	stopAlloc()
	wg.Wait()
	seen := map[uint64]bool{}
	all := append(slices.Clone(before), after...)
	for _, ids := range concurrent {
		all = append(all, ids...)
	}
	for _, id := range all {
		if seen[id] {
			t.Errorf("ID %d handed out twice", id)
		}
		seen[id] = true
	}
	t.Logf("%d IDs allocated (%d concurrently across the leader change), all distinct", len(all), len(all)-len(before)-len(after))
	for _, id := range after {
		if id <= maxBefore {
			t.Errorf("ID %d after the failover is not above %d, the largest before it", id, maxBefore)
		}
	}

	// Routing and heartbeats move to the new leader.
	var routeErr, storeErr error
	c.WaitFor("routes with known leaders on the new placement leader", 10*time.Second, func() bool {
		routeErr = routesOK(pd, c, keys...)
		return routeErr == nil
	})
	c.WaitFor("every store heartbeating the new leader", 10*time.Second, func() bool {
		storeErr = storesUpSince(pd, stores0, elected)
		return storeErr == nil
	})
	t.Logf("routes and store heartbeats on the new leader %s after it was elected", time.Since(elected).Round(time.Millisecond))
	st1, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
	if err != nil || st1.Error != nil || st1.ClusterId != st0.ClusterId || st1.RangeCount != 3 {
		t.Fatalf("cluster status after the failover: %v %v (cluster was %x)", st1, err, st0.ClusterId)
	}
	cl, err := router.NewStatic(c.Addrs, router.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, k := range keys {
		if err := cl.Put(ctx, []byte(k), []byte("v-"+k)); err != nil {
			t.Fatalf("put %s after the failover: %v", k, err)
		}
	}

	// A store started now joins through the new leader with a fresh ID.
	i := c.AddStore()
	newID := c.Stores[i].StoreID()
	if newID == 0 || slices.Contains(stores0, newID) || seen[newID] || newID <= maxBefore {
		t.Fatalf("store started after the failover got ID %d (stores %v, largest ID before the failover %d)", newID, stores0, maxBefore)
	}
	stores1 := storeIDs(c)
	c.WaitFor("the new store listed and heartbeating", 10*time.Second, func() bool {
		r, err := pd.GetStore(ctx, &rangekvpb.GetStoreRequest{StoreId: newID})
		return err == nil && r.Error == nil && r.Store.State == rangekvpb.StoreState_STORE_UP && r.Store.Stats != nil &&
			r.Store.LastHeartbeatUnixMs >= elected.UnixMilli() && r.Store.Store.Address == c.Addrs[i]
	})

	// The old leader comes back as a follower, catches up (it learns the
	// store that joined while it was down) and redirects to the leader.
	c.RestartPD(old)
	c.WaitFor("the restarted member to catch up", 10*time.Second, func() bool {
		cid, ids, _ := placement.MetaForTest(c.PDs[old])
		return cid == st0.ClusterId && slices.Equal(ids, stores1)
	})
	for m := range c.PDs {
		if m == lead {
			continue
		}
		follower := pdClient(t, c.PDAddrs[m])
		var got *rangekvpb.PlacementError
		c.WaitFor(fmt.Sprintf("member %d to redirect to member %d", m+1, lead+1), 10*time.Second, func() bool {
			r, err := follower.GetRange(ctx, &rangekvpb.GetRangeRequest{Key: []byte("a")})
			if err != nil {
				return false
			}
			got = r.Error
			return got.GetNotLeader().GetLeaderAddress() != ""
		})
		if nl := got.NotLeader; nl.LeaderId != uint64(lead+1) || nl.LeaderAddress != c.PDAddrs[lead] {
			t.Errorf("member %d redirects to %d at %s, want %d at %s", m+1, nl.LeaderId, nl.LeaderAddress, lead+1, c.PDAddrs[lead])
		}
		// Every call redirects, writes included.
		a, err := follower.AllocID(ctx, &rangekvpb.AllocIDRequest{Count: 1})
		if err != nil || a.GetError().GetNotLeader().GetLeaderAddress() != c.PDAddrs[lead] || a.First != 0 {
			t.Errorf("AllocID on member %d: %v %v, want a redirect to %s", m+1, a, err, c.PDAddrs[lead])
		}
		l, err := follower.ListStores(ctx, &rangekvpb.ListStoresRequest{})
		if err != nil || l.GetError().GetNotLeader().GetLeaderAddress() != c.PDAddrs[lead] || len(l.Stores) != 0 {
			t.Errorf("ListStores on member %d: %v %v, want a redirect to %s", m+1, l, err, c.PDAddrs[lead])
		}
		j, err := follower.Join(ctx, &rangekvpb.JoinRequest{Address: "127.0.0.1:1"})
		if err != nil || j.GetError().GetNotLeader().GetLeaderAddress() != c.PDAddrs[lead] || j.StoreId != 0 {
			t.Errorf("Join on member %d: %v %v, want a redirect to %s", m+1, j, err, c.PDAddrs[lead])
		}
	}
	if now := c.PDLeader(); now != lead || c.PDs[old].IsLeader() {
		t.Errorf("the restarted member disrupted the group: leader is member %d, was %d", now+1, lead+1)
	}
	// Still serving (replicas move onto the new store meanwhile).
	c.WaitFor("routes", 30*time.Second, func() bool { return routesOK(pd, c, keys...) == nil })
	for _, k := range keys {
		v, found, err := cl.Get(ctx, []byte(k))
		if err != nil || !found || string(v) != "v-"+k {
			t.Errorf("get %s: %q %v %v", k, v, found, err)
		}
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// TestFailoverRangeLeadersReported: after a placement leader change, range
// leaders report their ranges to the new leader promptly, also with the
// production range-heartbeat refresh (one minute): the new leader starts
// with no heartbeat state, and without leaders it cannot route to leaders,
// balance leadership or hand out operator steps (steps go to the leader
// placement knows).
func TestFailoverRangeLeadersReported(t *testing.T) {
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{Members: 3, Configure: func(_ int, cfg *store.Config) {
		cfg.RangeHeartbeatRefresh = time.Minute // store.Defaults()
	}})
	c.WaitFor("range 1 on three stores", 30*time.Second, func() bool { return fullyReplicated(c, 1, 3) })
	old := waitPDLeader(t, c, -1, 10*time.Second)
	leaderKnown := func(pd rangekvpb.PlacementClient) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := pd.GetRange(ctx, &rangekvpb.GetRangeRequest{RangeId: 1})
		return err == nil && r.Error == nil && len(r.Ranges) == 1 && r.Ranges[0].LeaderStoreId != 0
	}
	c.WaitFor("range 1's leader known to placement", 10*time.Second, func() bool { return leaderKnown(pdClient(t, c.PDAddrs[old])) })
	// Quiet: no range heartbeat while the stores heartbeat 30 times (the
	// last membership changes have been reported).
	var sh0, rh0 float64
	c.WaitFor("range heartbeats to stop", 20*time.Second, func() bool {
		sh, rh := placement.HeartbeatsForTest(c.PDs[old])
		if rh != rh0 {
			sh0, rh0 = sh, rh
			return false
		}
		return sh-sh0 >= 30
	})
	c.StopPD(old)
	lead := waitPDLeader(t, c, old, 10*time.Second)
	pd := pdClient(t, c.PDAddrs[lead])
	elected := time.Now()
	// Stores heartbeat every 100ms here: 3 s is 30 store heartbeats and
	// 30 range heartbeat calls per store.
	deadline := time.Now().Add(3 * time.Second)
	for !leaderKnown(pd) {
		if time.Now().After(deadline) {
			st, _ := pd.ClusterStatus(context.Background(), &rangekvpb.ClusterStatusRequest{})
			t.Fatalf("range 1's leader still unknown to the new placement leader %s after it was elected (leaderless ranges: %v): "+
				"range leaders report to placement only when a range changes or every RangeHeartbeatRefresh (1 minute by default), "+
				"not when the placement leader changes", time.Since(elected).Round(time.Millisecond), st.GetLeaderless())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("range 1's leader known to the new placement leader %s after it was elected", time.Since(elected).Round(time.Millisecond))
}

// TestFailoverRestartAllMembers: descriptors go through placement's Raft only
// when they change (steady heartbeats leave the applied index alone), and
// a placement group restarted as a whole keeps the cluster ID, the stores
// and the ranges from its own data (the stores are down meanwhile, so
// nothing is learned again from heartbeats).
func TestFailoverRestartAllMembers(t *testing.T) {
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{Members: 3})
	c.WaitFor("range 1 on three stores", 30*time.Second, func() bool { return fullyReplicated(c, 1, 3) })
	lead := waitPDLeader(t, c, -1, 10*time.Second)
	pd := pdClient(t, c.PDAddrs[lead])
	for _, k := range []string{"f", "m", "t"} {
		splitAt(t, pd, k)
	}
	c.WaitFor("4 ranges, 3 replicas each", 30*time.Second, func() bool { return fullyReplicated(c, 4, 3) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := router.NewStatic(c.Addrs, router.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	keys := []string{"a", "f", "g", "m", "n", "t", "z"}
	for _, k := range keys {
		if err := cl.Put(ctx, []byte(k), []byte("v-"+k)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	// Settle: placement holds the stores' descriptors, no operator runs,
	// every member applied the same index.
	c.WaitFor("placement settled", 20*time.Second, func() bool {
		st, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
		if err != nil || st.Error != nil || len(st.Operators) > 0 || len(st.UnderReplicated) > 0 || !metaMatchesStores(c, c.PDs[lead]) {
			return false
		}
		a := placement.AppliedIndexForTest(c.PDs[0])
		return a > 0 && a == placement.AppliedIndexForTest(c.PDs[1]) && a == placement.AppliedIndexForTest(c.PDs[2])
	})
	applied := make([]uint64, len(c.PDs))
	for i, s := range c.PDs {
		applied[i] = placement.AppliedIndexForTest(s)
	}
	sh0, rh0 := placement.HeartbeatsForTest(c.PDs[lead])
	quiet := time.Now()
	// Steady heartbeats: every store heartbeats every 100ms and every range
	// leader reports its range at least every second (RangeHeartbeatRefresh).
	var sh, rh float64
	c.WaitFor("60 store and 12 range heartbeats", 20*time.Second, func() bool {
		sh, rh = placement.HeartbeatsForTest(c.PDs[lead])
		return sh-sh0 >= 60 && rh-rh0 >= 12
	})
	if c.PDLeader() != lead {
		t.Fatalf("the placement leader changed during the quiet period")
	}
	for i, s := range c.PDs {
		if a := placement.AppliedIndexForTest(s); a != applied[i] {
			t.Errorf("member %d: applied index grew from %d to %d during %.0f store and %.0f range heartbeats that changed nothing",
				i+1, applied[i], a, sh-sh0, rh-rh0)
		}
	}
	t.Logf("applied index stayed at %d through %.0f store and %.0f range heartbeats (%s)", applied[lead], sh-sh0, rh-rh0,
		time.Since(quiet).Round(time.Millisecond))
	// A change does go through Raft (the measure sees writes).
	splitAt(t, pd, "x")
	c.WaitFor("the split applied on every member", 10*time.Second, func() bool {
		for i, s := range c.PDs {
			if placement.AppliedIndexForTest(s) <= applied[i] {
				return false
			}
		}
		return true
	})
	c.WaitFor("5 ranges, 3 replicas each", 30*time.Second, func() bool { return fullyReplicated(c, 5, 3) })
	c.WaitFor("placement holds the split", 10*time.Second, func() bool { return metaMatchesStores(c, c.PDs[lead]) })

	// Restart every member with the stores down.
	st0, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
	if err != nil || st0.Error != nil {
		t.Fatal(st0, err)
	}
	sc0, err := pd.ScanRanges(ctx, &rangekvpb.ScanRangesRequest{})
	if err != nil || sc0.Error != nil || len(sc0.Ranges) != 5 {
		t.Fatal(sc0, err)
	}
	stores0 := storeIDs(c)
	for i := range c.Stores {
		c.StopStore(i)
	}
	for i := range c.PDs {
		c.StopPD(i)
	}
	for i := range c.PDs {
		c.RestartPD(i)
	}
	restarted := time.Now()
	lead = waitPDLeader(t, c, -1, 10*time.Second)
	pd = pdClient(t, c.PDAddrs[lead])
	st1, err := pd.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
	if err != nil || st1.Error != nil || !st1.Bootstrapped || st1.ClusterId != st0.ClusterId || st1.RangeCount != 5 {
		t.Fatalf("cluster status after the restart: %v %v (cluster was %x)", st1, err, st0.ClusterId)
	}
	ls, err := pd.ListStores(ctx, &rangekvpb.ListStoresRequest{})
	if err != nil || ls.Error != nil || len(ls.Stores) != len(st0.Stores) {
		t.Fatalf("stores after the restart: %v %v", ls, err)
	}
	for i, s := range ls.Stores {
		if !proto.Equal(s.Store, st0.Stores[i].Store) {
			t.Errorf("store after the restart %v, before %v", s.Store, st0.Stores[i].Store)
		}
	}
	sc1, err := pd.ScanRanges(ctx, &rangekvpb.ScanRangesRequest{})
	if err != nil || sc1.Error != nil || len(sc1.Ranges) != len(sc0.Ranges) {
		t.Fatalf("ranges after the restart: %v %v", sc1, err)
	}
	for i, r := range sc1.Ranges {
		if !proto.Equal(r.Descriptor_, sc0.Ranges[i].Descriptor_) {
			t.Errorf("range after the restart %v, before %v", r.Descriptor_, sc0.Ranges[i].Descriptor_)
		}
	}
	for _, k := range keys {
		r, err := pd.GetRange(ctx, &rangekvpb.GetRangeRequest{Key: []byte(k)})
		if err != nil || r.Error != nil || len(r.Ranges) != 1 {
			t.Fatalf("get range %q after the restart: %v %v", k, r, err)
		}
		d := r.Ranges[0].Descriptor_
		if string(d.StartKey) > k || (len(d.EndKey) > 0 && string(d.EndKey) <= k) {
			t.Errorf("key %q routed to range %d [%q, %q) after the restart", k, d.RangeId, d.StartKey, d.EndKey)
		}
	}

	// The stores come back with their identities and the cluster serves.
	for i := range c.Stores {
		c.RestartStore(i)
	}
	if got := storeIDs(c); !slices.Equal(got, stores0) {
		t.Fatalf("store IDs after the restart %v, before %v", got, stores0)
	}
	c.WaitFor("stores heartbeating the restarted placement", 15*time.Second, func() bool {
		return storesUpSince(pd, stores0, restarted) == nil
	})
	c.WaitFor("routes with known leaders", 15*time.Second, func() bool { return routesOK(pd, c, keys...) == nil })
	cl2, err := router.NewStatic(c.Addrs, router.Options{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	for _, k := range keys {
		v, found, err := cl2.Get(ctx, []byte(k))
		if err != nil || !found || string(v) != "v-"+k {
			t.Errorf("get %s after the restart: %q %v %v", k, v, found, err)
		}
	}
}

// TestFailoverLastHeartbeatUnknown: a placement leader that has not heard
// from a store since it took over reports last_heartbeat_unix_ms 0, as
// StoreInfo documents ("0: none since this leader took over"), and no
// stats.
func TestFailoverLastHeartbeatUnknown(t *testing.T) {
	c := testcluster.StartPD(t, 1, testcluster.PDOptions{})
	c.WaitFor("range 1 led", 10*time.Second, func() bool { return len(c.Descriptors()) == 1 })
	id := c.Stores[0].StoreID()
	c.StopStore(0)
	c.RestartPD(0)
	waitPDLeader(t, c, -1, 10*time.Second)
	pd := pdClient(t, c.PDAddrs[0])
	r, err := pd.GetStore(context.Background(), &rangekvpb.GetStoreRequest{StoreId: id})
	if err != nil || r.Error != nil {
		t.Fatal(r, err)
	}
	if r.Store.LastHeartbeatUnixMs != 0 || r.Store.Stats != nil {
		t.Errorf("store %d, never heard from by this leader: last_heartbeat_unix_ms %d (%s ago), stats %v; want 0 and none",
			id, r.Store.LastHeartbeatUnixMs, time.Since(time.UnixMilli(r.Store.LastHeartbeatUnixMs)).Round(time.Millisecond), r.Store.Stats)
	}
}
