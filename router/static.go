package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Options tune a Client.
type Options struct {
	// MinBackoff and MaxBackoff bound the retry backoff.
	MinBackoff, MaxBackoff time.Duration
	// ConnectTimeout bounds waiting for a store connection before trying
	// another store.
	ConnectTimeout time.Duration
	// Consistency is the default read consistency.
	Consistency rangekvpb.ReadConsistency
	// Seed seeds the backoff jitter (0: from the clock).
	Seed uint64
	// DialOptions are added to every connection (e.g. TLS).
	DialOptions []grpc.DialOption
}

func (o *Options) setDefaults() {
	if o.MinBackoff == 0 {
		o.MinBackoff = 10 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 500 * time.Millisecond
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 500 * time.Millisecond
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
}

// Client is safe for concurrent use.
type Client struct {
	opts  Options
	addrs []string
	conns map[string]*grpc.ClientConn

	mu struct {
		sync.Mutex
		// cache: range descriptors and the leader address of each range.
		cache rangeCache
		// fallback is where requests go for ranges with no known leader.
		fallback string
		rng      *rand.Rand
	}
}

// NewStatic returns a client over a fixed list of store addresses.
func NewStatic(addrs []string, opts Options) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("router: at least one store address is needed")
	}
	opts.setDefaults()
	c := &Client{opts: opts, addrs: append([]string(nil), addrs...), conns: map[string]*grpc.ClientConn{}}
	c.mu.rng = rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	c.mu.fallback = addrs[0]
	c.mu.cache.leaders = map[uint64]string{}
	for _, a := range addrs {
		if _, ok := c.conns[a]; ok {
			continue
		}
		dopts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes))}, opts.DialOptions...)
		conn, err := grpc.NewClient(a, dopts...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("router: store address %q: %w", a, err)
		}
		c.conns[a] = conn
	}
	return c, nil
}

// Close closes every connection.
func (c *Client) Close() error {
	for _, conn := range c.conns {
		conn.Close()
	}
	return nil
}

// target picks the range (from the cache, if known) and address for key.
func (c *Client) target(key []byte) (*rangekvpb.RangeDescriptor, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.mu.cache.lookup(key)
	if d != nil {
		if a, ok := c.mu.cache.leaders[d.RangeId]; ok {
			return d, a
		}
	}
	return d, c.mu.fallback
}

func (c *Client) setLeader(rangeID uint64, addr string) bool {
	if _, ok := c.conns[addr]; !ok {
		return false // a store we do not know of: keep rotating
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rangeID != 0 {
		c.mu.cache.leaders[rangeID] = addr
	}
	c.mu.fallback = addr
	return true
}

// rotate moves a range (or the fallback) off an address that failed.
func (c *Client) rotate(rangeID uint64, from string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.addrs[0]
	for i, a := range c.addrs {
		if a == from {
			next = c.addrs[(i+1)%len(c.addrs)]
		}
	}
	if rangeID != 0 && c.mu.cache.leaders[rangeID] == from {
		c.mu.cache.leaders[rangeID] = next
	}
	if c.mu.fallback == from {
		c.mu.fallback = next
	}
}

// refresh reloads every descriptor from a store's ListRanges.
func (c *Client) refresh(ctx context.Context, addr string) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	resp, err := rangekvpb.NewAdminClient(c.conns[addr]).ListRanges(ctx, &rangekvpb.ListRangesRequest{})
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range resp.Replicas {
		if st.Initialized {
			c.mu.cache.insert(st.Descriptor_)
		}
	}
}

func (c *Client) backoff(ctx context.Context, attempt int) error {
	d := c.opts.MinBackoff << min(attempt, 16)
	if d > c.opts.MaxBackoff || d <= 0 {
		d = c.opts.MaxBackoff
	}
	c.mu.Lock()
	d = d/2 + time.Duration(c.mu.rng.Int64N(int64(d/2)+1))
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ready waits (briefly) for the connection to addr to be up, so that a
// write is only sent over a working connection: a failure before sending
// is then known not to have applied.
func (c *Client) ready(ctx context.Context, addr string) bool {
	conn := c.conns[addr]
	conn.Connect()
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	for {
		st := conn.GetState()
		switch st {
		case connectivity.Ready:
			return true
		case connectivity.TransientFailure, connectivity.Shutdown:
			return false // refused or down: try another store now
		}
		if !conn.WaitForStateChange(ctx, st) {
			return false
		}
	}
}

type call func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error)

// do runs fn against the leader of key's range with retries. write marks
// calls whose outcome may be ambiguous.
func (c *Client) do(ctx context.Context, op string, key []byte, write bool, cons rangekvpb.ReadConsistency, fn call) error {
	epochRetries := 0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		desc, addr := c.target(key)
		var rangeID uint64
		h := &rangekvpb.RequestHeader{Consistency: cons}
		if desc != nil {
			rangeID = desc.RangeId
			h.RangeId, h.Epoch = desc.RangeId, desc.Epoch
		}
		if !c.ready(ctx, addr) {
			c.rotate(rangeID, addr)
			if err := c.backoff(ctx, attempt); err != nil {
				return err
			}
			continue
		}
		hdr, err := fn(ctx, rangekvpb.NewKVClient(c.conns[addr]), h)
		if err != nil {
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
				if write {
					return &AmbiguousError{Op: op, Reason: err.Error()}
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				c.rotate(rangeID, addr)
				if err := c.backoff(ctx, attempt); err != nil {
					return err
				}
				continue
			}
			return err
		}
		re := hdr.GetError()
		if re == nil {
			if desc == nil {
				c.refresh(ctx, addr) // learn the ranges for the next calls
			}
			c.setLeader(rangeID, addr)
			return nil
		}
		switch {
		case re.AmbiguousResult != nil:
			return &AmbiguousError{Op: op, Reason: re.Message}
		case re.NotLeader != nil:
			if a := re.NotLeader.LeaderAddress; a != "" && a != addr && c.setLeader(re.NotLeader.RangeId, a) {
				continue // one extra round trip, no backoff
			}
			c.rotate(rangeID, addr)
		case re.EpochNotMatch != nil:
			c.mu.Lock()
			for _, d := range re.EpochNotMatch.Current {
				c.mu.cache.insert(d)
			}
			c.mu.Unlock()
			if epochRetries++; epochRetries <= 2 {
				continue // the cache now has the current descriptors
			}
		case re.KeyNotInRange != nil, re.RangeNotFound != nil:
			c.mu.Lock()
			c.mu.cache.drop(rangeID)
			c.mu.Unlock()
			c.refresh(ctx, addr)
			if re.RangeNotFound != nil {
				c.rotate(rangeID, addr)
			}
		}
		if err := c.backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// Get reads key; found is false when it does not exist.
func (c *Client) Get(ctx context.Context, key []byte) (value []byte, found bool, err error) {
	err = c.do(ctx, "get", key, false, c.opts.Consistency, func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Get(ctx, &rangekvpb.GetRequest{Header: h, Key: key})
		if err != nil {
			return nil, err
		}
		value, found = resp.Value, resp.Found
		return resp.Header, nil
	})
	return value, found, err
}

// GetWith reads key at the given consistency.
func (c *Client) GetWith(ctx context.Context, key []byte, cons rangekvpb.ReadConsistency) (value []byte, found bool, err error) {
	err = c.do(ctx, "get", key, false, cons, func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Get(ctx, &rangekvpb.GetRequest{Header: h, Key: key})
		if err != nil {
			return nil, err
		}
		value, found = resp.Value, resp.Found
		return resp.Header, nil
	})
	return value, found, err
}

// Put writes key = value.
func (c *Client) Put(ctx context.Context, key, value []byte) error {
	return c.do(ctx, "put", key, true, c.opts.Consistency, func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Put(ctx, &rangekvpb.PutRequest{Header: h, Key: key, Value: value})
		return resp.GetHeader(), err
	})
}

// Delete removes key.
func (c *Client) Delete(ctx context.Context, key []byte) error {
	return c.do(ctx, "delete", key, true, c.opts.Consistency, func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Delete(ctx, &rangekvpb.DeleteRequest{Header: h, Key: key})
		return resp.GetHeader(), err
	})
}

// CASResult is the outcome of a compare-and-swap.
type CASResult struct {
	Swapped bool
	// Found and Value: the key's value after the operation.
	Found bool
	Value []byte
}

// CAS sets key to newValue if it holds expected (or, with expectAbsent,
// if it does not exist).
func (c *Client) CAS(ctx context.Context, key, expected []byte, expectAbsent bool, newValue []byte) (CASResult, error) {
	var out CASResult
	err := c.do(ctx, "cas", key, true, c.opts.Consistency, func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Cas(ctx, &rangekvpb.CasRequest{Header: h, Key: key, Expected: expected, ExpectAbsent: expectAbsent, NewValue: newValue})
		if err != nil {
			return nil, err
		}
		out = CASResult{Swapped: resp.Swapped, Found: resp.Found, Value: resp.Value}
		return resp.Header, nil
	})
	return out, err
}

// Incr adds delta to the signed 64-bit decimal counter at key (absent
// counts as 0) and returns the new value.
func (c *Client) Incr(ctx context.Context, key []byte, delta int64) (int64, error) {
	var n int64
	err := c.do(ctx, "incr", key, true, c.opts.Consistency, func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Incr(ctx, &rangekvpb.IncrRequest{Header: h, Key: key, Delta: delta})
		if err != nil {
			return nil, err
		}
		n = resp.Value
		return resp.Header, nil
	})
	return n, err
}

// maxMessageBytes bounds one request or response (values are at most
// 8 MiB; a scan page at most 16 MiB).
const maxMessageBytes = 64 << 20

// scanPageSize is the most pairs one Scan request asks a store for.
const scanPageSize = 1000

// KeyValue is one scanned pair.
type KeyValue struct{ Key, Value []byte }

// Scan returns up to limit pairs of [start, end) in key order (empty end:
// to the end of the key space; limit 0: the store's maximum), following
// range boundaries.
func (c *Client) Scan(ctx context.Context, start, end []byte, limit int) ([]KeyValue, error) {
	var out []KeyValue
	cur := start
	for {
		var resp *rangekvpb.ScanResponse
		// Page through: 0 asks for the store's maximum page; a bounded scan
		// asks for at most scanPageSize at a time (a store refuses limits
		// above its own maximum).
		want := 0
		if limit > 0 {
			want = min(limit-len(out), scanPageSize)
		}
		err := c.do(ctx, "scan", cur, false, c.opts.Consistency, func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error) {
			r, err := kv.Scan(ctx, &rangekvpb.ScanRequest{Header: h, StartKey: cur, EndKey: end, Limit: uint32(want)})
			if err != nil {
				return nil, err
			}
			resp = r
			return r.Header, nil
		})
		if err != nil {
			return nil, err
		}
		for _, p := range resp.Pairs {
			out = append(out, KeyValue{Key: p.Key, Value: p.Value})
		}
		if len(resp.ResumeKey) == 0 || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		cur = resp.ResumeKey
	}
}
