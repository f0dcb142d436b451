// Batch writes: ops are grouped by range (as the cache sees it) and each
// group is sent as one KV Batch request, which the store applies as one
// Raft command: atomic per range, NOT across ranges. A group whose range
// the cache learns has split is regrouped and its parts sent on their own.

package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// BatchOp is one write of a Batch: a put of Key = Value, or with Delete a
// delete of Key.
type BatchOp struct {
	Key, Value []byte
	Delete     bool
}

// BatchError reports a batch write that failed part way.
type BatchError struct {
	// Key is the first key of the per-range batch that failed with Err.
	Key []byte
	Err error
	// Written is how many ops are known to be written (their range's batch
	// was acknowledged); the others were not written, were not attempted,
	// or — when Err is an *AmbiguousError — may or may not be written (all
	// of their range's batch or none of it).
	Written, Total int
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("batch: %d of %d ops written; batch at key %q: %v", e.Written, e.Total, e.Key, e.Err)
}
func (e *BatchError) Unwrap() error { return e.Err }

// BatchPut writes pairs; see Batch.
func (c *Client) BatchPut(ctx context.Context, pairs []KeyValue) error {
	ops := make([]BatchOp, len(pairs))
	for i, p := range pairs {
		ops[i] = BatchOp{Key: p.Key, Value: p.Value}
	}
	return c.Batch(ctx, ops)
}

// BatchDelete deletes keys; see Batch.
func (c *Client) BatchDelete(ctx context.Context, keys [][]byte) error {
	ops := make([]BatchOp, len(keys))
	for i, k := range keys {
		ops[i] = BatchOp{Key: k, Delete: true}
	}
	return c.Batch(ctx, ops)
}

// Batch writes ops grouped by range, the ranges in parallel (at most
// Options.MaxFanout at once). The ops of one range are ONE request that the
// store applies atomically (all or nothing, in the order of ops, so the
// last of duplicate keys wins). Batch is NOT atomic across ranges: when it
// fails, the batches of other ranges may have been written.
//
// A per-range batch refused by a range error (a split, a leader change) is
// retried, regrouped when the range no longer holds all its keys. A
// per-range batch whose outcome is unknown is never retried. On the first
// failure no further per-range batch is started (those in flight finish);
// the error is a *BatchError wrapping the cause (an *AmbiguousError when
// that batch's outcome is unknown). A batch larger than a store's limits
// (store.MaxBatchOps ops, store.MaxBatchBytes bytes per range) is refused
// with InvalidArgument.
func (c *Client) Batch(ctx context.Context, ops []BatchOp) error {
	if len(ops) == 0 {
		return nil
	}
	b := &batchRun{c: c, ops: ops, sem: make(chan struct{}, c.opts.MaxFanout)}
	idx := make([]int, len(ops))
	for i := range idx {
		idx[i] = i
	}
	b.run(ctx, idx, 0)
	if b.first != nil {
		b.first.Written, b.first.Total = int(b.written.Load()), len(ops)
		return b.first
	}
	if err := ctx.Err(); err != nil && int(b.written.Load()) < len(ops) {
		return &BatchError{Err: err, Written: int(b.written.Load()), Total: len(ops)}
	}
	return nil
}

// batchRun is the state of one Batch call.
type batchRun struct {
	c       *Client
	ops     []BatchOp
	sem     chan struct{}
	stop    atomic.Bool
	written atomic.Int64
	mu      sync.Mutex
	first   *BatchError
}

func (b *batchRun) fail(key []byte, err error) {
	b.stop.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first == nil {
		b.first = &BatchError{Key: key, Err: err}
	}
}

// run groups the ops at idx by range and sends the groups in parallel;
// a group the cache learns is no longer one range is regrouped (depth
// counts the regroupings, for backoff). It returns when every group is
// done.
func (b *batchRun) run(ctx context.Context, idx []int, depth int) {
	keys := make([][]byte, len(idx))
	for i, j := range idx {
		keys[i] = b.ops[j].Key
	}
	groups, err := b.c.groupByRange(ctx, keys)
	if err != nil {
		b.fail(keys[0], err)
		return
	}
	if depth > 0 && len(groups) == 1 {
		// Regrouped into the same group: the cache moved under us; wait
		// before trying again.
		if err := b.c.backoff.wait(ctx, depth); err != nil {
			return
		}
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		if b.stop.Load() {
			break
		}
		select {
		case b.sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if b.stop.Load() { // failed while this waited for a slot
			<-b.sem
			break
		}
		part := make([]int, len(g))
		for i, k := range g {
			part[i] = idx[k]
		}
		wg.Go(func() {
			err := b.send(ctx, part)
			// A failure is recorded before the slot is released: the
			// group waiting for it must see it and not start.
			switch {
			case err == nil:
				b.written.Add(int64(len(part)))
			case errors.Is(err, errRegroup), errors.Is(err, errBatchStopped):
			default:
				b.fail(b.ops[part[0]].Key, err)
			}
			<-b.sem // released before a regroup takes slots of its own
			if errors.Is(err, errRegroup) {
				b.run(ctx, part, depth+1)
			}
		})
	}
	wg.Wait()
}

// send writes the ops at part as one per-range Batch request through the
// retry loop; errRegroup when the range no longer holds them all,
// errBatchStopped (nothing sent) when another group failed first.
func (b *batchRun) send(ctx context.Context, part []int) error {
	if b.stop.Load() {
		return errBatchStopped
	}
	ops := make([]*rangekvpb.BatchOp, len(part))
	for i, j := range part {
		o := b.ops[j]
		ops[i] = &rangekvpb.BatchOp{Key: o.Key, Value: o.Value, Delete: o.Delete}
	}
	check := func(r route) bool {
		if r.desc == nil {
			return true // the store routes (static client)
		}
		for _, o := range ops {
			if !containsKey(r.desc, o.Key) {
				return false
			}
		}
		return true
	}
	return b.c.doChecked(ctx, "batch", ops[0].Key, true, b.c.opts.Consistency, check,
		func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error) {
			resp, err := kv.Batch(ctx, &rangekvpb.BatchRequest{Header: h, Ops: ops})
			return resp.GetHeader(), err
		})
}
