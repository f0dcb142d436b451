// The KV state machine (kvStateMachine): applying committed entries.
// Apply reads no clock and no local state beyond the replicated descriptor
// and data, so every replica computes the same result.

package store

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
)

type applyResult struct {
	entry *pb.Entry
	value any
	err   error
	cc    *pb.ConfChangeV2
	// subs: the outcome of each proposal of a batch entry (value and err
	// are then unused).
	subs []rangeraft.AppliedResult
}

type truncation struct{ index, term uint64 }

// casResult is the result of an applied CAS.
type casResult struct {
	swapped, found bool
	value          []byte
}

// CommandError is a deterministic refusal computed at apply (the same on
// every replica); nothing was written.
type CommandError struct {
	Code codes.Code
	Msg  string
}

func (e *CommandError) Error() string { return e.Msg }

// epochMismatchError: the command was proposed against an older epoch.
type epochMismatchError struct{ current *rangekvpb.RangeDescriptor }

func (e *epochMismatchError) Error() string {
	return "range epoch changed since the command was proposed"
}

// keyNotInRangeError: the key left the range before the command applied.
type keyNotInRangeError struct {
	key  []byte
	desc *rangekvpb.RangeDescriptor
}

func (e *keyNotInRangeError) Error() string { return "key not in range at apply" }

// kvStateMachine is one replica's KV state machine: it stages the effects
// of committed entries (data, descriptor and applied index) into a batch,
// and, once the batch is committed, makes them true in memory and
// completes their proposals. Its methods run on the worker, with r.mu held,
// for the replica r of the pass they are given.
type kvStateMachine struct{ r *Replica }

// stateMachine returns r's KV state machine.
func (r *Replica) stateMachine() kvStateMachine { return kvStateMachine{r: r} }

// stageApply applies p's committed entries ents into ab. Called with
// p.r.mu held.
func (sm kvStateMachine) stageApply(ab *pebble.Batch, p *pass, ents []*pb.Entry) {
	r := p.r
	p.desc = r.Descriptor()
	for _, e := range ents {
		if e.GetIndex() <= r.mu.applied.Index {
			continue // covered by a snapshot applied in this pass
		}
		if k := r.store.cfg.Knobs; k != nil && k.ApplyingEntry != nil {
			k.ApplyingEntry(r.rangeID, e)
		}
		res := applyResult{entry: e}
		switch e.GetType() {
		case pb.EntryNormal:
			subs, err := rangeraft.DecodeEntries(e.GetData())
			if err != nil {
				r.fatal(fmt.Sprintf("decode entry %d", e.GetIndex()), err)
			}
			switch {
			case len(subs) == 1:
				res.value, res.err = sm.applyCommand(ab, p, subs[0].Cmd)
			case len(subs) > 1:
				// In order, each as if it were an entry of its own.
				res.subs = make([]rangeraft.AppliedResult, len(subs))
				for i, sub := range subs {
					v, err := sm.applyCommand(ab, p, sub.Cmd)
					res.subs[i] = rangeraft.AppliedResult{ID: sub.ID, Value: v, Err: err}
				}
			}
		case pb.EntryConfChange:
			var cc pb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				r.fatal("decode conf change", err)
			}
			res.cc, res.err = p.r.applyConfChange(ab, p, cc.AsV2())
		case pb.EntryConfChangeV2:
			var cc pb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				r.fatal("decode conf change", err)
			}
			res.cc, res.err = p.r.applyConfChange(ab, p, &cc)
		}
		p.applied = append(p.applied, res)
		p.lastIndex, p.lastTerm = e.GetIndex(), e.GetTerm()
	}
	if p.lastIndex == 0 {
		return
	}
	// Invariant: the applied index is written in the batch that holds the
	// data of the entries it covers.
	v, err := proto.Marshal(&rangekvpb.AppliedState{Index: p.lastIndex, Term: p.lastTerm})
	if err != nil {
		r.fatal("encode applied state", err)
	}
	if err := ab.Set(keys.AppliedStateKey(r.rangeID), v, nil); err != nil {
		r.fatal("stage applied state", err)
	}
}

// applyCommand applies one command to ab and returns its result, or a
// deterministic error (nothing written).
func (sm kvStateMachine) applyCommand(ab *pebble.Batch, p *pass, data []byte) (any, error) {
	desc := p.desc
	var cmd rangekvpb.Command
	if err := proto.Unmarshal(data, &cmd); err != nil {
		p.r.fatal("decode command", err)
	}
	if tr := cmd.GetTruncateLog(); tr != nil {
		ok, err := p.r.log.StageTruncate(ab, tr.Index, tr.Term, p.upd) // p.upd: this pass's append, maybe in ab
		if err != nil {
			p.r.fatal("stage truncation", err)
		}
		if ok {
			p.truncs = append(p.truncs, truncation{tr.Index, tr.Term})
		}
		return nil, nil
	}
	if sp := cmd.GetSplit(); sp != nil {
		var res any
		var err error
		p.desc, res, err = p.r.applySplit(ab, p, desc, sp)
		return res, err
	}
	if ep := cmd.GetEpoch(); ep != nil && ep.GetVersion() != desc.GetEpoch().GetVersion() {
		return nil, &epochMismatchError{current: desc}
	}
	if b := cmd.GetBatch(); b != nil {
		return nil, sm.applyBatch(ab, p, desc, b)
	}
	var key []byte
	switch c := cmd.Cmd.(type) {
	case *rangekvpb.Command_Put:
		key = c.Put.Key
	case *rangekvpb.Command_Delete:
		key = c.Delete.Key
	case *rangekvpb.Command_Cas:
		key = c.Cas.Key
	case *rangekvpb.Command_Incr:
		key = c.Incr.Key
	default:
		p.r.fatal("apply", fmt.Errorf("unknown command %T", cmd.Cmd))
	}
	if !containsKey(desc, key) {
		return nil, &keyNotInRangeError{key: key, desc: desc}
	}
	ek := keys.UserKey(key)
	switch c := cmd.Cmd.(type) {
	case *rangekvpb.Command_Put:
		p.r.must(ab.Set(ek, c.Put.Value, nil))
		p.r.writtenBytes.Add(int64(len(key) + len(c.Put.Value)))
		return nil, nil
	case *rangekvpb.Command_Delete:
		p.r.must(ab.Delete(ek, nil))
		return nil, nil
	case *rangekvpb.Command_Cas:
		cur, found := sm.getInBatch(ab, ek)
		match := (c.Cas.ExpectAbsent && !found) || (!c.Cas.ExpectAbsent && found && string(cur) == string(c.Cas.Expected))
		if !match {
			return &casResult{swapped: false, found: found, value: cur}, nil
		}
		p.r.must(ab.Set(ek, c.Cas.NewValue, nil))
		p.r.writtenBytes.Add(int64(len(key) + len(c.Cas.NewValue)))
		return &casResult{swapped: true, found: true, value: c.Cas.NewValue}, nil
	case *rangekvpb.Command_Incr:
		cur, found := sm.getInBatch(ab, ek)
		var n int64
		if found {
			v, err := strconv.ParseInt(string(cur), 10, 64)
			if err != nil {
				return nil, &CommandError{Code: codes.FailedPrecondition,
					Msg: fmt.Sprintf("incr: key %q holds %q, which is not a signed 64-bit decimal integer", key, truncateForMsg(cur))}
			}
			n = v
		}
		d := c.Incr.Delta
		reported := d
		if k := sm.r.store.cfg.Knobs; k != nil && k.TestingApplyIncrTwice {
			d *= 2
		}
		if (d > 0 && n > math.MaxInt64-d) || (d < 0 && n < math.MinInt64-d) {
			return nil, &CommandError{Code: codes.OutOfRange,
				Msg: fmt.Sprintf("incr: %d + %d overflows a signed 64-bit integer (key %q unchanged)", n, d, key)}
		}
		n += d
		p.r.must(ab.Set(ek, []byte(strconv.FormatInt(n, 10)), nil))
		p.r.writtenBytes.Add(int64(len(key) + 20))
		return n - d + reported, nil
	}
	return nil, nil
}

func truncateForMsg(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "..."
	}
	return string(b)
}

func (sm kvStateMachine) getInBatch(b *pebble.Batch, k []byte) ([]byte, bool) {
	r := sm.r
	v, c, err := b.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false
	}
	r.must(err)
	out := append([]byte(nil), v...)
	c.Close()
	return out, true
}

// finishApply completes what the committed apply batch made true: log
// truncations, descriptors, raft configuration, proposals and reads.
// Called with p.r.mu held.
func (sm kvStateMachine) finishApply(p *pass) {
	r, s := p.r, sm.r.store
	for _, t := range p.truncs {
		r.log.FinishTruncate(t.index, t.term)
		s.metrics.logTruncations.Inc()
	}
	if p.desc != nil && p.desc != r.Descriptor() {
		r.desc.Store(p.desc)
		r.mu.rr.DropLease() // a split or membership change: renew under the new descriptor
	}
	for _, res := range p.applied {
		// Invariant: a rejected membership change touches neither the
		// descriptor nor raft.
		if res.cc != nil && res.err == nil {
			cs := r.mu.rr.ApplyConfChange(res.cc)
			r.log.SetApplied(res.entry.GetIndex(), res.entry.GetTerm(), cs)
		}
		if res.subs != nil {
			r.mu.rr.AppliedAll(res.entry, res.subs)
		} else {
			r.mu.rr.Applied(res.entry, res.value, res.err)
		}
	}
	if p.lastIndex > r.mu.applied.Index {
		r.mu.applied.Index, r.mu.applied.Term = p.lastIndex, p.lastTerm
		r.appliedIndex.Store(p.lastIndex)
		r.log.SetApplied(p.lastIndex, p.lastTerm, nil)
		r.mu.trunc.Applied(len(p.applied))
		s.metrics.entriesApplied.Add(float64(len(p.applied)))
	}
	if d := r.Descriptor(); d != nil && replicaOnStore(d, s.cfg.StoreID) == nil {
		p.removed = true
	}
	r.mu.rr.FinishApply()
}
