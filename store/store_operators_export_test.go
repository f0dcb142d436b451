package store

import (
	"context"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// ExecuteOperatorStepForTest runs a placement step on s as the operator
// executor does when a heartbeat response hands it one (s need not talk
// to placement), and returns its outcome, which placement never sees.
func ExecuteOperatorStepForTest(ctx context.Context, s *Store, st *rangekvpb.OperatorStep) (*rangekvpb.RangeError, error) {
	e := &operatorExecutor{s: s, ctx: ctx}
	return e.execute(st)
}
