package placement_test

// The placement group over rangeraft/driver: its log truncates at the
// thresholds of placement.Config, and a member that was down past the
// truncation catches up by snapshot.

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func TestRaftLogTruncatesAndMemberCatchesUpBySnapshot(t *testing.T) {
	c := testcluster.StartPD(t, 1, testcluster.PDOptions{Members: 3, ConfigurePD: func(_ int, cfg *placement.Config) {
		cfg.LogTruncateThreshold = 20
		cfg.LogMaxEntries = 40
		cfg.LogTruncateCheckEntries = 5
		cfg.IDBatch = 1 // every AllocID is a Raft command
	}})
	lead := waitPDLeader(t, c, -1, 10*time.Second)
	down := (lead + 1) % 3
	c.WaitFor("the member to stop has applied the bootstrap", 10*time.Second, func() bool {
		return placement.AppliedIndexForTest(c.PDs[down]) == placement.AppliedIndexForTest(c.PDs[lead])
	})
	downApplied := placement.AppliedIndexForTest(c.PDs[down])
	c.StopPD(down)
	pd := pdClient(t, c.PDAddrs[lead])
	c.WaitFor("the leader's log truncated past the stopped member", 30*time.Second, func() bool {
		allocIDs(t, pd, 10)
		return placement.LogFirstIndexForTest(c.PDs[lead]) > downApplied+1
	})
	if c.PDLeader() != lead {
		t.Fatal("the placement leader changed")
	}
	c.RestartPD(down)
	c.WaitFor("the restarted member caught up", 30*time.Second, func() bool {
		return placement.AppliedIndexForTest(c.PDs[down]) >= placement.AppliedIndexForTest(c.PDs[lead])
	})
	cid, stores, ranges := placement.MetaForTest(c.PDs[lead])
	gotCID, gotStores, gotRanges := placement.MetaForTest(c.PDs[down])
	if gotCID != cid || !slices.Equal(gotStores, stores) || !slices.EqualFunc(gotRanges, ranges, func(a, b *rangekvpb.RangeDescriptor) bool { return proto.Equal(a, b) }) {
		t.Errorf("restarted member holds cluster %x, stores %v, ranges %v; leader %x, %v, %v", gotCID, gotStores, gotRanges, cid, stores, ranges)
	}
}
