// Serving one mux stream (the BatchCommands RPC).

package kvmux

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	// maxMuxInFlight bounds the calls of one stream running at once;
	// past it the stream stops reading (and flow control holds the
	// sender) until calls finish.
	maxMuxInFlight = 4096
	// maxMuxResponseBytes is about the most one response message
	// carries (one answer larger than it goes alone).
	maxMuxResponseBytes = 4 << 20
)

// Serve serves one router's stream with the unary handlers of kv until the
// router closes it (calls in flight then still finish and are answered),
// the connection breaks or the server stops.
func Serve(stream rangekvpb.KV_BatchCommandsServer, kv rangekvpb.KVServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := &muxOutbox{stream: stream, broken: cancel}
	// Calls run on workers that live as long as the stream: a call
	// handed to an idle worker costs no new goroutine (and no stack
	// growth, which per call was most of a read's scheduling cost).
	work := make(chan *rangekvpb.BatchCommandsRequest_Request) // unbuffered: taken by an idle worker
	var workers sync.WaitGroup
	n := 0
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
			case work <- req:
				continue
			default:
			}
			if n < maxMuxInFlight {
				n++
				workers.Go(func() {
					out.push(serveOne(ctx, kv, req))
					for req := range work {
						out.push(serveOne(ctx, kv, req))
					}
				})
				continue
			}
			select { // every worker busy: wait for one (the stream stops reading)
			case work <- req:
			case <-ctx.Done():
				recvErr = ctx.Err()
				break recv
			}
		}
	}
	close(work)
	workers.Wait() // every answer is sent (or the stream broke)
	if errors.Is(recvErr, io.EOF) {
		return out.err()
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

// muxOutbox sends a stream's answers. There is no sending goroutine:
// the call that pushes an answer while no one is sending becomes the
// sender and sends what has collected until nothing is left, so one call
// alone costs no extra hand-off, and answers that finish while a message
// is being sent leave together in the next one.
type muxOutbox struct {
	stream rangekvpb.KV_BatchCommandsServer
	broken func() // called once a send fails
	mu     struct {
		sync.Mutex
		ready   []*rangekvpb.BatchCommandsResponse_Response
		sending bool
		err     error
	}
}

func (o *muxOutbox) push(r *rangekvpb.BatchCommandsResponse_Response) {
	o.mu.Lock()
	o.mu.ready = append(o.mu.ready, r)
	if o.mu.sending || o.mu.err != nil {
		o.mu.Unlock()
		return
	}
	o.mu.sending = true
	o.mu.Unlock()
	// Calls finish in bursts (one Raft entry completes many writes): let
	// the others that just became runnable add their answers, so that
	// they leave in this message rather than one message each. With no
	// one else runnable this returns at once.
	runtime.Gosched()
	o.mu.Lock()
	for len(o.mu.ready) > 0 {
		ready := o.mu.ready
		o.mu.ready = nil
		o.mu.Unlock()
		err := o.send(ready)
		o.mu.Lock()
		if err != nil {
			o.mu.err, o.mu.ready = err, nil
			o.broken() // the stream is broken: calls in flight need not finish
		}
	}
	o.mu.sending = false
	o.mu.Unlock()
}

// send sends ready in messages of about maxMuxResponseBytes.
func (o *muxOutbox) send(ready []*rangekvpb.BatchCommandsResponse_Response) error {
	for len(ready) > 0 {
		n, size := 0, 0
		for n < len(ready) && (n == 0 || size < maxMuxResponseBytes) {
			size += proto.Size(ready[n])
			n++
		}
		if err := o.stream.Send(&rangekvpb.BatchCommandsResponse{Responses: ready[:n]}); err != nil {
			return err
		}
		ready = ready[n:]
	}
	return nil
}

// err is the failure of a send, if one failed.
func (o *muxOutbox) err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mu.err
}
