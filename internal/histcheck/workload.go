package histcheck

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/rangekv/rangekv/router"
)

// KV is the part of router.Client a checked workload uses.
type KV interface {
	Get(ctx context.Context, key []byte) ([]byte, bool, error)
	Put(ctx context.Context, key, value []byte) error
	Delete(ctx context.Context, key []byte) error
	CAS(ctx context.Context, key, expected []byte, expectAbsent bool, newValue []byte) (router.CASResult, error)
	Incr(ctx context.Context, key []byte, delta int64) (int64, error)
}

var _ KV = (*router.Client)(nil)

// Do runs one operation under timeout and records it. A write that fails
// in any way is recorded with an unknown outcome (it may have been
// applied); a read that fails did not happen.
func Do(ctx context.Context, rec *Recorder, kv KV, client int, key string, in Input, timeout time.Duration) Op {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := rec.Begin(client, key, in)
	out, err := Apply(ctx, kv, key, in)
	switch {
	case err == nil:
		return p.End(out, OutcomeOK)
	case in.Kind == Get:
		return p.End(Output{}, OutcomeFailed)
	default:
		return p.End(Output{}, OutcomeUnknown)
	}
}

// Apply runs one operation on kv and returns what it returned, for a
// caller that records it itself (Do records it; the simulation records
// on its own clock).
func Apply(ctx context.Context, kv KV, key string, in Input) (Output, error) {
	var out Output
	var err error
	k := []byte(key)
	switch in.Kind {
	case Get:
		var v []byte
		v, out.Found, err = kv.Get(ctx, k)
		out.Value = string(v)
	case Put:
		err = kv.Put(ctx, k, []byte(in.Value))
	case Delete:
		err = kv.Delete(ctx, k)
	case CAS:
		var r router.CASResult
		r, err = kv.CAS(ctx, k, []byte(in.Expected), in.ExpectAbsent, []byte(in.Value))
		out.Swapped, out.Found, out.Value = r.Swapped, r.Found, string(r.Value)
	case Incr:
		out.N, err = kv.Incr(ctx, k, in.Delta)
	}
	return out, err
}

// Worker runs random operations on keys as client until ctx ends: 35%
// Get, 25% Put, 10% Delete, 15% Incr, 15% CAS (against the value a Get
// just returned). Every Put and CAS writes a unique value.
func Worker(ctx context.Context, rec *Recorder, kv KV, client int, keys []string, rng *rand.Rand, timeout time.Duration) {
	for ctx.Err() == nil {
		key := keys[rng.IntN(len(keys))]
		var in Input
		switch x := rng.IntN(100); {
		case x < 35:
			in = Input{Kind: Get}
		case x < 60:
			in = Input{Kind: Put, Value: rec.UniqueValue()}
		case x < 70:
			in = Input{Kind: Delete}
		case x < 85:
			in = Input{Kind: Incr, Delta: int64(1 + rng.IntN(5))}
		default:
			r := Do(ctx, rec, kv, client, key, Input{Kind: Get}, timeout)
			if r.Outcome != OutcomeOK {
				continue
			}
			in = Input{Kind: CAS, Value: rec.UniqueValue(), Expected: r.Out.Value, ExpectAbsent: !r.Out.Found}
		}
		// The operation itself is not cut short by ctx: stopping the
		// workload must not turn writes into unknown outcomes.
		Do(context.WithoutCancel(ctx), rec, kv, client, key, in, timeout)
	}
}

// FinalReads reads every key until one read succeeds (or deadline
// passes): reads after the last writes, for the lost-write check. It
// returns the keys it could not read.
func FinalReads(ctx context.Context, rec *Recorder, kv KV, client int, keys []string, deadline time.Time) []string {
	var unread []string
	for _, k := range keys {
		for {
			if Do(ctx, rec, kv, client, k, Input{Kind: Get}, 3*time.Second).Outcome == OutcomeOK {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				unread = append(unread, k)
				break
			}
		}
	}
	return unread
}
