package router

import (
	"strings"
	"testing"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// storesCalled counts, per store, the calls of op in a call log.
func storesCalled(log []string, op string) map[string]int {
	out := map[string]int{}
	for _, l := range log {
		f := strings.Fields(l)
		if len(f) >= 2 && f[1] == op {
			out[f[0]]++
		}
	}
	return out
}

// FOLLOWER and STALE reads (Get, Scan, BatchGet) are spread over every
// replica; LINEARIZABLE and LEASE reads go to the leader.
func TestReadsSpreadByConsistency(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "v")
	fc.takeLog()
	ctx := tctx(t)
	for _, cons := range []rangekvpb.ReadConsistency{rangekvpb.ReadConsistency_FOLLOWER, rangekvpb.ReadConsistency_STALE} {
		for range 30 {
			if v, found, err := c.GetWith(ctx, []byte("k"), cons); err != nil || !found || string(v) != "v" {
				t.Fatalf("%s get = (%q, %v, %v)", cons, v, found, err)
			}
			kvs, err := c.ScanWith(ctx, nil, nil, 0, cons)
			if err != nil || len(kvs) != 1 {
				t.Fatalf("%s scan = (%v, %v)", cons, kvs, err)
			}
			res, err := c.BatchGetWith(ctx, [][]byte{[]byte("k")}, cons)
			if err != nil || !res[0].Found {
				t.Fatalf("%s batch get = (%v, %v)", cons, res, err)
			}
		}
		log := fc.takeLog()
		for _, op := range []string{"get", "scan"} {
			got := storesCalled(log, op)
			for _, s := range []string{"s1", "s2", "s3"} {
				if got[s] == 0 {
					t.Errorf("%s %s: store %s never asked (calls %v), want reads spread over every replica", cons, op, s, got)
				}
			}
		}
	}
	for _, cons := range []rangekvpb.ReadConsistency{rangekvpb.ReadConsistency_LINEARIZABLE, rangekvpb.ReadConsistency_LEASE} {
		for range 4 {
			if _, _, err := c.GetWith(ctx, []byte("k"), cons); err != nil {
				t.Fatalf("%s get: %v", cons, err)
			}
			if _, err := c.ScanWith(ctx, nil, nil, 0, cons); err != nil {
				t.Fatalf("%s scan: %v", cons, err)
			}
		}
		log := fc.takeLog()
		for _, op := range []string{"get", "scan"} {
			if got := storesCalled(log, op); len(got) != 1 || got["s1"] != 4 {
				t.Errorf("%s %s calls %v, want all 4 at the leader s1", cons, op, got)
			}
		}
	}
}

// A spread read skips a replica that is down or refuses it, at once and
// without touching the cached leader.
func TestSpreadReadFallsBackToOtherReplicas(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "v")
	fc.stores[2].stop()
	waitDisconnected(t, c, fc.stores[2].addr)
	fc.setInject(func(store uint64, op string, _ []byte) (*rangekvpb.RangeError, error) {
		if store == 3 && op == "get" {
			return &rangekvpb.RangeError{Message: "no leader", NotLeader: &rangekvpb.NotLeader{RangeId: 1}}, nil
		}
		return nil, nil
	})
	fc.takeLog()
	ctx := tctx(t)
	for i := range 6 {
		if v, found, err := c.GetWith(ctx, []byte("k"), rangekvpb.ReadConsistency_FOLLOWER); err != nil || !found || string(v) != "v" {
			t.Fatalf("read %d = (%q, %v, %v)", i, v, found, err)
		}
	}
	got := storesCalled(fc.takeLog(), "get")
	if got["s1"] != 6 {
		t.Errorf("gets %v: want every read served by s1 (s2 down, s3 refusing)", got)
	}
	mustPut(t, c, "k", "w")
	wantLog(t, fc, "s1 put k")
	if got := describeCache(c); !strings.Contains(got, "leader=s1") {
		t.Errorf("cache after refused spread reads:\n%s\nwant leader s1 kept", got)
	}
}
