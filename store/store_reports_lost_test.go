// Range reports to placement: what a store reports after placement's
// answer to a report was lost.

package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// reportsPlacement hands out store 1 and a range 1 whose only voter is on
// it, and records the ranges of each range report. Once lose is set, it
// takes the next report as a new placement leader does (it will answer
// ReportAll once) and its answer is lost on the way back.
type reportsPlacement struct {
	singleStorePlacement
	mu struct {
		sync.Mutex
		lose    bool
		reports [][]uint64 // the range IDs of each report taken
	}
}

func (p *reportsPlacement) Join(context.Context, *rangekvpb.JoinRequest) (*rangekvpb.JoinResponse, error) {
	return &rangekvpb.JoinResponse{ClusterId: 0xfa4f, StoreId: 1, BootstrapRange: &rangekvpb.RangeDescriptor{
		RangeId: 1, Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}, NextReplicaId: 2,
		Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: 1}},
	}}, nil
}

func (p *reportsPlacement) RangeHeartbeats(_ context.Context, req *rangekvpb.RangeHeartbeatsRequest) (*rangekvpb.RangeHeartbeatsResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []uint64
	for _, h := range req.GetRanges() {
		ids = append(ids, h.GetDescriptor_().GetRangeId())
	}
	p.mu.reports = append(p.mu.reports, ids)
	if p.mu.lose {
		p.mu.lose = false
		// Its ReportAll is spent: the retry gets a plain answer.
		return nil, status.Error(codes.Unavailable, "the answer (ReportAll) was lost")
	}
	return &rangekvpb.RangeHeartbeatsResponse{}, nil
}

// reportedRange1 reports whether a report from the n-th on named range 1.
func (p *reportsPlacement) reportedRange1(from int) (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ids := range p.mu.reports[min(from, len(p.mu.reports)):] {
		for _, id := range ids {
			if id == 1 {
				return true, len(p.mu.reports)
			}
		}
	}
	return false, len(p.mu.reports)
}

// TestRangeReportsAfterLostAnswer: placement takes a range report as a new
// leader and answers ReportAll, once; the answer is lost and the store's
// retry of the same report gets a plain answer. The store must still
// report every range it leads next time: it cannot know what the lost
// answer said (a new placement leader that never hears of a quiesced
// range never re-replicates it; simulation seed 392).
func TestRangeReportsAfterLostAnswer(t *testing.T) {
	pd := &reportsPlacement{}
	cfg := fakePlacementStore(t, pd)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.StoreHeartbeatInterval = 100 * time.Millisecond
	cfg.RangeHeartbeatInterval = 50 * time.Millisecond
	cfg.RangeHeartbeatRefresh = time.Hour // only a change or a full report names range 1 again
	startStore(t, cfg)

	waitReport := func(what string, from int) int {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ok, n := pd.reportedRange1(from)
			if ok {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no report named range 1 in %d reports", what, n-from)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	n := waitReport("range 1's leader", 0)
	// A few reports that name nothing: range 1 is reported and unchanged.
	for {
		_, m := pd.reportedRange1(n)
		if m >= n+3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ok, _ := pd.reportedRange1(n); ok {
		t.Fatal("range 1 reported again with nothing changed: the test shows nothing")
	}
	pd.mu.Lock()
	pd.mu.lose = true
	from := len(pd.mu.reports) + 2 // the lost answer's report and its retry
	pd.mu.Unlock()
	waitReport("after a lost answer", from)
}
