// Serving one BatchCommands stream.
package kvbatch

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	// maxBatchInFlight bounds the calls of one stream running at once;
	// past it the stream stops reading (and flow control holds the
	// sender) until calls finish.
	maxBatchInFlight = 4096
	// maxBatchResponseBytes is about the most one response message
	// carries (one answer larger than it goes alone).
	maxBatchResponseBytes = 4 << 20
)

// Serve serves one router's stream with the unary handlers of kv until the
// router closes it (calls in flight then still finish and are answered),
// the connection breaks or the server stops.
func Serve(stream rangekvpb.KV_BatchCommandsServer, kv rangekvpb.KVServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := &batchOutbox{kick: make(chan struct{}, 1)}
	sent := make(chan error, 1)
	go func() { // owned here: ends when out is closed or ctx is done
		err := out.run(ctx, stream)
		if err != nil {
			cancel() // the stream is broken: calls in flight need not finish
		}
		sent <- err
	}()
	var calls sync.WaitGroup
	sem := make(chan struct{}, maxBatchInFlight)
	var recvErr error
recv:
	for {
		msg, err := stream.Recv()
		if err != nil {
			recvErr = err
			break
		}
		for _, req := range msg.GetRequests() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				recvErr = ctx.Err()
				break recv
			}
			calls.Go(func() {
				defer func() { <-sem }()
				out.push(serveOne(ctx, kv, req))
			})
		}
	}
	calls.Wait()
	out.close()
	sendErr := <-sent
	if errors.Is(recvErr, io.EOF) {
		return sendErr
	}
	return recvErr
}

// serveOne runs one call of a stream through the unary handler of its
// kind, under the caller's deadline.
func serveOne(ctx context.Context, k rangekvpb.KVServer, req *rangekvpb.BatchCommandsRequest_Request) *rangekvpb.BatchCommandsResponse_Response {
	if t := req.GetTimeoutUs(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Microsecond)
		defer cancel()
	}
	out := &rangekvpb.BatchCommandsResponse_Response{Id: req.GetId()}
	var err error
	switch c := req.GetCmd().(type) {
	case *rangekvpb.BatchCommandsRequest_Request_Get:
		var r *rangekvpb.GetResponse
		if r, err = k.Get(ctx, c.Get); err == nil {
			out.Cmd = &rangekvpb.BatchCommandsResponse_Response_Get{Get: r}
		}
	case *rangekvpb.BatchCommandsRequest_Request_Put:
		var r *rangekvpb.PutResponse
		if r, err = k.Put(ctx, c.Put); err == nil {
			out.Cmd = &rangekvpb.BatchCommandsResponse_Response_Put{Put: r}
		}
	case *rangekvpb.BatchCommandsRequest_Request_Delete:
		var r *rangekvpb.DeleteResponse
		if r, err = k.Delete(ctx, c.Delete); err == nil {
			out.Cmd = &rangekvpb.BatchCommandsResponse_Response_Delete{Delete: r}
		}
	case *rangekvpb.BatchCommandsRequest_Request_Cas:
		var r *rangekvpb.CasResponse
		if r, err = k.Cas(ctx, c.Cas); err == nil {
			out.Cmd = &rangekvpb.BatchCommandsResponse_Response_Cas{Cas: r}
		}
	case *rangekvpb.BatchCommandsRequest_Request_Incr:
		var r *rangekvpb.IncrResponse
		if r, err = k.Incr(ctx, c.Incr); err == nil {
			out.Cmd = &rangekvpb.BatchCommandsResponse_Response_Incr{Incr: r}
		}
	case *rangekvpb.BatchCommandsRequest_Request_Scan:
		var r *rangekvpb.ScanResponse
		if r, err = k.Scan(ctx, c.Scan); err == nil {
			out.Cmd = &rangekvpb.BatchCommandsResponse_Response_Scan{Scan: r}
		}
	case *rangekvpb.BatchCommandsRequest_Request_Batch:
		var r *rangekvpb.BatchResponse
		if r, err = k.Batch(ctx, c.Batch); err == nil {
			out.Cmd = &rangekvpb.BatchCommandsResponse_Response_Batch{Batch: r}
		}
	default:
		err = status.Errorf(codes.InvalidArgument, "batch commands: call %d names no command", req.GetId())
	}
	if err != nil {
		st, ok := status.FromError(err)
		if !ok && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			st = status.FromContextError(err)
		}
		out.Code, out.Message = uint32(st.Code()), st.Message()
	}
	return out
}

// batchOutbox collects a stream's answers; run sends what has collected
// whenever it wakes, so answers that finish together leave together.
type batchOutbox struct {
	kick chan struct{} // capacity 1: "there is something to send"
	mu   struct {
		sync.Mutex
		ready  []*rangekvpb.BatchCommandsResponse_Response
		closed bool
	}
}

func (o *batchOutbox) push(r *rangekvpb.BatchCommandsResponse_Response) {
	o.mu.Lock()
	o.mu.ready = append(o.mu.ready, r)
	o.mu.Unlock()
	o.wake()
}

// close makes run return once it has sent everything pushed before.
func (o *batchOutbox) close() {
	o.mu.Lock()
	o.mu.closed = true
	o.mu.Unlock()
	o.wake()
}

func (o *batchOutbox) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// run sends answers until close (nil) or a failed send or ctx (the error).
func (o *batchOutbox) run(ctx context.Context, stream rangekvpb.KV_BatchCommandsServer) error {
	for {
		select {
		case <-o.kick:
		case <-ctx.Done():
			return ctx.Err()
		}
		o.mu.Lock()
		ready, closed := o.mu.ready, o.mu.closed
		o.mu.ready = nil
		o.mu.Unlock()
		for len(ready) > 0 {
			n, size := 0, 0
			for n < len(ready) && (n == 0 || size < maxBatchResponseBytes) {
				size += proto.Size(ready[n])
				n++
			}
			if err := stream.Send(&rangekvpb.BatchCommandsResponse{Responses: ready[:n]}); err != nil {
				return err
			}
			ready = ready[n:]
		}
		if closed {
			return nil
		}
	}
}
