package placement

// clusterState.waitLeader: what Split waits on for a range whose leader no
// heartbeat has reported yet (the right half of a split just made).

import (
	"context"
	"testing"
	"time"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func rangeHB(rangeID, leaderStore, term uint64) *rangekvpb.RangeHeartbeat {
	return &rangekvpb.RangeHeartbeat{Descriptor_: &rangekvpb.RangeDescriptor{RangeId: rangeID}, LeaderStoreId: leaderStore, Term: term}
}

// TestWaitLeaderWakesOnRangeHeartbeat: a wait for a range with no known
// leader ends with the leader the first heartbeat naming one reports (a
// heartbeat of another range does not end it), and with 0 when its
// context ends first; an older-term heartbeat changes nothing.
func TestWaitLeaderWakesOnRangeHeartbeat(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newClusterState(now)

	done, cancel := context.WithCancel(context.Background())
	cancel()
	if got := c.waitLeader(done, 7); got != 0 {
		t.Fatalf("waitLeader with an ended context and no leader: %d, want 0", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a failure bound only
	defer cancel()
	got := make(chan uint64, 1)
	go func() { got <- c.waitLeader(ctx, 7) }()
	c.rangeHeartbeat(rangeHB(8, 2, 6), now)
	c.rangeHeartbeat(rangeHB(7, 3, 6), now)
	if l := <-got; l != 3 {
		t.Fatalf("waitLeader(7) = %d, want 3 (the store its heartbeat names)", l)
	}

	c.rangeHeartbeat(rangeHB(7, 1, 5), now) // stale: an older term
	if l := c.waitLeader(ctx, 7); l != 3 {
		t.Fatalf("after a stale heartbeat, waitLeader(7) = %d, want 3", l)
	}
}
