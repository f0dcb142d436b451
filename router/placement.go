// The placement route source and the client of the placement driver: a
// cache miss loads the range (and the ranges after it) with GetRange, a
// store's address comes from GetStore; calls go to the placement leader,
// follow NotLeader redirects and move on from members that do not answer.

package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// New returns a client that learns ranges, leaders and store addresses from
// the placement driver whose members listen on placementAddrs (any subset
// of the members works; redirects lead to the leader).
func New(placementAddrs []string, opts Options) (*Client, error) {
	var addrs []string
	for _, a := range placementAddrs {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New("router: at least one placement address is needed")
	}
	c := newClient(opts)
	pd, err := newPDClient(addrs, c.opts)
	if err != nil {
		return nil, err
	}
	c.pd = pd
	c.src = &placementSource{c: c}
	return c, nil
}

type placementSource struct{ c *Client }

func (s *placementSource) load(ctx context.Context, key []byte) ([]*rangekvpb.RouteInfo, error) {
	var out []*rangekvpb.RouteInfo
	err := s.c.pd.call(ctx, "get range", false, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.GetRange(ctx, &rangekvpb.GetRangeRequest{Key: key, Neighbours: uint32(s.c.opts.Prefetch)})
		if err != nil {
			return nil, err
		}
		out = resp.Ranges
		return resp.Error, nil
	})
	return out, err
}

func (s *placementSource) spans(ctx context.Context, start, end []byte) ([]*rangekvpb.RouteInfo, error) {
	return s.c.pd.scanRanges(ctx, start, end, 0)
}

func (s *placementSource) storeAddr(ctx context.Context, storeID uint64) (string, error) {
	info, err := s.c.pd.getStore(ctx, storeID)
	if err != nil {
		return "", err
	}
	return info.GetStore().GetAddress(), nil
}

// pick returns the first voter of d, or the voter after the one that
// failed (wrapping around); learners cannot lead.
func (s *placementSource) pick(d *rangekvpb.RangeDescriptor, after leader) leader {
	if d == nil {
		return leader{}
	}
	var voters []uint64
	for _, r := range d.Replicas {
		if r.Role != rangekvpb.ReplicaRole_LEARNER {
			voters = append(voters, r.StoreId)
		}
	}
	if len(voters) == 0 {
		return leader{}
	}
	for i, id := range voters {
		if id == after.storeID {
			return leader{storeID: voters[(i+1)%len(voters)]}
		}
	}
	return leader{storeID: voters[0]}
}

func (s *placementSource) hinted(h leader) bool { return h.storeID != 0 }

func (s *placementSource) learn(context.Context, string) ([]*rangekvpb.RouteInfo, uint64) {
	return nil, 0 // the next attempt asks placement
}

func (s *placementSource) close() { s.c.pd.close() }

// pdClient calls the placement leader.
type pdClient struct {
	opts    Options
	members []string
	backoff *backoff
	mu      struct {
		sync.Mutex
		leader string
		conns  map[string]Conn
		closed bool
	}
}

func newPDClient(addrs []string, opts Options) (*pdClient, error) {
	p := &pdClient{opts: opts, members: addrs}
	p.mu.leader = addrs[0]
	p.backoff = newBackoff(opts.Clock, opts.MinBackoff, opts.MaxBackoff, opts.Seed^0x5bd1e995, opts.Seed)
	p.mu.conns = map[string]Conn{}
	for _, a := range addrs {
		if _, err := p.conn(a); err != nil {
			p.close()
			return nil, fmt.Errorf("router: placement address %q: %w", a, err)
		}
	}
	return p, nil
}

func (p *pdClient) conn(addr string) (Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil, errors.New("router: client closed")
	}
	if cc, ok := p.mu.conns[addr]; ok {
		return cc, nil
	}
	cc, err := dial(p.opts, addr)
	if err != nil {
		return nil, err
	}
	p.mu.conns[addr] = cc
	return cc, nil
}

func (p *pdClient) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cc := range p.mu.conns {
		cc.Close()
	}
	p.mu.conns = map[string]Conn{}
	p.mu.closed = true
}

// next moves on from a member that failed (to the next in the list).
func (p *pdClient) next(failed string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.leader != failed {
		return
	}
	next := p.members[0]
	for i, a := range p.members {
		if a == failed {
			next = p.members[(i+1)%len(p.members)]
		}
	}
	p.mu.leader = next
}

// pdCall is one placement call; it returns the placement error carried in
// its response.
type pdCall func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error)

// call runs fn against the placement leader until it answers, ctx ends, or
// the answer is an error retrying cannot fix. A mutating call whose
// outcome is unknown (timed out or the connection broke after sending)
// returns *AmbiguousError and is not retried; a read-only call gets
// PlacementTimeout per member before the next one is tried.
func (p *pdClient) call(ctx context.Context, op string, mutating bool, fn pdCall) error {
	var last error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return ctxErr(fmt.Errorf("placement %s: %w", op, err), last)
		}
		p.mu.Lock()
		addr := p.mu.leader
		p.mu.Unlock()
		conn, err := p.conn(addr)
		if err != nil {
			return err
		}
		if !readyConn(ctx, conn, p.opts.Clock, p.opts.ConnectTimeout) {
			if err := p.opts.tlsFailures.get(addr); err != nil {
				return err
			}
			last = fmt.Errorf("placement member %s unreachable", addr)
			p.next(addr)
			if err := p.backoff.wait(ctx, attempt); err != nil {
				return ctxErr(fmt.Errorf("placement %s: %w", op, err), last)
			}
			continue
		}
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if !mutating {
			cctx, cancel = withTimeout(ctx, p.opts.Clock, p.opts.PlacementTimeout)
		}
		perr, err := fn(cctx, rangekvpb.NewPlacementClient(conn))
		cancel()
		if err != nil {
			if re := rangeErrorDetail(err); re != nil && re.AmbiguousResult != nil {
				// Placement reached a store, whose outcome is unknown.
				return &AmbiguousError{Op: "placement " + op, Reason: status.Convert(err).Message()}
			}
			switch status.Code(err) {
			case codes.Aborted:
				// Refused before anything applied (e.g. a split whose range
				// leader moved): safe to retry, also for a mutating call.
				last = err
				if err := p.backoff.wait(ctx, attempt); err != nil {
					return ctxErr(fmt.Errorf("placement %s: %w", op, err), last)
				}
				continue
			case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
				if mutating {
					return &AmbiguousError{Op: "placement " + op, Reason: err.Error()}
				}
				last = err
				p.next(addr)
				if err := p.backoff.wait(ctx, attempt); err != nil {
					return ctxErr(fmt.Errorf("placement %s: %w", op, err), last)
				}
				continue
			}
			return err // InvalidArgument, FailedPrecondition, NotFound, ...
		}
		switch {
		case perr == nil:
			return nil
		case perr.NotLeader != nil && perr.NotLeader.LeaderAddress != "" && perr.NotLeader.LeaderAddress != addr:
			p.mu.Lock()
			p.mu.leader = perr.NotLeader.LeaderAddress
			p.mu.Unlock()
			last = errors.New(perr.Message)
			if attempt%len(p.members) == len(p.members)-1 {
				// Redirect loops (a member's stale view) still back off.
				if err := p.backoff.wait(ctx, attempt); err != nil {
					return ctxErr(fmt.Errorf("placement %s: %w", op, err), last)
				}
			}
			continue
		case perr.NotLeader != nil, perr.NotBootstrapped:
			// No leader yet (an election), or no store joined yet.
			last = errors.New(perr.Message)
			if perr.NotLeader != nil {
				p.next(addr)
			}
			if err := p.backoff.wait(ctx, attempt); err != nil {
				return ctxErr(fmt.Errorf("placement %s: %w", op, err), last)
			}
			continue
		}
		return &PlacementError{Op: op, Message: perr.Message, ClusterMismatch: perr.ClusterMismatch, Permanent: true}
	}
}

// getStore returns one store.
func (p *pdClient) getStore(ctx context.Context, storeID uint64) (*rangekvpb.StoreInfo, error) {
	var out *rangekvpb.StoreInfo
	err := p.call(ctx, "get store", false, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.GetStore(ctx, &rangekvpb.GetStoreRequest{StoreId: storeID})
		if err != nil {
			return nil, err
		}
		out = resp.Store
		return resp.Error, nil
	})
	if status.Code(err) == codes.NotFound {
		return nil, &NotFoundError{What: fmt.Sprintf("store %d", storeID)}
	}
	return out, err
}

// scanRanges returns the routes of the ranges overlapping [start, end) in
// key order (at most limit; 0: all), paging through placement's answers.
// scanPage is placement's largest page of ranges (its ScanRanges
// maximum).
const scanPage = 10000

// scanRanges collects the ranges overlapping [start, end), up to limit
// (0: all), a page at a time.
func (p *pdClient) scanRanges(ctx context.Context, start, end []byte, limit int) ([]*rangekvpb.RouteInfo, error) {
	var out []*rangekvpb.RouteInfo
	tok := ""
	for {
		want := scanPage
		if limit > 0 {
			want = min(scanPage, limit-len(out))
		}
		got, next, err := p.scanPage(ctx, start, end, tok, want)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		if next == "" || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		tok = next
	}
}

// scanPage reads one page of ScanRanges: up to limit routes from the
// page token (from start when ""), and the next page's token ("": none).
func (p *pdClient) scanPage(ctx context.Context, start, end []byte, token string, limit int) ([]*rangekvpb.RouteInfo, string, error) {
	var got []*rangekvpb.RouteInfo
	var next string
	err := p.call(ctx, "scan ranges", false, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.ScanRanges(ctx, &rangekvpb.ScanRangesRequest{StartKey: start, EndKey: end, Limit: uint32(limit), PageToken: token})
		if err != nil {
			return nil, err
		}
		got, next = resp.Ranges, resp.NextPageToken
		return resp.Error, nil
	})
	return got, next, err
}
