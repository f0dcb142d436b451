package store_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// A request naming range 1 with its pre-split epoch gets EpochNotMatch with
// the current descriptors of both halves (for a key now in the right half)
// and applies nothing; a request naming the left range with the current
// epoch for a right-half key gets KeyNotInRange. Every store answers the
// same way (routing checks do not depend on leadership).
func TestMultiraftStaleEpochAndKeyOutsideRange(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true})
	c.WaitLeader(1)
	cl := c.Client()
	ctx := mrCtx(t, 60*time.Second)
	for _, k := range []string{"a", "x"} {
		if err := cl.Put(ctx, []byte(k), []byte("orig-"+k)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	pre := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 1, 10*time.Second)[0]
	left, right := mrSplit(t, c, "m")
	descs := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 2, 10*time.Second)
	if !proto.Equal(descs[0], left) || !proto.Equal(descs[1], right) {
		t.Fatalf("stores hold %s, split answered left %s right %s", mrDescribe(descs), mrDescKey(left), mrDescKey(right))
	}
	if left.RangeId != 1 || string(left.EndKey) != "m" || left.Epoch.Version != pre.Epoch.Version+1 || left.Epoch.ConfVer != pre.Epoch.ConfVer {
		t.Fatalf("left half %s; want range 1 ending at m with version %d, conf_ver %d", mrDescKey(left), pre.Epoch.Version+1, pre.Epoch.ConfVer)
	}

	wantEpochNotMatch := func(who string, e *rangekvpb.RangeError, want ...*rangekvpb.RangeDescriptor) {
		t.Helper()
		if e.GetEpochNotMatch() == nil {
			t.Fatalf("%s: error %v, want EpochNotMatch", who, e)
		}
		got := e.EpochNotMatch.Current
		if len(got) != len(want) {
			t.Fatalf("%s: EpochNotMatch carries %s, want %s", who, mrDescribe(got), mrDescribe(want))
		}
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || proto.Equal(g, w)
			}
			if !found {
				t.Fatalf("%s: EpochNotMatch carries %s, missing %s", who, mrDescribe(got), mrDescKey(w))
			}
		}
	}
	wantKeyNotInRange := func(who string, e *rangekvpb.RangeError, key string) {
		t.Helper()
		kn := e.GetKeyNotInRange()
		if kn == nil {
			t.Fatalf("%s: error %v, want KeyNotInRange", who, e)
		}
		if string(kn.Key) != key || kn.RangeId != 1 || len(kn.StartKey) != 0 || string(kn.EndKey) != "m" {
			t.Fatalf("%s: KeyNotInRange %v, want key %q in range 1 [\"\", \"m\")", who, kn, key)
		}
	}

	for i := range 3 {
		kv := mrKV(t, c.Addrs[i])
		who := func(op string) string { return fmt.Sprintf("store %d: %s", i+1, op) }

		stale := &rangekvpb.RequestHeader{RangeId: 1, Epoch: pre.Epoch}
		g, err := kv.Get(ctx, &rangekvpb.GetRequest{Header: stale, Key: []byte("x")})
		if err != nil {
			t.Fatalf("%s: %v", who("stale get x"), err)
		}
		wantEpochNotMatch(who("stale get x"), g.Header.GetError(), left, right)
		p, err := kv.Put(ctx, &rangekvpb.PutRequest{Header: stale, Key: []byte("x"), Value: []byte("stale-put")})
		if err != nil {
			t.Fatalf("%s: %v", who("stale put x"), err)
		}
		wantEpochNotMatch(who("stale put x"), p.Header.GetError(), left, right)
		// A left-half key with the stale epoch: only the left descriptor.
		g, err = kv.Get(ctx, &rangekvpb.GetRequest{Header: stale, Key: []byte("a")})
		if err != nil {
			t.Fatalf("%s: %v", who("stale get a"), err)
		}
		wantEpochNotMatch(who("stale get a"), g.Header.GetError(), left)

		cur := &rangekvpb.RequestHeader{RangeId: 1, Epoch: left.Epoch}
		g, err = kv.Get(ctx, &rangekvpb.GetRequest{Header: cur, Key: []byte("x")})
		if err != nil {
			t.Fatalf("%s: %v", who("get x from range 1"), err)
		}
		wantKeyNotInRange(who("get x from range 1"), g.Header.GetError(), "x")
		p, err = kv.Put(ctx, &rangekvpb.PutRequest{Header: cur, Key: []byte("x"), Value: []byte("wrong-range-put")})
		if err != nil {
			t.Fatalf("%s: %v", who("put x into range 1"), err)
		}
		wantKeyNotInRange(who("put x into range 1"), p.Header.GetError(), "x")
		s, err := kv.Scan(ctx, &rangekvpb.ScanRequest{Header: &rangekvpb.RequestHeader{RangeId: 1, Epoch: left.Epoch, Consistency: rangekvpb.ReadConsistency_STALE}, StartKey: []byte("x")})
		if err != nil {
			t.Fatalf("%s: %v", who("scan from x in range 1"), err)
		}
		wantKeyNotInRange(who("scan from x in range 1"), s.Header.GetError(), "x")
	}

	// None of the refused writes applied; both halves serve their keys.
	rlead := c.WaitLeader(right.RangeId)
	g, err := mrKV(t, c.Addrs[rlead]).Get(ctx, &rangekvpb.GetRequest{Header: &rangekvpb.RequestHeader{RangeId: right.RangeId, Epoch: right.Epoch}, Key: []byte("x")})
	if err != nil || g.Header.GetError() != nil || string(g.Value) != "orig-x" {
		t.Fatalf("get x from the right range on its leader: %v %v %q, want orig-x", err, g.GetHeader().GetError(), g.GetValue())
	}
	for _, k := range []string{"a", "x"} {
		v, found, err := cl.Get(ctx, []byte(k))
		if err != nil || !found || string(v) != "orig-"+k {
			t.Fatalf("get %s: %q found=%v err=%v, want orig-%s", k, v, found, err, k)
		}
	}
}
