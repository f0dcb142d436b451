// The KV gRPC service: validate, route to the local replica, propose or
// read, and turn outcomes into responses with range errors as data.

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/internal/kvmux"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft"
)

// maxScanBytes bounds the keys and values of one scan response.
const maxScanBytes = 16 << 20

type kvServer struct {
	rangekvpb.UnimplementedKVServer
	s *Store
}

// BatchCommands serves a router's mux stream (many calls on one stream;
// internal/kvmux) with the handlers below.
func (k *kvServer) BatchCommands(stream rangekvpb.KV_BatchCommandsServer) error {
	return kvmux.Serve(stream, k)
}

// observe records a request's metrics.
func (s *Store) observe(op string, start time.Time, hdr *rangekvpb.ResponseHeader, err error) {
	result := "ok"
	switch {
	case err != nil:
		result = status.Code(err).String()
	case hdr != nil && hdr.Error != nil:
		result = rangeErrorKind(hdr.Error)
	}
	if k, ok := s.metrics.kvOK[op]; ok && result == "ok" { // the common case, without a label lookup
		k.requests.Inc()
		k.duration.Observe(time.Since(start).Seconds())
		return
	}
	s.metrics.kvRequests.WithLabelValues(op, result).Inc()
	s.metrics.kvDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func rangeErrorKind(e *rangekvpb.RangeError) string {
	switch {
	case e.NotLeader != nil:
		return "not_leader"
	case e.EpochNotMatch != nil:
		return "epoch_not_match"
	case e.RangeNotFound != nil:
		return "range_not_found"
	case e.KeyNotInRange != nil:
		return "key_not_in_range"
	case e.ServerBusy != nil:
		return "server_busy"
	case e.AmbiguousResult != nil:
		return "ambiguous"
	case e.StaleCommand != nil:
		return "stale_command"
	case e.DiskFull != nil:
		return "disk_full"
	}
	return "error"
}

// route finds the local replica for a request and checks the key and the
// epoch against its descriptor.
func (s *Store) route(h *rangekvpb.RequestHeader, key []byte) (*Replica, *rangekvpb.RangeError) {
	var r *Replica
	if h.GetRangeId() == 0 {
		r = s.replicaForKey(key)
		if r == nil {
			return nil, &rangekvpb.RangeError{Message: "no range on this store holds key " + errorForKey(key),
				RangeNotFound: &rangekvpb.RangeNotFound{}}
		}
	} else {
		r = s.replica(h.GetRangeId())
		if r == nil || r.Descriptor() == nil {
			return nil, &rangekvpb.RangeError{Message: "range not on this store", RangeNotFound: &rangekvpb.RangeNotFound{RangeId: h.GetRangeId()}}
		}
	}
	d := r.Descriptor()
	if ep := h.GetEpoch(); ep != nil && ep.GetVersion() != d.GetEpoch().GetVersion() {
		e := epochError(d)
		// After a split, the key's new range is what the client needs.
		if o := s.replicaForKey(key); o != nil && o != r {
			e.EpochNotMatch.Current = append(e.EpochNotMatch.Current, o.Descriptor())
		}
		return nil, e
	}
	if !containsKey(d, key) {
		return nil, keyNotInRange(key, d)
	}
	return r, nil
}

func epochError(d *rangekvpb.RangeDescriptor) *rangekvpb.RangeError {
	return &rangekvpb.RangeError{Message: "range epoch does not match",
		EpochNotMatch: &rangekvpb.EpochNotMatch{Current: []*rangekvpb.RangeDescriptor{d}}}
}

func keyNotInRange(key []byte, d *rangekvpb.RangeDescriptor) *rangekvpb.RangeError {
	return &rangekvpb.RangeError{Message: "key " + errorForKey(key) + " is not in the range",
		KeyNotInRange: &rangekvpb.KeyNotInRange{Key: key, RangeId: d.RangeId, StartKey: d.StartKey, EndKey: d.EndKey}}
}

// notLeader builds a NotLeader error with the leader's store and address.
func (s *Store) notLeader(r *Replica, lead uint64) *rangekvpb.RangeError {
	e := &rangekvpb.NotLeader{RangeId: r.rangeID}
	if rd := replicaByID(r.Descriptor(), lead); rd != nil {
		e.Leader = rd
		e.LeaderStoreId = rd.StoreId
		e.LeaderAddress, _ = s.trans.resolve(rd.StoreId)
		if rd.StoreId == s.cfg.StoreID {
			e.LeaderAddress = s.cfg.AdvertiseAddr
		}
	}
	return &rangekvpb.RangeError{Message: "not leader", NotLeader: e}
}

// outcomeToError turns a proposal or read error into a range error or a
// gRPC status.
func (s *Store) outcomeToError(r *Replica, err error) (*rangekvpb.RangeError, error) {
	var nl *rangeraft.NotLeaderError
	var amb *rangeraft.AmbiguousError
	var ce *CommandError
	var em *epochMismatchError
	var kn *keyNotInRangeError
	switch {
	case errors.As(err, &nl):
		return s.notLeader(r, nl.Leader), nil
	case errors.As(err, &amb):
		return &rangekvpb.RangeError{Message: amb.Error(), AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: amb.Reason}}, nil
	case errors.Is(err, rangeraft.ErrStaleCommand):
		return &rangekvpb.RangeError{Message: err.Error(), StaleCommand: &rangekvpb.StaleCommand{Reason: err.Error()}}, nil
	case errors.Is(err, rangeraft.ErrBusy), errors.Is(err, rangeraft.ErrStopped), errors.Is(err, rangeraft.ErrReadTimeout):
		return &rangekvpb.RangeError{Message: err.Error(), ServerBusy: &rangekvpb.ServerBusy{Reason: err.Error()}}, nil
	case errors.As(err, &ce):
		return nil, status.Error(ce.Code, ce.Msg)
	case errors.As(err, &em):
		return epochError(em.current), nil
	case errors.As(err, &kn):
		return keyNotInRange(kn.key, kn.desc), nil
	}
	return nil, status.Error(codes.Internal, err.Error())
}

type outcome struct {
	value any
	err   error
}

// propose replicates cmd through r and waits for it to apply. A context
// that ends first makes the outcome ambiguous: the command may still apply.
func (s *Store) propose(ctx context.Context, r *Replica, cmd *rangekvpb.Command) (any, *rangekvpb.RangeError, error) {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, nil, status.Error(codes.Internal, err.Error())
	}
	ch := make(chan outcome, 1)
	p := &rangeraft.Proposal{ID: s.newProposalID(), Cmd: data, Done: func(v any, err error) { ch <- outcome{v, err} },
		Batchable: isDataCommand(cmd)}
	if !r.pushProposal(p, s.cfg.MaxPendingProposals) {
		s.metrics.proposals.WithLabelValues("busy").Inc()
		return nil, &rangekvpb.RangeError{Message: "too many pending writes, or the store is stopping; nothing was applied",
			ServerBusy: &rangekvpb.ServerBusy{Reason: "proposal queue full or store stopping"}}, nil
	}
	s.sched.enqueue(r.rangeID, flagWork)
	select {
	case o := <-ch:
		if o.err != nil {
			s.metrics.proposals.WithLabelValues("error").Inc()
			rerr, gerr := s.outcomeToError(r, o.err)
			return nil, rerr, gerr
		}
		s.metrics.proposals.WithLabelValues("applied").Inc()
		return o.value, nil, nil
	case <-ctx.Done():
		s.metrics.proposals.WithLabelValues("ambiguous").Inc()
		return nil, &rangekvpb.RangeError{Message: "request ended before the write completed; it may or may not apply: " + ctx.Err().Error(),
			AmbiguousResult: &rangekvpb.AmbiguousResult{Reason: ctx.Err().Error()}}, nil
	}
}

// readModes maps a request's consistency to how rangeraft confirms it.
var readModes = map[rangekvpb.ReadConsistency]rangeraft.ReadMode{
	rangekvpb.ReadConsistency_LINEARIZABLE: rangeraft.ReadLeader,
	rangekvpb.ReadConsistency_LEASE:        rangeraft.ReadLease,
	rangekvpb.ReadConsistency_FOLLOWER:     rangeraft.ReadFollower,
}

// readBarrier waits until r may serve a read at the requested consistency:
// LINEARIZABLE, a ReadIndex round on the leader; LEASE, the leader's lease
// or else a round; FOLLOWER, on any replica, a read index from the leader
// applied locally (NotLeader when the replica knows no leader; ServerBusy
// when the leader does not answer in time); STALE, nothing.
func (s *Store) readBarrier(ctx context.Context, r *Replica, c rangekvpb.ReadConsistency) (*rangekvpb.RangeError, error) {
	if c == rangekvpb.ReadConsistency_STALE {
		s.metrics.kvReads.WithLabelValues("stale").Inc()
		return nil, nil
	}
	mode, ok := readModes[c]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "header.consistency: unknown value %d", c)
	}
	ch := make(chan error, 1)
	rd := &rangeraft.Read{Mode: mode, Done: func(err error) { ch <- err }}
	if err := r.pushRead(rd, s.cfg.MaxPendingReads); err != nil {
		// Refused before it was queued: a typed busy answer the router
		// retries with backoff.
		reason := "store stopping"
		if errors.Is(err, errTooManyReads) {
			reason = fmt.Sprintf("%v (raft.max-pending-reads is %d); retry later", err, s.cfg.MaxPendingReads)
		}
		return &rangekvpb.RangeError{Message: reason, ServerBusy: &rangekvpb.ServerBusy{Reason: reason}}, nil
	}
	s.sched.enqueue(r.rangeID, flagWork)
	select {
	case err := <-ch:
		if err != nil {
			return s.outcomeToError(r, err)
		}
		s.metrics.kvReads.WithLabelValues(rd.Path.String()).Inc()
		return nil, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (s *Store) engineGet(k []byte) ([]byte, bool, error) {
	v, c, err := s.db.Get(keys.UserKey(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, status.Error(codes.Internal, err.Error())
	}
	out := append([]byte(nil), v...)
	c.Close()
	return out, true, nil
}

func (k *kvServer) Get(ctx context.Context, req *rangekvpb.GetRequest) (resp *rangekvpb.GetResponse, err error) {
	s := k.s
	resp = &rangekvpb.GetResponse{Header: &rangekvpb.ResponseHeader{}}
	defer func(t time.Time) { s.observe("get", t, resp.GetHeader(), err) }(time.Now())
	if err := s.cfg.limits().ValidateGet(req); err != nil {
		return nil, err
	}
	r, rerr := s.route(req.Header, req.Key)
	if rerr == nil {
		r.reads.Add(1)
		rerr, err = s.readBarrier(ctx, r, req.GetHeader().GetConsistency())
	}
	if rerr != nil || err != nil {
		resp.Header.Error = rerr
		return resp, err
	}
	// The range may have changed while the read waited.
	if d := r.Descriptor(); !containsKey(d, req.Key) {
		resp.Header.Error = keyNotInRange(req.Key, d)
		return resp, nil
	}
	resp.Header.AppliedIndex = r.appliedIndex.Load()
	resp.Value, resp.Found, err = s.engineGet(req.Key)
	return resp, err
}

func (k *kvServer) write(ctx context.Context, op string, key []byte, cmd *rangekvpb.Command, h *rangekvpb.RequestHeader) (any, *rangekvpb.ResponseHeader, error) {
	hdr := &rangekvpb.ResponseHeader{}
	r, rerr := k.s.route(h, key)
	if rerr != nil {
		hdr.Error = rerr
		return nil, hdr, nil
	}
	if op != "delete" {
		if rerr := k.s.diskFull(); rerr != nil {
			hdr.Error = rerr // refused before proposing: not applied
			return nil, hdr, nil
		}
	}
	r.writes.Add(1)
	cmd.Epoch = r.Descriptor().GetEpoch()
	v, rerr, err := k.s.propose(ctx, r, cmd)
	hdr.Error = rerr
	return v, hdr, err
}

func (k *kvServer) Put(ctx context.Context, req *rangekvpb.PutRequest) (resp *rangekvpb.PutResponse, err error) {
	resp = &rangekvpb.PutResponse{}
	defer func(t time.Time) { k.s.observe("put", t, resp.GetHeader(), err) }(time.Now())
	if err := k.s.cfg.limits().ValidatePut(req); err != nil {
		return nil, err
	}
	cmd := &rangekvpb.Command{Cmd: &rangekvpb.Command_Put{Put: &rangekvpb.PutCmd{Key: req.Key, Value: req.Value}}}
	_, resp.Header, err = k.write(ctx, "put", req.Key, cmd, req.Header)
	return resp, err
}

func (k *kvServer) Delete(ctx context.Context, req *rangekvpb.DeleteRequest) (resp *rangekvpb.DeleteResponse, err error) {
	resp = &rangekvpb.DeleteResponse{}
	defer func(t time.Time) { k.s.observe("delete", t, resp.GetHeader(), err) }(time.Now())
	if err := k.s.cfg.limits().ValidateDelete(req); err != nil {
		return nil, err
	}
	cmd := &rangekvpb.Command{Cmd: &rangekvpb.Command_Delete{Delete: &rangekvpb.DeleteCmd{Key: req.Key}}}
	_, resp.Header, err = k.write(ctx, "delete", req.Key, cmd, req.Header)
	return resp, err
}

func (k *kvServer) Cas(ctx context.Context, req *rangekvpb.CasRequest) (resp *rangekvpb.CasResponse, err error) {
	resp = &rangekvpb.CasResponse{}
	defer func(t time.Time) { k.s.observe("cas", t, resp.GetHeader(), err) }(time.Now())
	if err := k.s.cfg.limits().ValidateCas(req); err != nil {
		return nil, err
	}
	cmd := &rangekvpb.Command{Cmd: &rangekvpb.Command_Cas{Cas: &rangekvpb.CasCmd{
		Key: req.Key, Expected: req.Expected, ExpectAbsent: req.ExpectAbsent, NewValue: req.NewValue}}}
	var v any
	v, resp.Header, err = k.write(ctx, "cas", req.Key, cmd, req.Header)
	if cr, ok := v.(*casResult); ok {
		resp.Swapped, resp.Found, resp.Value = cr.swapped, cr.found, cr.value
	}
	return resp, err
}

func (k *kvServer) Incr(ctx context.Context, req *rangekvpb.IncrRequest) (resp *rangekvpb.IncrResponse, err error) {
	resp = &rangekvpb.IncrResponse{}
	defer func(t time.Time) { k.s.observe("incr", t, resp.GetHeader(), err) }(time.Now())
	if err := k.s.cfg.limits().ValidateIncr(req); err != nil {
		return nil, err
	}
	cmd := &rangekvpb.Command{Cmd: &rangekvpb.Command_Incr{Incr: &rangekvpb.IncrCmd{Key: req.Key, Delta: req.Delta}}}
	var v any
	v, resp.Header, err = k.write(ctx, "incr", req.Key, cmd, req.Header)
	if n, ok := v.(int64); ok {
		resp.Value = n
	}
	return resp, err
}

func (k *kvServer) Scan(ctx context.Context, req *rangekvpb.ScanRequest) (resp *rangekvpb.ScanResponse, err error) {
	s := k.s
	resp = &rangekvpb.ScanResponse{Header: &rangekvpb.ResponseHeader{}}
	defer func(t time.Time) { s.observe("scan", t, resp.GetHeader(), err) }(time.Now())
	if err := s.cfg.limits().ValidateScan(req); err != nil {
		return nil, err
	}
	r, rerr := s.route(req.Header, req.StartKey)
	if rerr == nil {
		r.reads.Add(1)
		rerr, err = s.readBarrier(ctx, r, req.GetHeader().GetConsistency())
	}
	if rerr != nil || err != nil {
		resp.Header.Error = rerr
		return resp, err
	}
	d := r.Descriptor()
	if !containsKey(d, req.StartKey) {
		resp.Header.Error = keyNotInRange(req.StartKey, d)
		return resp, nil
	}
	limit := int(req.Limit)
	if limit == 0 {
		limit = s.cfg.MaxScanLimit
	}
	// Clip the scan to the range; if the range ends first, resume there.
	end := req.EndKey
	clipped := false
	if len(d.EndKey) > 0 && (len(end) == 0 || string(end) > string(d.EndKey)) {
		end, clipped = d.EndKey, true
	}
	lo, hi := keys.UserSpan(req.StartKey, end)
	resp.Header.AppliedIndex = r.appliedIndex.Load()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	defer it.Close()
	bytes := 0
	for valid := it.First(); valid; valid = it.Next() {
		uk, err := keys.DecodeUserKey(it.Key())
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if len(resp.Pairs) == limit {
			resp.ResumeKey = append([]byte(nil), uk...)
			return resp, nil
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		// A page also ends at maxScanBytes (the client resumes).
		if bytes += len(uk) + len(v); len(resp.Pairs) > 0 && bytes > maxScanBytes {
			resp.ResumeKey = append([]byte(nil), uk...)
			return resp, nil
		}
		resp.Pairs = append(resp.Pairs, &rangekvpb.KeyValue{Key: append([]byte(nil), uk...), Value: append([]byte(nil), v...)})
	}
	if err := it.Error(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if clipped {
		resp.ResumeKey = append([]byte(nil), d.EndKey...)
	}
	return resp, nil
}

// isDataCommand reports the commands that may share a log entry with
// others (rangeraft.Proposal.Batchable): client writes, whose effect does
// not depend on their log index. Splits, truncations and the like get an
// entry each.
func isDataCommand(cmd *rangekvpb.Command) bool {
	switch cmd.Cmd.(type) {
	case *rangekvpb.Command_Put, *rangekvpb.Command_Delete, *rangekvpb.Command_Cas, *rangekvpb.Command_Incr, *rangekvpb.Command_Batch:
		return true
	}
	return false
}
