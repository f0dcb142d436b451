package store_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Eight writers put unique keys spread over the key space while range 1 is
// split four times under them. Nothing acknowledged may be lost, nothing
// never written may appear, every range serves its own keys, and all
// stores end with the same descriptors and the same data.
func TestMultiraftSplitUnderConcurrentWritesLosesNothing(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{InMemory: true})
	c.WaitLeader(1)
	cl := c.Client()
	// Writer g's seq-th key: a bucket k000..k999 that jumps around, so
	// every split point has writes on both sides throughout.
	keyOf := func(g, seq int) string { return fmt.Sprintf("k%03d/g%d/%06d", (seq*37+g*131)%1000, g, seq) }
	w := mrStartWriters(t, cl, 8, keyOf)
	w.waitMore(c, 100, 30*time.Second)
	splits := []string{"k800", "k600", "k400", "k200"}
	for _, k := range splits { // descending: each split is on range 1
		l, r := mrSplit(t, c, k)
		t.Logf("split at %s: left %s right %s (acked so far %d)", k, mrDescKey(l), mrDescKey(r), w.acked.Load())
		w.waitMore(c, 50, 30*time.Second)
	}
	w.waitMore(c, 100, 30*time.Second)
	w.halt()
	acked, ambiguous := w.ackedKV, w.ambiguous
	t.Logf("%d writes acknowledged, %d ambiguous; other failures: %v", len(acked), len(ambiguous), w.failures)
	if len(w.failures) > 0 {
		t.Errorf("writes failed with non-ambiguous errors (a router must retry these): %v", w.failures)
	}

	descs := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), len(splits)+1, 15*time.Second)
	for _, d := range descs {
		if d.RangeId == 1 {
			if want := uint64(1 + len(splits)); d.Epoch.Version != want {
				t.Errorf("range 1 epoch version %d after %d splits, want %d", d.Epoch.Version, len(splits), want)
			}
			if string(d.EndKey) != "k200" {
				t.Errorf("range 1 ends at %q, want k200", d.EndKey)
			}
		}
	}

	// Every acknowledged write is there; nothing unwritten is.
	ctx := mrCtx(t, 60*time.Second)
	kvs, err := cl.Scan(ctx, nil, nil, 0)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	got := map[string]string{}
	for _, kv := range kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	var lost []string
	for k, v := range acked {
		if got[k] != v {
			lost = append(lost, fmt.Sprintf("%s=%q (read %q)", k, v, got[k]))
		}
	}
	sort.Strings(lost)
	if len(lost) > 0 {
		t.Errorf("%d acknowledged writes lost or changed, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	for k, v := range got {
		if want, ok := acked[k]; ok && want == v {
			continue
		}
		if want, ok := ambiguous[k]; ok && want == v {
			continue
		}
		t.Errorf("read %s=%q, which no writer wrote (acked %q, ambiguous %q)", k, v, acked[k], ambiguous[k])
	}

	// Each range serves its own keys: a linearizable read through the
	// router and a read naming the range and epoch on its leader.
	for _, d := range descs {
		var mine []string
		for k := range acked {
			if mrContains(d, k) {
				mine = append(mine, k)
			}
		}
		if len(mine) == 0 {
			t.Errorf("range %s got no acknowledged write", mrDescKey(d))
			continue
		}
		sort.Strings(mine)
		lead := c.WaitLeader(d.RangeId)
		kv := mrKV(t, c.Addrs[lead])
		for i := 0; i < len(mine); i += max(1, len(mine)/20) {
			k := mine[i]
			v, found, err := cl.Get(ctx, []byte(k))
			if err != nil || !found || string(v) != acked[k] {
				t.Fatalf("get %s via router: %q found=%v err=%v, want %q", k, v, found, err, acked[k])
			}
			resp, err := kv.Get(ctx, &rangekvpb.GetRequest{Header: &rangekvpb.RequestHeader{RangeId: d.RangeId, Epoch: d.Epoch}, Key: []byte(k)})
			if err != nil || resp.Header.Error != nil || string(resp.Value) != acked[k] {
				t.Fatalf("get %s from range %d on its leader (store %d): %v %v %q, want %q", k, d.RangeId, lead+1, err, resp.GetHeader().GetError(), resp.GetValue(), acked[k])
			}
		}
	}

	// All replicas converge on the same data.
	mrWaitConverged(t, c, mrStoreIdx(3), mrRangeIDs(descs), 15*time.Second)
	mrReplicasIdentical(t, c, mrStoreIdx(3), descs)
}

func mrContains(d *rangekvpb.RangeDescriptor, k string) bool {
	return k >= string(d.StartKey) && (len(d.EndKey) == 0 || k < string(d.EndKey))
}

// About twenty ranges with data survive a restart of every store: the same
// descriptors come back on every store and every key reads back.
func TestMultiraftRestartAfterSplitsRecoversEveryRange(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.WaitLeader(1)
	cl := c.Client()
	ctx := mrCtx(t, 90*time.Second)
	var splitKeys []string
	for i := 1; i < 20; i++ {
		splitKeys = append(splitKeys, fmt.Sprintf("r%02d", i))
	}
	mrSplitDown(t, c, splitKeys)
	before := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 20, 15*time.Second)

	want := map[string]string{}
	for r := range 20 {
		for j := range 5 {
			k := fmt.Sprintf("r%02d/%d", r, j)
			if r == 0 {
				k = fmt.Sprintf("a/%d", j) // range 1: [ , r01)
			}
			want[k] = "val-" + k
			if err := cl.Put(ctx, []byte(k), []byte(want[k])); err != nil {
				t.Fatalf("put %s: %v", k, err)
			}
		}
	}
	mrWaitConverged(t, c, mrStoreIdx(3), mrRangeIDs(before), 15*time.Second)
	before = mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 20, 15*time.Second)

	for i := range 3 {
		c.StopStore(i)
	}
	for i := range 3 {
		c.RestartStore(i)
	}
	after := mrWaitDescriptorsAgree(t, c, mrStoreIdx(3), 20, 15*time.Second)
	if !mrDescriptorsEqual(before, after) {
		t.Fatalf("descriptors changed across the restart:\nbefore %s\nafter  %s", mrDescribe(before), mrDescribe(after))
	}
	for i := range 3 {
		for _, st := range c.Stores[i].Status().Replicas {
			if !st.Initialized {
				t.Errorf("store %d: range %d is uninitialized after the restart", i+1, st.Descriptor_.RangeId)
			}
		}
	}
	for _, d := range after {
		c.WaitLeader(d.RangeId)
	}
	for k, v := range want {
		got, found, err := cl.Get(ctx, []byte(k))
		if err != nil || !found || string(got) != v {
			t.Fatalf("get %s after restart: %q found=%v err=%v, want %q", k, got, found, err, v)
		}
	}
	kvs, err := cl.Scan(ctx, nil, nil, 0)
	if err != nil || len(kvs) != len(want) {
		var ks []string
		for _, kv := range kvs {
			ks = append(ks, string(kv.Key))
		}
		t.Fatalf("scan after restart: %d pairs (%s), err %v; want %d", len(kvs), strings.Join(ks, ","), err, len(want))
	}
	// Every range still takes writes.
	for _, d := range after {
		k := string(d.StartKey) + "/after"
		if len(d.StartKey) == 0 {
			k = "a/after"
		}
		if err := cl.Put(ctx, []byte(k), []byte("x")); err != nil {
			t.Fatalf("put %s into range %d after restart: %v", k, d.RangeId, err)
		}
	}
	mrWaitConverged(t, c, mrStoreIdx(3), mrRangeIDs(after), 15*time.Second)
	mrReplicasIdentical(t, c, mrStoreIdx(3), after)
}
