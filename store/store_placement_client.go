// The store's client of the placement driver: follows NotLeader redirects
// and moves on from members that do not answer.

package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// ErrClusterMismatch: placement says this store's data directory belongs to
// another cluster (or to no member store of this one).
type ErrClusterMismatch struct{ Msg string }

func (e *ErrClusterMismatch) Error() string { return "store refuses to start: " + e.Msg }

type pdClient struct {
	mu  sync.Mutex
	tls *tlsconfig.Source
	// net dials the members; clock times the retry backoff.
	net    grpcnet.Network
	clock  clock.Clock
	addrs  []string
	conns  map[string]grpcnet.Conn
	leader string
}

func newPDClient(addrs []string, tls *tlsconfig.Source, net grpcnet.Network, clk clock.Clock) (*pdClient, error) {
	c := &pdClient{tls: tls, net: net, clock: clk, addrs: addrs, conns: map[string]grpcnet.Conn{}, leader: addrs[0]}
	for _, a := range addrs {
		if err := c.connect(a); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *pdClient) connect(a string) error {
	if _, ok := c.conns[a]; ok {
		return nil
	}
	conn, err := c.net.Dial(a, tlsconfig.DialOption(c.tls),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.MaxCallSendMsgSize(256<<20)))
	if err != nil {
		return fmt.Errorf("placement: address %q: %w", a, err)
	}
	c.conns[a] = conn
	return nil
}

func (c *pdClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

// call runs fn against the placement leader, following redirects and
// trying other members, until ctx ends. fn returns the placement error
// carried in its response.
func (c *pdClient) call(ctx context.Context, fn func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error)) error {
	return c.do(ctx, 0, fn)
}

// callIfReachable is call that gives up as soon as as many attempts in a row as
// there are members could not reach a member (a member that answers, even
// without knowing a leader, resets the count): for a caller that has
// something better to do than wait for placement to come back.
func (c *pdClient) callIfReachable(ctx context.Context, fn func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error)) error {
	return c.do(ctx, len(c.addrs), fn)
}

// do is call, giving up after maxFailures attempts in a row that reached
// no member (0: never).
func (c *pdClient) do(ctx context.Context, maxFailures int, fn func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error)) error {
	backoff := 20 * time.Millisecond
	failures := 0
	for {
		c.mu.Lock()
		addr := c.leader
		conn := c.conns[addr]
		c.mu.Unlock()
		cctx, cancel := clock.WithTimeout(ctx, c.clock, 3*time.Second)
		perr, err := fn(cctx, rangekvpb.NewPlacementClient(conn))
		cancel()
		switch {
		case err == nil && perr == nil:
			return nil
		case perr != nil && perr.ClusterMismatch:
			return &ErrClusterMismatch{Msg: perr.Message}
		case perr != nil && perr.NotLeader != nil && perr.NotLeader.LeaderAddress != "" && perr.NotLeader.LeaderAddress != addr:
			c.mu.Lock()
			if c.connect(perr.NotLeader.LeaderAddress) == nil {
				c.leader = perr.NotLeader.LeaderAddress
			}
			c.mu.Unlock()
			continue
		case perr != nil && perr.NotLeader == nil && !perr.NotBootstrapped:
			return errors.New("placement: " + perr.Message)
		}
		// No leader known, member down, or not bootstrapped yet: next member.
		c.mu.Lock()
		for i, a := range c.addrs {
			if a == addr {
				c.leader = c.addrs[(i+1)%len(c.addrs)]
			}
		}
		c.mu.Unlock()
		if err == nil {
			failures = 0 // a member answered: wait for its leader
		} else if failures++; maxFailures > 0 && failures >= maxFailures {
			return fmt.Errorf("placement unreachable: no member answered (last error: %w)", err)
		}
		if !clock.Sleep(ctx, c.clock, backoff) {
			if err != nil {
				return fmt.Errorf("placement unreachable: %w (last error: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("placement: %w", ctx.Err())
		}
		backoff = min(2*backoff, time.Second)
	}
}
