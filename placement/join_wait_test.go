// A join waiting for another join to finish gives up with its context.

package placement_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Joins run one at a time. One that waits behind a join in progress (here
// the slot is held by hand, as a join stuck in its read barrier holds it)
// returns an error once its context ends, instead of waiting for the
// slot: its caller gave up, and a handler blocked on a mutex would hold a
// goroutine (and, in the simulation, stall every step) until the slot
// frees.
func TestJoinWaitingForTheSlotEndsWithItsContext(t *testing.T) {
	c := testcluster.StartPD(t, 0, testcluster.PDOptions{InMemory: true})
	s := c.PDs[0]
	// The slot free, a join succeeds (once the member leads).
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := placement.JoinForTest(ctx, s, &rangekvpb.JoinRequest{Address: "127.0.0.1:1"})
		cancel()
		if err == nil && resp.GetError() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("join with the slot free: %v %v", resp, err)
		}
	}
	release := placement.HoldJoinForTest(s)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	type result struct {
		resp *rangekvpb.JoinResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := placement.JoinForTest(ctx, s, &rangekvpb.JoinRequest{Address: "127.0.0.1:1"})
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		if r.err != nil || !strings.Contains(r.resp.GetError().GetMessage(), context.DeadlineExceeded.Error()) {
			t.Fatalf("join while the slot is held returned %v, %v; want the response error %q", r.resp, r.err, context.DeadlineExceeded)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("join still waiting for the slot 10 s after its 100 ms context ended")
	}
}
