// The wire's canonical order of what one step sent.

package sim

import (
	"testing"

	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Two streams opened in one step to the same store open alike (two
// snapshots); the order of their sender goroutines, which numbered them,
// must not decide theirs: they rank by what they sent after the open.
func TestWireTakeOrdersNewStreamsBySent(t *testing.T) {
	const method = "/rangekv.Raft/Snapshot"
	sends := func(c *grpcnet.Call, rangeID uint64) []*grpcnet.Envelope {
		return []*grpcnet.Envelope{
			{From: "s3:7501", To: "s2:7501", Method: method, Kind: grpcnet.StreamOpen, ToServer: true, Call: c},
			{From: "s3:7501", To: "s2:7501", Method: method, Kind: grpcnet.StreamMsg, ToServer: true, Call: c,
				Msg: &rangekvpb.SnapshotChunk{Header: &rangekvpb.SnapshotHeader{RangeId: rangeID}}},
		}
	}
	order := func(first, second uint64) []uint64 {
		w := &wire{calls: map[*grpcnet.Call]*callState{}}
		// The goroutine that ran first got the lower call number.
		a, b := &grpcnet.Call{ID: 1}, &grpcnet.Call{ID: 2}
		for _, e := range append(sends(a, first), sends(b, second)...) {
			w.Send(e)
		}
		var ranges []uint64
		for _, e := range w.take() {
			if c, ok := e.Msg.(*rangekvpb.SnapshotChunk); ok {
				ranges = append(ranges, c.GetHeader().GetRangeId())
			}
		}
		return ranges
	}
	x, y := order(10, 1), order(1, 10)
	if len(x) != 2 || len(y) != 2 || x[0] != y[0] || x[1] != y[1] {
		t.Fatalf("the senders' order decided the streams': %v then %v", x, y)
	}
}
