package placement

import (
	"context"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// HoldJoinForTest takes the member's join slot, as a join in progress
// holds it, until release is called.
func HoldJoinForTest(s *Server) (release func()) {
	s.joinSem <- struct{}{}
	return func() { <-s.joinSem }
}

// JoinForTest runs the Join handler in process.
func JoinForTest(ctx context.Context, s *Server, req *rangekvpb.JoinRequest) (*rangekvpb.JoinResponse, error) {
	return s.join(ctx, req)
}
