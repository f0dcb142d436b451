package placement

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Split maps what the store answered to a status the caller acts on:
// Aborted (refused, retry) or Unknown with an AmbiguousResult detail
// (outcome unknown), the store's RangeError attached.
func TestSplitErrorsTyped(t *testing.T) {
	detail := func(err error) *rangekvpb.RangeError {
		for _, d := range status.Convert(err).Details() {
			if re, ok := d.(*rangekvpb.RangeError); ok {
				return re
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name      string
		err       error
		code      codes.Code
		ambiguous bool
	}{
		{"not leader", splitRangeError(&rangekvpb.RangeError{Message: "not leader", NotLeader: &rangekvpb.NotLeader{RangeId: 1}}), codes.Aborted, false},
		{"epoch", splitRangeError(&rangekvpb.RangeError{Message: "epoch", EpochNotMatch: &rangekvpb.EpochNotMatch{}}), codes.Aborted, false},
		{"busy", splitRangeError(&rangekvpb.RangeError{Message: "busy", ServerBusy: &rangekvpb.ServerBusy{}}), codes.Aborted, false},
		{"stale", splitRangeError(&rangekvpb.RangeError{Message: "stale", StaleCommand: &rangekvpb.StaleCommand{}}), codes.Aborted, false},
		{"store ambiguous", splitRangeError(&rangekvpb.RangeError{Message: "timed out", AmbiguousResult: &rangekvpb.AmbiguousResult{}}), codes.Unknown, true},
		{"no leader known", splitRefused(errNoLeader.Error(), nil), codes.Aborted, false},
		{"answer lost", splitTransportError(status.Error(codes.Unavailable, "connection reset")), codes.Unknown, true},
		{"deadline", splitTransportError(status.Error(codes.DeadlineExceeded, "deadline")), codes.Unknown, true},
	} {
		if c := status.Code(tc.err); c != tc.code {
			t.Errorf("%s: code %s, want %s (%v)", tc.name, c, tc.code, tc.err)
		}
		re := detail(tc.err)
		if re == nil {
			t.Errorf("%s: no RangeError detail", tc.name)
			continue
		}
		if (re.AmbiguousResult != nil) != tc.ambiguous {
			t.Errorf("%s: ambiguous detail %v, want %v", tc.name, re.AmbiguousResult != nil, tc.ambiguous)
		}
	}
	// Invalid input passes through.
	in := status.Error(codes.InvalidArgument, "split_key: start key")
	if err := splitTransportError(in); status.Code(err) != codes.InvalidArgument {
		t.Errorf("invalid argument became %v", err)
	}
}
