// The static route source: a fixed list of store addresses and no
// placement driver. A request for a range the client does not know goes
// to the last store that answered (or a hinted leader) without a range
// ID, and the store routes it; each success teaches the client the
// ranges that store holds (Admin.ListRanges).

package router

import (
	"context"
	"errors"
	"sync"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// NewStatic returns a client over a fixed list of store addresses (a
// statically bootstrapped cluster, or any cluster when placement is not
// reachable).
func NewStatic(addrs []string, opts Options) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("router: at least one store address is needed")
	}
	c := newClient(opts)
	src := &staticSource{c: c, addrs: append([]string(nil), addrs...), known: map[string]bool{}}
	src.mu.fallback = addrs[0]
	c.src = src
	for _, a := range addrs {
		src.known[a] = true
		if _, err := c.conn(a); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

type staticSource struct {
	c     *Client
	addrs []string
	known map[string]bool // immutable
	mu    struct {
		sync.Mutex
		// fallback is where requests go for ranges with no known leader.
		fallback string
	}
}

func (s *staticSource) load(context.Context, []byte) ([]*rangekvpb.RouteInfo, error) { return nil, nil }

func (s *staticSource) spans(context.Context, []byte, []byte) ([]*rangekvpb.RouteInfo, error) {
	return nil, nil
}

func (s *staticSource) storeAddr(context.Context, uint64) (string, error) { return "", nil }

// pick returns the fallback address, or the address after the one that
// failed (which becomes the fallback).
func (s *staticSource) pick(_ *rangekvpb.RangeDescriptor, after leader) leader {
	s.mu.Lock()
	defer s.mu.Unlock()
	if after.addr == "" {
		return leader{addr: s.mu.fallback}
	}
	next := s.addrs[0]
	for i, a := range s.addrs {
		if a == after.addr {
			next = s.addrs[(i+1)%len(s.addrs)]
		}
	}
	if s.mu.fallback == after.addr {
		s.mu.fallback = next
	}
	return leader{addr: next}
}

// hinted follows hints to the stores it was given only, and sends the
// ranges it does not know there too.
func (s *staticSource) hinted(h leader) bool {
	if !s.known[h.addr] {
		return false
	}
	s.mu.Lock()
	s.mu.fallback = h.addr
	s.mu.Unlock()
	return true
}

// learn reads the ranges a store holds.
func (s *staticSource) learn(ctx context.Context, addr string) ([]*rangekvpb.RouteInfo, uint64) {
	conn, err := s.c.conn(addr)
	if err != nil {
		return nil, 0
	}
	ctx, cancel := withTimeout(ctx, s.c.opts.Clock, s.c.opts.ConnectTimeout)
	defer cancel()
	var out []*rangekvpb.RouteInfo
	var storeID uint64
	req := &rangekvpb.ListRangesRequest{Limit: listPage}
	for {
		resp, err := rangekvpb.NewAdminClient(conn).ListRanges(ctx, req)
		if err != nil {
			return nil, 0
		}
		storeID = resp.StoreId
		for _, st := range resp.Replicas {
			if !st.Initialized || st.Descriptor_ == nil {
				continue
			}
			ri := &rangekvpb.RouteInfo{Descriptor_: st.Descriptor_}
			if st.RaftState == "StateLeader" {
				ri.LeaderStoreId = resp.StoreId
			}
			out = append(out, ri)
		}
		if resp.NextPageToken == "" {
			return out, storeID
		}
		req.PageToken = resp.NextPageToken
	}
}

func (s *staticSource) close() {}
