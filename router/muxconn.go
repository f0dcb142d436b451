// muxKV: the KV calls to one store, multiplexed on the store's mux stream
// (the BatchCommands RPC, whose wire name says "batch" for compatibility;
// it is not the atomic Batch write). Calls that wait for the store at the
// same moment leave in one message (like TiKV's client-go batch
// commands), which is what makes hundreds of concurrent callers cheap:
// gRPC's per-call cost is paid per message, not per call. Each call still
// has its own deadline and outcome.

package router

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	// maxMuxCalls and maxMuxBytes bound one request message.
	maxMuxCalls = 256
	maxMuxBytes = 4 << 20
	// unaryCallBytes: a call larger than this goes as its own unary RPC,
	// so that it neither delays the small calls behind it nor needs a
	// message of its own size on the stream.
	unaryCallBytes = 1 << 20
)

// notSentError is the failure of a call that certainly never left this
// process (its stream failed or could not open before it was sent): a
// write that failed so is known not to have applied and may be retried.
// It carries the gRPC code Unavailable.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }
func (e *notSentError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Error())
}

// notSent reports whether err is a call's failure before it was sent.
func notSent(err error) bool {
	var ns *notSentError
	return errors.As(err, &ns)
}

// lostError is the failure of a call that was sent on a stream which then
// broke before the call's answer came back: the store may have run it, so
// a write that failed so may have applied, whatever code the broken
// stream carried (Unavailable, but also Internal, ResourceExhausted,
// Unknown, Canceled...). It carries the gRPC code Unavailable; Unwrap
// gives the stream's own failure.
type lostError struct{ err error }

func (e *lostError) Error() string {
	return "sent, then the stream to the store broke: " + e.err.Error()
}
func (e *lostError) Unwrap() error { return e.err }
func (e *lostError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Error())
}

// lost reports whether err is a sent call's failure by its broken stream.
func lost(err error) bool {
	var le *lostError
	return errors.As(err, &le)
}

// answerError is a call's failure as the store itself answered it, on a
// stream that carried the answer: a definite outcome unless its code says
// the store's own wait ended (storeAnswerMayHaveApplied). It is the
// store's gRPC status (status.Code and status.Convert see it unchanged).
type answerError struct{ st *status.Status }

func (e *answerError) Error() string              { return e.st.Err().Error() }
func (e *answerError) GRPCStatus() *status.Status { return e.st }

// errMuxUnsupported: the store does not serve BatchCommands (an older
// version); calls then go unary.
var errMuxUnsupported = errors.New("store does not serve BatchCommands")

// muxKV implements rangekvpb.KVClient for one store connection. Its
// streams' goroutines (a sender and a receiver each) are stopped by close.
type muxKV struct {
	unary rangekvpb.KVClient
	cc    grpc.ClientConnInterface
	wg    sync.WaitGroup // the goroutines of every stream opened
	mu    struct {
		sync.Mutex
		cur         *muxStream // nil or failed: the next call opens one
		closed      bool
		unsupported bool
	}
}

func newMuxKV(cc grpc.ClientConnInterface) *muxKV {
	return &muxKV{unary: rangekvpb.NewKVClient(cc), cc: cc}
}

// close stops the current stream (its calls fail) and waits for the
// goroutines of every stream.
func (b *muxKV) close() {
	b.mu.Lock()
	b.mu.closed = true
	cur := b.mu.cur
	b.mu.Unlock()
	if cur != nil {
		cur.fail(errors.New("router: client closed"))
	}
	b.wg.Wait()
}

// stream returns the open stream, opening one if there is none; ctx bounds
// the wait for the opening only.
func (b *muxKV) stream(ctx context.Context) (*muxStream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.mu.closed:
		return nil, &notSentError{errors.New("router: client closed")}
	case b.mu.unsupported:
		return nil, errMuxUnsupported
	case b.mu.cur != nil && !b.mu.cur.failed():
		return b.mu.cur, nil
	}
	// The stream lives past this caller; ctx only limits its opening.
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	st, err := rangekvpb.NewKVClient(b.cc).BatchCommands(sctx)
	if !stop() {
		cancel()
		return nil, &notSentError{status.FromContextError(ctx.Err()).Err()}
	}
	if err != nil {
		cancel()
		return nil, &notSentError{err}
	}
	b.mu.cur = newMuxStream(st, cancel, &b.wg, func() {
		b.mu.Lock()
		b.mu.unsupported = true
		b.mu.Unlock()
	})
	return b.mu.cur, nil
}

// newMuxStream starts the sender and receiver of st (counted in wg);
// cancel ends st; onUnsupported runs when the store refuses the stream.
func newMuxStream(st rangekvpb.KV_BatchCommandsClient, cancel context.CancelFunc, wg *sync.WaitGroup, onUnsupported func()) *muxStream {
	s := &muxStream{st: st, cancel: cancel, kick: make(chan struct{}, 1), done: make(chan struct{}), onUnsupported: onUnsupported}
	s.mu.pending = map[uint64]*muxCall{}
	wg.Go(s.sendLoop)
	wg.Go(s.recvLoop)
	return s
}

// call sends req on the stream and waits for its answer or ctx. A call
// the store failed comes back as its gRPC status; errMuxUnsupported
// (wrapped or not) means the store has no BatchCommands.
func (b *muxKV) call(ctx context.Context, req *rangekvpb.BatchCommandsRequest_Request, size int) (*rangekvpb.BatchCommandsResponse_Response, error) {
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return nil, status.FromContextError(context.DeadlineExceeded).Err()
		}
		req.TimeoutUs = max(left.Microseconds(), 1)
	}
	s, err := b.stream(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := s.do(ctx, req, size)
	if err != nil {
		return nil, err
	}
	if resp.GetCode() != 0 {
		return nil, &answerError{st: status.New(codes.Code(resp.GetCode()), resp.GetMessage())}
	}
	return resp, nil
}

// muxCall is one call waiting for its answer.
type muxCall struct {
	req  *rangekvpb.BatchCommandsRequest_Request
	size int
	out  chan muxResult // capacity 1
}

type muxResult struct {
	resp *rangekvpb.BatchCommandsResponse_Response
	err  error
}

// muxStream is one open mux (BatchCommands) stream: queued calls wait for the
// sender; sent calls wait in pending for the receiver. Once failed, it
// stays failed and every call still in it gets the failure.
type muxStream struct {
	st            rangekvpb.KV_BatchCommandsClient
	cancel        context.CancelFunc
	kick          chan struct{} // capacity 1: calls queued with no one sending
	done          chan struct{} // closed on failure
	onUnsupported func()
	mu            struct {
		sync.Mutex
		nextID  uint64
		queue   []*muxCall
		pending map[uint64]*muxCall
		sending bool // a goroutine is in sendSome's Send
		err     error
	}
}

func (s *muxStream) failed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// do queues req (about size bytes) and waits for its answer, or for ctx (the call is then
// forgotten; a late answer is dropped).
func (s *muxStream) do(ctx context.Context, req *rangekvpb.BatchCommandsRequest_Request, size int) (*rangekvpb.BatchCommandsResponse_Response, error) {
	c := &muxCall{req: req, size: size + 16, out: make(chan muxResult, 1)}
	s.mu.Lock()
	if err := s.mu.err; err != nil {
		s.mu.Unlock()
		return nil, &notSentError{err}
	}
	s.mu.nextID++
	req.Id = s.mu.nextID
	s.mu.queue = append(s.mu.queue, c)
	busy := len(s.mu.pending) > 0
	s.mu.Unlock()
	if busy {
		// Answers arrive in bursts and wake their callers together, who
		// often call again at once: let them queue too, so that they
		// leave in one message. A lone caller does not wait.
		runtime.Gosched()
	}
	s.sendSome(true)
	select {
	case r := <-c.out:
		return r.resp, r.err
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.mu.pending, req.Id)
		s.mu.Unlock()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// sendLoop sends what callers left queued (sendSome), until the stream
// fails.
func (s *muxStream) sendLoop() {
	for {
		select {
		case <-s.kick:
		case <-s.done:
			return
		}
		s.sendSome(false)
	}
}

// sendSome sends queued calls, at most maxMuxCalls and maxMuxBytes a
// message, unless someone else is sending: one message for a caller
// (once), which then hands what is left to sendLoop, or until the queue is
// empty for sendLoop. A call alone thus leaves from its caller's own
// goroutine; calls that arrive while a message is being sent wait and
// leave together in the next one.
func (s *muxStream) sendSome(once bool) {
	s.mu.Lock()
	if s.mu.sending || s.mu.err != nil {
		s.mu.Unlock()
		return
	}
	s.mu.sending = true
	for {
		n, size := 0, 0
		for n < len(s.mu.queue) && n < maxMuxCalls && (n == 0 || size+s.mu.queue[n].size <= maxMuxBytes) {
			size += s.mu.queue[n].size
			n++
		}
		if n == 0 {
			break
		}
		msg := &rangekvpb.BatchCommandsRequest{Requests: make([]*rangekvpb.BatchCommandsRequest_Request, n)}
		for i, c := range s.mu.queue[:n] {
			msg.Requests[i] = c.req
			s.mu.pending[c.req.Id] = c
		}
		s.mu.queue = append(s.mu.queue[:0:0], s.mu.queue[n:]...)
		s.mu.Unlock()
		err := s.st.Send(msg)
		s.mu.Lock()
		if err != nil {
			s.mu.sending = false
			s.mu.Unlock()
			s.fail(err) // the real cause comes from RecvMsg
			return
		}
		if once {
			break
		}
	}
	s.mu.sending = false
	more := len(s.mu.queue) > 0
	s.mu.Unlock()
	if more {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// recvLoop hands answers to their calls until the stream fails.
func (s *muxStream) recvLoop() {
	for {
		msg, err := s.st.Recv()
		if err != nil {
			if status.Code(err) == codes.Unimplemented {
				s.onUnsupported()
				s.fail(errMuxUnsupported)
				return
			}
			s.fail(err)
			return
		}
		s.mu.Lock()
		for _, r := range msg.GetResponses() {
			if c, ok := s.mu.pending[r.GetId()]; ok {
				delete(s.mu.pending, r.GetId())
				c.out <- muxResult{resp: r}
			}
		}
		s.mu.Unlock()
	}
}

// fail ends the stream: calls not yet sent fail as not sent; calls sent
// fail as lost (lostError: their outcome is unknown, whatever err's code),
// except when the store refused the stream itself (then nothing ran:
// errMuxUnsupported, and the call goes unary).
func (s *muxStream) fail(err error) {
	s.mu.Lock()
	if s.mu.err != nil {
		s.mu.Unlock()
		return
	}
	s.mu.err = err
	queue, pending := s.mu.queue, s.mu.pending
	s.mu.queue, s.mu.pending = nil, map[uint64]*muxCall{}
	close(s.done)
	s.mu.Unlock()
	s.cancel()
	for _, c := range queue {
		c.out <- muxResult{err: &notSentError{err}}
	}
	sentErr := err
	if !errors.Is(err, errMuxUnsupported) {
		sentErr = &lostError{err: err}
	}
	for _, c := range pending {
		c.out <- muxResult{err: sentErr}
	}
}

// The rangekvpb.KVClient methods. A call larger than unaryCallBytes goes
// as a unary RPC; call options apply to unary RPCs only.

func (b *muxKV) Get(ctx context.Context, in *rangekvpb.GetRequest, opts ...grpc.CallOption) (*rangekvpb.GetResponse, error) {
	return muxed(ctx, b, in, &rangekvpb.BatchCommandsRequest_Request{Cmd: &rangekvpb.BatchCommandsRequest_Request_Get{Get: in}},
		(*rangekvpb.BatchCommandsResponse_Response).GetGet, func() (*rangekvpb.GetResponse, error) { return b.unary.Get(ctx, in, opts...) })
}

func (b *muxKV) Put(ctx context.Context, in *rangekvpb.PutRequest, opts ...grpc.CallOption) (*rangekvpb.PutResponse, error) {
	return muxed(ctx, b, in, &rangekvpb.BatchCommandsRequest_Request{Cmd: &rangekvpb.BatchCommandsRequest_Request_Put{Put: in}},
		(*rangekvpb.BatchCommandsResponse_Response).GetPut, func() (*rangekvpb.PutResponse, error) { return b.unary.Put(ctx, in, opts...) })
}

func (b *muxKV) Delete(ctx context.Context, in *rangekvpb.DeleteRequest, opts ...grpc.CallOption) (*rangekvpb.DeleteResponse, error) {
	return muxed(ctx, b, in, &rangekvpb.BatchCommandsRequest_Request{Cmd: &rangekvpb.BatchCommandsRequest_Request_Delete{Delete: in}},
		(*rangekvpb.BatchCommandsResponse_Response).GetDelete, func() (*rangekvpb.DeleteResponse, error) { return b.unary.Delete(ctx, in, opts...) })
}

func (b *muxKV) Cas(ctx context.Context, in *rangekvpb.CasRequest, opts ...grpc.CallOption) (*rangekvpb.CasResponse, error) {
	return muxed(ctx, b, in, &rangekvpb.BatchCommandsRequest_Request{Cmd: &rangekvpb.BatchCommandsRequest_Request_Cas{Cas: in}},
		(*rangekvpb.BatchCommandsResponse_Response).GetCas, func() (*rangekvpb.CasResponse, error) { return b.unary.Cas(ctx, in, opts...) })
}

func (b *muxKV) Incr(ctx context.Context, in *rangekvpb.IncrRequest, opts ...grpc.CallOption) (*rangekvpb.IncrResponse, error) {
	return muxed(ctx, b, in, &rangekvpb.BatchCommandsRequest_Request{Cmd: &rangekvpb.BatchCommandsRequest_Request_Incr{Incr: in}},
		(*rangekvpb.BatchCommandsResponse_Response).GetIncr, func() (*rangekvpb.IncrResponse, error) { return b.unary.Incr(ctx, in, opts...) })
}

func (b *muxKV) Scan(ctx context.Context, in *rangekvpb.ScanRequest, opts ...grpc.CallOption) (*rangekvpb.ScanResponse, error) {
	return muxed(ctx, b, in, &rangekvpb.BatchCommandsRequest_Request{Cmd: &rangekvpb.BatchCommandsRequest_Request_Scan{Scan: in}},
		(*rangekvpb.BatchCommandsResponse_Response).GetScan, func() (*rangekvpb.ScanResponse, error) { return b.unary.Scan(ctx, in, opts...) })
}

func (b *muxKV) Batch(ctx context.Context, in *rangekvpb.BatchRequest, opts ...grpc.CallOption) (*rangekvpb.BatchResponse, error) {
	return muxed(ctx, b, in, &rangekvpb.BatchCommandsRequest_Request{Cmd: &rangekvpb.BatchCommandsRequest_Request_Batch{Batch: in}},
		(*rangekvpb.BatchCommandsResponse_Response).GetBatch, func() (*rangekvpb.BatchResponse, error) { return b.unary.Batch(ctx, in, opts...) })
}

func (b *muxKV) BatchCommands(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[rangekvpb.BatchCommandsRequest, rangekvpb.BatchCommandsResponse], error) {
	return b.unary.BatchCommands(ctx, opts...)
}

// muxed makes one call of in (wrapped as req) on b's stream, unwrapping
// the answer with get, or as the unary RPC when in is large or the store
// serves no stream.
func muxed[In proto.Message, Out any](ctx context.Context, b *muxKV, in In, req *rangekvpb.BatchCommandsRequest_Request,
	get func(*rangekvpb.BatchCommandsResponse_Response) Out, unary func() (Out, error)) (Out, error) {
	var zero Out
	size := proto.Size(in)
	if size > unaryCallBytes {
		return unary()
	}
	resp, err := b.call(ctx, req, size)
	if errors.Is(err, errMuxUnsupported) {
		return unary()
	}
	if err != nil {
		return zero, err
	}
	out := get(resp)
	if any(out) == any(zero) {
		return zero, status.Errorf(codes.Internal, "batch commands: the store answered call %d with another kind of response", req.GetId())
	}
	return out, nil
}
