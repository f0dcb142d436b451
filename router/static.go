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
		leader string // address believed to lead (range 0 routing)
		rng    *rand.Rand
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
	c.mu.leader = addrs[0]
	for _, a := range addrs {
		if _, ok := c.conns[a]; ok {
			continue
		}
		dopts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts.DialOptions...)
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

func (c *Client) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.leader
}

func (c *Client) setLeader(addr string) {
	if _, ok := c.conns[addr]; !ok {
		return // a store we do not know of: keep rotating
	}
	c.mu.Lock()
	c.mu.leader = addr
	c.mu.Unlock()
}

// rotate moves to the store after from (unless someone already moved).
func (c *Client) rotate(from string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.leader != from {
		return
	}
	for i, a := range c.addrs {
		if a == from {
			c.mu.leader = c.addrs[(i+1)%len(c.addrs)]
			return
		}
	}
	c.mu.leader = c.addrs[0]
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
		if st == connectivity.Ready {
			return true
		}
		if !conn.WaitForStateChange(ctx, st) {
			return false
		}
	}
}

type call func(ctx context.Context, kv rangekvpb.KVClient) (*rangekvpb.ResponseHeader, error)

// do runs fn against the leader with retries. write marks calls whose
// outcome may be ambiguous.
func (c *Client) do(ctx context.Context, op string, write bool, fn call) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		addr := c.current()
		if !c.ready(ctx, addr) {
			c.rotate(addr)
			if err := c.backoff(ctx, attempt); err != nil {
				return err
			}
			continue
		}
		hdr, err := fn(ctx, rangekvpb.NewKVClient(c.conns[addr]))
		if err != nil {
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
				if write {
					return &AmbiguousError{Op: op, Reason: err.Error()}
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				c.rotate(addr)
				if err := c.backoff(ctx, attempt); err != nil {
					return err
				}
				continue
			}
			return err
		}
		re := hdr.GetError()
		if re == nil {
			c.setLeader(addr)
			return nil
		}
		switch {
		case re.AmbiguousResult != nil:
			return &AmbiguousError{Op: op, Reason: re.Message}
		case re.NotLeader != nil && re.NotLeader.LeaderAddress != "" && re.NotLeader.LeaderAddress != addr:
			c.setLeader(re.NotLeader.LeaderAddress)
			continue // one extra round trip, no backoff
		case re.NotLeader != nil, re.RangeNotFound != nil:
			c.rotate(addr)
		}
		if err := c.backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

func (c *Client) header() *rangekvpb.RequestHeader {
	return &rangekvpb.RequestHeader{Consistency: c.opts.Consistency}
}

// Get reads key; found is false when it does not exist.
func (c *Client) Get(ctx context.Context, key []byte) (value []byte, found bool, err error) {
	err = c.do(ctx, "get", false, func(ctx context.Context, kv rangekvpb.KVClient) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Get(ctx, &rangekvpb.GetRequest{Header: c.header(), Key: key})
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
	err = c.do(ctx, "get", false, func(ctx context.Context, kv rangekvpb.KVClient) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Get(ctx, &rangekvpb.GetRequest{Header: &rangekvpb.RequestHeader{Consistency: cons}, Key: key})
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
	return c.do(ctx, "put", true, func(ctx context.Context, kv rangekvpb.KVClient) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Put(ctx, &rangekvpb.PutRequest{Header: c.header(), Key: key, Value: value})
		return resp.GetHeader(), err
	})
}

// Delete removes key.
func (c *Client) Delete(ctx context.Context, key []byte) error {
	return c.do(ctx, "delete", true, func(ctx context.Context, kv rangekvpb.KVClient) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Delete(ctx, &rangekvpb.DeleteRequest{Header: c.header(), Key: key})
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
	err := c.do(ctx, "cas", true, func(ctx context.Context, kv rangekvpb.KVClient) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Cas(ctx, &rangekvpb.CasRequest{Header: c.header(), Key: key, Expected: expected, ExpectAbsent: expectAbsent, NewValue: newValue})
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
	err := c.do(ctx, "incr", true, func(ctx context.Context, kv rangekvpb.KVClient) (*rangekvpb.ResponseHeader, error) {
		resp, err := kv.Incr(ctx, &rangekvpb.IncrRequest{Header: c.header(), Key: key, Delta: delta})
		if err != nil {
			return nil, err
		}
		n = resp.Value
		return resp.Header, nil
	})
	return n, err
}

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
		want := 0
		if limit > 0 {
			want = limit - len(out)
		}
		err := c.do(ctx, "scan", false, func(ctx context.Context, kv rangekvpb.KVClient) (*rangekvpb.ResponseHeader, error) {
			r, err := kv.Scan(ctx, &rangekvpb.ScanRequest{Header: c.header(), StartKey: cur, EndKey: end, Limit: uint32(want)})
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
