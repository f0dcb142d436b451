package store_test

// Fuzzing the admin service's validation over gRPC against a one-store
// cluster: no input crashes the store; a request the store refuses as bad
// input is InvalidArgument naming the field; a split it accepts cut the
// range exactly at the split key.

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

const adminFuzzMaxKey = 16

// wantInvalid fails unless err is InvalidArgument naming one of fields.
func wantInvalid(t *testing.T, what string, err error, fields ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("%s: error %v: want InvalidArgument (or a RangeError in the response)", what, err)
	}
	for _, f := range fields {
		if strings.HasPrefix(st.Message(), f+":") {
			return
		}
	}
	t.Fatalf("%s: message %q names none of the fields %v", what, st.Message(), fields)
}

func FuzzAdminRequests(f *testing.F) {
	c := testcluster.Start(f, 1, testcluster.Options{InMemory: true, Configure: func(_ int, cfg *store.Config) {
		cfg.MaxKeySize = adminFuzzMaxKey
	}})
	c.WaitLeader(1)
	admin := c.Admin(0)

	f.Add(uint8(0), uint64(0), []byte("m"), uint64(1), int32(0))
	f.Add(uint8(0), uint64(1), []byte(""), uint64(1), int32(0))
	f.Add(uint8(0), uint64(1), bytes.Repeat([]byte("k"), adminFuzzMaxKey+1), uint64(1), int32(0))
	f.Add(uint8(0), uint64(99), []byte("q"), uint64(1), int32(0))
	f.Add(uint8(1), uint64(1), []byte(nil), uint64(1), int32(0))
	f.Add(uint8(1), uint64(1), []byte(nil), uint64(7), int32(0))
	f.Add(uint8(1), uint64(5), []byte(nil), uint64(1), int32(0))
	f.Add(uint8(2), uint64(1), []byte(nil), uint64(1), int32(0))
	f.Add(uint8(2), uint64(1), []byte(nil), uint64(9), int32(0))
	f.Add(uint8(2), uint64(1), []byte(nil), uint64(1), int32(1))
	f.Add(uint8(2), uint64(1), []byte(nil), uint64(3), int32(2))
	f.Add(uint8(2), uint64(1), []byte(nil), uint64(1), int32(77))
	f.Fuzz(func(t *testing.T, op uint8, rangeID uint64, key []byte, storeID uint64, change int32) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		switch op % 3 {
		case 0:
			resp, err := admin.SplitRange(ctx, &rangekvpb.SplitRangeRequest{RangeId: rangeID, SplitKey: key})
			what := "SplitRange(" + string(key) + ")"
			switch {
			case len(key) == 0 || len(key) > adminFuzzMaxKey:
				wantInvalid(t, what, err, "split_key")
			case err != nil:
				wantInvalid(t, what, err, "split_key")
			case resp.GetError() != nil:
			default:
				if !bytes.Equal(resp.GetLeft().GetEndKey(), key) || !bytes.Equal(resp.GetRight().GetStartKey(), key) {
					t.Fatalf("%s: split at the wrong key: left %v right %v", what, resp.GetLeft(), resp.GetRight())
				}
			}
		case 1:
			_, err := admin.TransferLeader(ctx, &rangekvpb.TransferLeaderRequest{RangeId: rangeID, ToStoreId: storeID})
			if err != nil {
				wantInvalid(t, "TransferLeader", err, "to_store_id")
			}
		case 2:
			ch := rangekvpb.ReplicaChangeType(change)
			if ch == rangekvpb.ReplicaChangeType_REMOVE_REPLICA && storeID == 1 {
				// Removing the only voter is a valid request (raft refuses
				// it later), not a validation question: keep the cluster.
				storeID = 2
			}
			resp, err := admin.ChangeReplicas(ctx, &rangekvpb.ChangeReplicasRequest{RangeId: rangeID, Change: ch, StoreId: storeID})
			if err != nil {
				wantInvalid(t, "ChangeReplicas", err, "store_id", "change")
			} else if resp.GetError() == nil {
				// One store: there is no other store to add, no learner to
				// promote and nothing else to remove.
				t.Fatalf("ChangeReplicas(%v, store %d, range %d) succeeded on a one-store cluster: %v", ch, storeID, rangeID, resp)
			}
		}
	})
}
