// The KV gRPC service, a thin adapter: validate the request, find the
// replica (store_replicas.go), call its propose or read (replica_propose.go,
// replica_read.go), and encode the outcome, range errors as data; and the
// request metrics.

package store

import (
	"context"
	"time"

	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/kvmux"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

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
		k.duration.Observe(s.now().Sub(start).Seconds())
		return
	}
	s.metrics.kvRequests.WithLabelValues(op, result).Inc()
	s.metrics.kvDuration.WithLabelValues(op).Observe(s.now().Sub(start).Seconds())
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

func (k *kvServer) Get(ctx context.Context, req *rangekvpb.GetRequest) (resp *rangekvpb.GetResponse, err error) {
	s := k.s
	resp = &rangekvpb.GetResponse{Header: &rangekvpb.ResponseHeader{}}
	defer func(t time.Time) { s.observe("get", t, resp.GetHeader(), err) }(s.now())
	if err := s.cfg.limits().ValidateGet(req); err != nil {
		return nil, err
	}
	r, rerr := s.route(req.Header, req.Key)
	if rerr == nil {
		r.reads.Add(1)
		rerr, err = r.readBarrier(ctx, req.GetHeader().GetConsistency())
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
	v, err := r.readView(resp.Header)
	if v == nil {
		return resp, err
	}
	defer v.close()
	resp.Value, resp.Found, err = v.get(req.Key)
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
	v, rerr, err := r.propose(ctx, cmd)
	hdr.Error = rerr
	return v, hdr, err
}

func (k *kvServer) Put(ctx context.Context, req *rangekvpb.PutRequest) (resp *rangekvpb.PutResponse, err error) {
	resp = &rangekvpb.PutResponse{}
	defer func(t time.Time) { k.s.observe("put", t, resp.GetHeader(), err) }(k.s.now())
	if err := k.s.cfg.limits().ValidatePut(req); err != nil {
		return nil, err
	}
	cmd := &rangekvpb.Command{Cmd: &rangekvpb.Command_Put{Put: &rangekvpb.PutCmd{Key: req.Key, Value: req.Value}}}
	_, resp.Header, err = k.write(ctx, "put", req.Key, cmd, req.Header)
	return resp, err
}

func (k *kvServer) Delete(ctx context.Context, req *rangekvpb.DeleteRequest) (resp *rangekvpb.DeleteResponse, err error) {
	resp = &rangekvpb.DeleteResponse{}
	defer func(t time.Time) { k.s.observe("delete", t, resp.GetHeader(), err) }(k.s.now())
	if err := k.s.cfg.limits().ValidateDelete(req); err != nil {
		return nil, err
	}
	cmd := &rangekvpb.Command{Cmd: &rangekvpb.Command_Delete{Delete: &rangekvpb.DeleteCmd{Key: req.Key}}}
	_, resp.Header, err = k.write(ctx, "delete", req.Key, cmd, req.Header)
	return resp, err
}

func (k *kvServer) Cas(ctx context.Context, req *rangekvpb.CasRequest) (resp *rangekvpb.CasResponse, err error) {
	resp = &rangekvpb.CasResponse{}
	defer func(t time.Time) { k.s.observe("cas", t, resp.GetHeader(), err) }(k.s.now())
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
	defer func(t time.Time) { k.s.observe("incr", t, resp.GetHeader(), err) }(k.s.now())
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
	defer func(t time.Time) { s.observe("scan", t, resp.GetHeader(), err) }(s.now())
	if err := s.cfg.limits().ValidateScan(req); err != nil {
		return nil, err
	}
	r, rerr := s.route(req.Header, req.StartKey)
	if rerr == nil {
		r.reads.Add(1)
		rerr, err = r.readBarrier(ctx, req.GetHeader().GetConsistency())
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
	v, err := r.readView(resp.Header)
	if v == nil {
		return resp, err
	}
	defer v.close()
	paged, err := v.scan(resp, req.StartKey, end, limit)
	if err != nil {
		return nil, err
	}
	if !paged && clipped {
		resp.ResumeKey = append([]byte(nil), d.EndKey...)
	}
	return resp, nil
}

func (k *kvServer) Batch(ctx context.Context, req *rangekvpb.BatchRequest) (resp *rangekvpb.BatchResponse, err error) {
	s := k.s
	resp = &rangekvpb.BatchResponse{Header: &rangekvpb.ResponseHeader{}}
	defer func(t time.Time) { s.observe("batch", t, resp.GetHeader(), err) }(s.now())
	if err := s.cfg.limits().ValidateBatch(req); err != nil {
		return nil, err
	}
	r, rerr := s.routeBatch(req.Header, req.Ops)
	if rerr == nil && addsData(req.Ops) {
		rerr = s.diskFull() // refused before proposing: not applied
	}
	if rerr != nil {
		resp.Header.Error = rerr
		return resp, nil
	}
	r.writes.Add(1)
	cmd := &rangekvpb.Command{Epoch: r.Descriptor().GetEpoch(), Cmd: &rangekvpb.Command_Batch{Batch: &rangekvpb.BatchCmd{Ops: req.Ops}}}
	_, rerr, err = r.propose(ctx, cmd)
	resp.Header.Error = rerr
	if rerr == nil && err == nil {
		resp.Header.AppliedIndex = r.appliedIndex.Load()
	}
	return resp, err
}
