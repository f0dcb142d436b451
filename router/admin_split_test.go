package router

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// statusWith is a status carrying a RangeError detail, as placement's
// Split answers.
func statusWith(t *testing.T, c codes.Code, re *rangekvpb.RangeError) error {
	st, err := status.New(c, re.Message).WithDetails(re)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// Placement's typed Split outcomes: Aborted (refused, nothing applied) is
// retried; Unknown with an AmbiguousResult detail is *AmbiguousError and
// sent once; InvalidArgument is returned as it is, sent once.
func TestAdminSplitTypedOutcomes(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	adm, err := c.Admin()
	if err != nil {
		t.Fatal(err)
	}
	refusals := 2
	fc.mu.Lock()
	fc.pdSplitErr = func() error {
		if refusals > 0 {
			refusals--
			return statusWith(t, codes.Aborted, &rangekvpb.RangeError{Message: "not leader", NotLeader: &rangekvpb.NotLeader{RangeId: 1}})
		}
		return nil
	}
	fc.mu.Unlock()
	left, right, err := adm.Split(tctx(t), []byte("m"))
	if err != nil || string(left.EndKey) != "m" || string(right.StartKey) != "m" {
		t.Fatalf("split after two refusals: %v %v %v", left, right, err)
	}
	wantLog(t, fc, "pd Split m", "pd Split m", "pd Split m")

	fc.mu.Lock()
	fc.pdSplitErr = func() error {
		return statusWith(t, codes.Unknown, &rangekvpb.RangeError{Message: "proposal timed out", AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: "timeout"}})
	}
	fc.mu.Unlock()
	_, _, err = adm.Split(tctx(t), []byte("t"))
	var amb *AmbiguousError
	if !errors.As(err, &amb) {
		t.Fatalf("ambiguous split: %v (%T), want *AmbiguousError", err, err)
	}
	wantLog(t, fc, "pd Split t")

	fc.mu.Lock()
	fc.pdSplitErr = func() error { return status.Error(codes.InvalidArgument, "split_key: is the range's start key") }
	fc.mu.Unlock()
	_, _, err = adm.Split(tctx(t), []byte("m"))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("invalid split: %v, want InvalidArgument", err)
	}
	wantLog(t, fc, "pd Split m")
}
