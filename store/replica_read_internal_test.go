package store

import (
	"testing"
	"time"
)

// The lease the store gives its replicas ends before a follower could
// forget its leader (liveness timeout = ElectionTimeout) or its election
// timer could run out ((election ticks − 1) ticks), with room to spare.
func TestLeaseShorterThanLivenessAndElectionTimeout(t *testing.T) {
	for _, tc := range []struct{ heartbeat, election time.Duration }{
		{100 * time.Millisecond, time.Second}, // production defaults
		{25 * time.Millisecond, 250 * time.Millisecond},
		{50 * time.Millisecond, 150 * time.Millisecond},
	} {
		c := Config{HeartbeatInterval: tc.heartbeat, ElectionTimeout: tc.election}
		d := c.leaseDuration()
		election, _, _, _ := c.raftTicks()
		refusal := time.Duration(election-1) * tc.heartbeat
		if d <= 0 || d >= refusal || d >= c.ElectionTimeout {
			t.Errorf("heartbeat %v, election %v: lease %v, want 0 < lease < %v (vote refusal) and < %v (liveness)",
				tc.heartbeat, tc.election, d, refusal, c.ElectionTimeout)
		}
	}
}

func TestVotesHeldForAnElectionTimeoutAfterStart(t *testing.T) {
	start := time.Unix(100, 0)
	const et = time.Second
	for _, tc := range []struct {
		after time.Duration
		want  bool
	}{{0, true}, {et - time.Nanosecond, true}, {et, false}, {2 * et, false}} {
		if got := votesHeld(start, start.Add(tc.after), et); got != tc.want {
			t.Errorf("votesHeld %v after start = %v, want %v", tc.after, got, tc.want)
		}
	}
}
