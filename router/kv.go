// The key-value operations of a Client, each one call of the retry loop
// (do), and the multi-range reads: Scan and BatchGet fan out per range and
// stitch results in key (or input) order. Batch writes are in batch.go.

package router

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Get reads key at the client's default consistency; found is false when
// it does not exist.
func (c *Client) Get(ctx context.Context, key []byte) (value []byte, found bool, err error) {
	return c.GetWith(ctx, key, c.opts.Consistency)
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

// scanPageSize is the most pairs one Scan request asks a store for when
// the caller set a limit.
const scanPageSize = 1000

// KeyValue is one scanned pair.
type KeyValue struct{ Key, Value []byte }

// Scan returns up to limit pairs of [start, end) in key order (empty end:
// to the end of the key space; limit 0: all of them), across ranges. With
// no limit and a placement driver the ranges are read in parallel (at most
// Options.MaxFanout at once); with a limit they are read one after the
// other, stopping at the limit. Each range's part is a consistent read of
// that range; the whole is not a snapshot across ranges.
func (c *Client) Scan(ctx context.Context, start, end []byte, limit int) ([]KeyValue, error) {
	return c.ScanWith(ctx, start, end, limit, c.opts.Consistency)
}

// ScanWith is Scan at the given read consistency.
func (c *Client) ScanWith(ctx context.Context, start, end []byte, limit int, cons rangekvpb.ReadConsistency) ([]KeyValue, error) {
	if limit > 0 {
		return c.scanSpan(ctx, start, end, limit, cons)
	}
	routes, err := c.src.spans(ctx, start, end)
	if err != nil || len(routes) <= 1 {
		return c.scanSpan(ctx, start, end, 0, cons)
	}
	c.mu.Lock()
	c.insertRoutesLocked(routes)
	c.mu.Unlock()
	// Placement's view may lag a split: it may have recorded one half and
	// not yet the other, so the routes can leave a gap (or stop short of
	// end). Every part of [start, end) is scanned: the routes' spans, and
	// the gaps between them, each of which scanSpan follows through the
	// current boundaries.
	pieces := coverSpan(start, end, routes)
	parts := make([][]KeyValue, len(pieces))
	err = c.fanout(ctx, len(pieces), func(ctx context.Context, i int) error {
		// The range may have split or merged since: scanSpan follows the
		// current boundaries within the piece.
		kvs, err := c.scanSpan(ctx, pieces[i][0], pieces[i][1], 0, cons)
		parts[i] = kvs
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []KeyValue
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// coverSpan splits [start, end) (an empty end: no end) into consecutive
// pieces at the boundaries of routes (sorted by start key, as placement
// returns them), gaps included, so that the pieces cover it whole.
func coverSpan(start, end []byte, routes []*rangekvpb.RouteInfo) [][2][]byte {
	// before reports whether a < b, where an empty b means no end.
	before := func(a, b []byte) bool { return len(b) == 0 || bytes.Compare(a, b) < 0 }
	var out [][2][]byte
	cur := start
	for _, rt := range routes {
		d := rt.GetDescriptor_()
		if !before(cur, end) {
			break
		}
		if lo := d.GetStartKey(); bytes.Compare(lo, cur) > 0 {
			gapEnd := lo
			if !before(lo, end) {
				gapEnd = end
			}
			out = append(out, [2][]byte{cur, gapEnd})
			cur = gapEnd
			if !before(cur, end) {
				break
			}
		}
		hi := d.GetEndKey()
		if len(hi) > 0 && bytes.Compare(hi, cur) <= 0 {
			continue // wholly before cur
		}
		if len(hi) == 0 || !before(hi, end) {
			hi = end
		}
		out = append(out, [2][]byte{cur, hi})
		if len(hi) == 0 {
			return out
		}
		cur = hi
	}
	if before(cur, end) {
		out = append(out, [2][]byte{cur, end})
	}
	return out
}

// scanSpan reads [start, end) range after range, following the resume
// keys the stores return at range boundaries and page limits.
func (c *Client) scanSpan(ctx context.Context, start, end []byte, limit int, cons rangekvpb.ReadConsistency) ([]KeyValue, error) {
	var out []KeyValue
	cur := start
	for {
		var resp *rangekvpb.ScanResponse
		// 0 asks for the store's maximum page; a bounded scan asks for at
		// most scanPageSize at a time (a store refuses limits above its
		// own maximum).
		want := 0
		if limit > 0 {
			want = min(limit-len(out), scanPageSize)
		}
		err := c.do(ctx, "scan", cur, false, cons, func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error) {
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
		if len(resp.ResumeKey) == 0 || (limit > 0 && len(out) >= limit) ||
			(len(end) > 0 && bytes.Compare(resp.ResumeKey, end) >= 0) {
			return out, nil
		}
		cur = resp.ResumeKey
	}
}

// fanout runs fn(i) for i in [0, n), at most MaxFanout at once. The first
// error cancels the others' context and is returned.
func (c *Client) fanout(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, c.opts.MaxFanout)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { firstErr = err; cancel() })
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// groupByRange partitions the indexes of keys by the range that holds
// each key (as the cache sees it, loading misses), keeping their order
// within a group. The keys whose range cannot be found now (a static
// client before it learned the ranges) share one group: the store routes
// it, and a batch write learns from its answer and regroups.
func (c *Client) groupByRange(ctx context.Context, keys [][]byte) ([][]int, error) {
	byRange := map[uint64]int{}
	var groups [][]int
	for i, k := range keys {
		r, err := c.route(ctx, k)
		if err != nil && isPermanent(err) {
			return nil, err
		}
		id := r.rangeID()
		if err != nil {
			id = 0
		}
		g, ok := byRange[id]
		if !ok {
			g = len(groups)
			byRange[id] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups, nil
}

// GetResult is one key's outcome in BatchGet.
type GetResult struct {
	Key   []byte
	Value []byte
	Found bool
}

// BatchGet reads keys (at the client's default consistency) and returns
// their results in the order of keys. The keys are grouped by range and
// the ranges read in parallel; each key is its own consistent read (there
// is no snapshot across keys). The first error fails the whole call.
func (c *Client) BatchGet(ctx context.Context, keys [][]byte) ([]GetResult, error) {
	return c.BatchGetWith(ctx, keys, c.opts.Consistency)
}

// BatchGetWith is BatchGet at the given read consistency.
func (c *Client) BatchGetWith(ctx context.Context, keys [][]byte, cons rangekvpb.ReadConsistency) ([]GetResult, error) {
	out := make([]GetResult, len(keys))
	groups, err := c.groupByRange(ctx, keys)
	if err != nil {
		return nil, err
	}
	err = c.fanout(ctx, len(groups), func(ctx context.Context, g int) error {
		for _, i := range groups[g] {
			v, found, err := c.GetWith(ctx, keys[i], cons)
			if err != nil {
				return fmt.Errorf("batch get %q: %w", keys[i], err)
			}
			out[i] = GetResult{Key: keys[i], Value: v, Found: found}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
