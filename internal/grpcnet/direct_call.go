// Direct's calls: the Wire and its Envelopes, a call's state on both
// sides, delivering a call's first message to its handler, and unary
// calls.

package grpcnet

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Wire carries a Direct's envelopes: Send hands it one, and it calls the
// envelope's Deliver or Fail when it chooses, on any goroutine. Send must
// not block and must not wait for the delivery. A wire keeps the
// envelopes of one Call in the order they were sent (as one TCP
// connection would); envelopes of different calls may go in any order.
type Wire interface {
	Send(e *Envelope)
}

// Kind is what an Envelope carries.
type Kind int

const (
	// Request is a unary call's request (to the server).
	Request Kind = iota + 1
	// Response is a unary call's response (Msg) or error status (Err),
	// to the client.
	Response
	// StreamOpen opens a stream (to the server): its handler starts when
	// it is delivered. It carries no message.
	StreamOpen
	// StreamMsg is one message of a stream, in either direction
	// (ToServer).
	StreamMsg
	// CloseSend is the client's end of sending (to the server: its
	// RecvMsg then reports io.EOF).
	CloseSend
	// StreamEnd is the server handler's return, with its status in Err
	// (nil: OK), to the client.
	StreamEnd
)

func (k Kind) String() string {
	switch k {
	case Request:
		return "Request"
	case Response:
		return "Response"
	case StreamOpen:
		return "StreamOpen"
	case StreamMsg:
		return "StreamMsg"
	case CloseSend:
		return "CloseSend"
	case StreamEnd:
		return "StreamEnd"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Envelope is one message of a Direct on its Wire. Its fields are set
// before Send and never change.
type Envelope struct {
	// From and To are the process addresses of the call's ends: From the
	// Node the connection was dialled from, To the dial target, whichever
	// way this envelope goes.
	From, To string
	// Method is the full gRPC method ("/rangekv.Raft/RaftStream").
	Method string
	Kind   Kind
	// ToServer is the direction: true from the caller to the server.
	ToServer bool
	// Call is the unary call or stream the envelope belongs to.
	Call *Call
	// Msg is the message, already a clone of the sender's, which the
	// receiver takes over when it receives it (its fields are moved into
	// the receiver's message, not copied again); nil for StreamOpen,
	// CloseSend, StreamEnd and a Response with an error. The wire may
	// read it until it calls Deliver, never change it.
	Msg proto.Message
	// Err is the status of a Response or StreamEnd (nil: OK).
	Err error

	// The wire calls exactly one of these, exactly once; Deliver may be
	// called a second time only for Kind == StreamMsg, when the wire
	// duplicates the message (the receiver then gets it twice), and
	// only before the receiver has received the first delivery (right
	// after it, as the simulator does): the receipt of the last delivery
	// takes the message itself. A second call otherwise panics. Once the call has ended (lost, cancelled,
	// its connection closed, an end Down), both do nothing.
	//
	// Deliver hands the envelope to its receiver without blocking; a
	// delivered Request or StreamOpen starts the handler on a new
	// goroutine (a call to an address nothing listens on then fails
	// Unavailable, to an unknown method Unimplemented).
	Deliver func()
	// Fail loses the envelope, like a dropped TCP connection: the call
	// ends with Unavailable (err, if not nil, says why) for the caller,
	// and a stream breaks on both sides (the handler's context is
	// cancelled).
	Fail func(err error)
}

// Call is one unary call or one stream of a Direct: what the wire keeps
// envelopes in order by. Its exported fields are set when the call starts
// and never change.
type Call struct {
	// ID numbers the calls of a Direct from 1, in the order they start.
	ID uint64
	// From, To and Method are those of the call's envelopes.
	From, To, Method string
	// Stream is true for a stream, false for a unary call.
	Stream bool

	conn     *directConn
	desc     *grpc.StreamDesc // nil for a unary call
	md       metadata.MD      // the caller's outgoing metadata
	deadline time.Time        // the caller's, zero for none
	req      proto.Message    // a unary call's request

	// ln is the listener that took the call (guarded by Direct.mu).
	ln *directListener

	// done is closed when the call has ended for the caller; clientWake
	// and serverWake (capacity 1) wake a waiting RecvMsg of either side.
	done                   chan struct{}
	clientWake, serverWake chan struct{}

	mu struct {
		sync.Mutex
		// ended: the caller has its outcome, err (nil: OK) and, for a
		// unary call, resp.
		ended bool
		err   error
		resp  proto.Message
		// toClient and toServer are the stream messages delivered and
		// not yet received.
		toClient, toServer []*inflight
		// closeSent: the caller called CloseSend; serverEOF: it was
		// delivered.
		closeSent, serverEOF bool
		// serverErr: the server side is broken (its RecvMsg and SendMsg
		// fail with it); serverDone: the handler returned; cancel
		// cancels the handler's context.
		serverErr  error
		serverDone bool
		cancel     context.CancelFunc
		// stopCtx stops watching a stream caller's context.
		stopCtx func() bool
	}
}

func newCall(ctx context.Context, conn *directConn, method string, desc *grpc.StreamDesc) *Call {
	c := &Call{From: conn.node.addr, To: conn.to, Method: method, Stream: desc != nil, conn: conn, desc: desc,
		done: make(chan struct{}), clientWake: make(chan struct{}, 1), serverWake: make(chan struct{}, 1)}
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		c.md = md.Copy()
	}
	c.deadline, _ = ctx.Deadline()
	return c
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// finish ends the call for the caller with err (nil: OK) and resp (a unary
// call's response), unless it has ended; breakServer also breaks the
// server side with err (its context is cancelled) and drops every message
// not yet received. It reports whether it ended the call. Direct.mu must
// not be held.
func (c *Call) finish(err error, breakServer bool, resp proto.Message) bool {
	c.mu.Lock()
	if c.mu.ended {
		c.mu.Unlock()
		return false
	}
	c.mu.ended, c.mu.err, c.mu.resp = true, err, resp
	stopCtx := c.mu.stopCtx
	var cancel context.CancelFunc
	if breakServer {
		c.mu.toClient, c.mu.toServer = nil, nil
		if !c.mu.serverDone && c.mu.serverErr == nil {
			c.mu.serverErr = err
		}
		cancel = c.mu.cancel
	}
	c.mu.Unlock()
	close(c.done)
	wake(c.clientWake)
	wake(c.serverWake)
	if cancel != nil {
		cancel()
	}
	if stopCtx != nil {
		stopCtx()
	}
	d := c.conn.node.d
	d.mu.Lock()
	delete(d.calls, c)
	d.mu.Unlock()
	return true
}

// post makes the envelope of one message of c and hands it to the wire
// (or delivers it at once without one). deliver runs on delivery.
func (c *Call) post(kind Kind, toServer bool, msg proto.Message, err error, deliver func()) {
	e := &Envelope{From: c.From, To: c.To, Method: c.Method, Kind: kind, ToServer: toServer, Call: c, Msg: msg, Err: err}
	// used: 0 pending, 1 delivered, 2 failed.
	var used atomic.Int32
	e.Deliver = func() {
		if !used.CompareAndSwap(0, 1) && (kind != StreamMsg || used.Load() != 1) {
			panic(fmt.Sprintf("grpcnet: the wire delivered a %v of call %d (%s) after it had delivered or failed it", kind, c.ID, c.Method))
		}
		deliver()
	}
	e.Fail = func(ferr error) {
		if !used.CompareAndSwap(0, 2) {
			panic(fmt.Sprintf("grpcnet: the wire failed a %v of call %d (%s) after it had delivered or failed it", kind, c.ID, c.Method))
		}
		why := "lost"
		if ferr != nil {
			why = ferr.Error()
		}
		c.finish(status.Errorf(codes.Unavailable, "grpcnet: %v of %s from %s to %s: %s", kind, c.Method, c.From, c.To, why), true, nil)
	}
	d := c.conn.node.d
	if d.wire == nil {
		e.Deliver()
		return
	}
	d.wire.Send(e)
}

// arrive delivers c's first message (Request or StreamOpen) to the
// listener at c.To: the handler starts now or, before the server
// serves, when it does.
func (c *Call) arrive() {
	d := c.conn.node.d
	d.mu.Lock()
	c.mu.Lock()
	ended := c.mu.ended
	c.mu.Unlock()
	if ended {
		d.mu.Unlock()
		return
	}
	l := d.listeners[c.To]
	if l == nil {
		d.mu.Unlock()
		c.finish(status.Errorf(codes.Unavailable, "grpcnet: nothing listens at %s", c.To), true, nil)
		return
	}
	c.ln = l
	if !l.serving {
		l.pending = append(l.pending, c)
		d.mu.Unlock()
		return
	}
	f, ok := d.startLocked(c, l)
	d.mu.Unlock()
	if !ok {
		f.c.finish(f.err, true, nil)
	}
}

// failedCall is a call that could not start, to be finished once
// Direct.mu is released.
type failedCall struct {
	c   *Call
	err error
}

// startLocked starts c's handler on l on a new goroutine. d.mu is held.
func (d *Direct) startLocked(c *Call, l *directListener) (failedCall, bool) {
	svc, md, sd, err := l.lookup(c.Method, c.Stream)
	if err != nil {
		return failedCall{c, err}, false
	}
	ctx := context.Background()
	var cancel context.CancelFunc
	if c.deadline.IsZero() {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithDeadline(ctx, c.deadline)
	}
	if c.md != nil {
		ctx = metadata.NewIncomingContext(ctx, c.md.Copy())
	}
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: directAddr(c.From), LocalAddr: directAddr(c.To)})
	ctx = grpc.NewContextWithServerTransportStream(ctx, &transportStream{method: c.Method})
	c.mu.Lock()
	if c.mu.ended {
		c.mu.Unlock()
		cancel()
		return failedCall{}, true
	}
	c.mu.cancel = cancel
	c.mu.Unlock()
	l.handlers++
	go func() {
		defer d.handlerDone(l)
		if sd != nil {
			c.serveStream(ctx, svc.impl, sd)
		} else {
			c.serveUnary(ctx, svc.impl, md)
		}
	}()
	return failedCall{}, true
}

func (d *Direct) handlerDone(l *directListener) {
	d.mu.Lock()
	l.handlers--
	if l.handlers == 0 {
		d.idle.Broadcast()
	}
	d.mu.Unlock()
}

// serverDone notes that the handler returned and cancels its context.
func (c *Call) serverDone() {
	c.mu.Lock()
	c.mu.serverDone = true
	cancel := c.mu.cancel
	c.mu.Unlock()
	cancel()
}

// handlerStatus is what the caller gets for a handler's error, as gRPC
// makes it: a status error as is, a context error as its code, anything
// else Unknown.
func handlerStatus(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.FromContextError(err).Err()
}

func (c *Call) serveUnary(ctx context.Context, impl any, md *grpc.MethodDesc) {
	// The handler decodes the request once (generated handlers do): it
	// takes the request's clone over.
	decoded := false
	dec := func(v any) error {
		m, ok := v.(proto.Message)
		if !ok {
			return errNotProto
		}
		if decoded {
			return status.Error(codes.Internal, "grpcnet: the request was decoded twice")
		}
		decoded = true
		moveInto(m, c.req)
		return nil
	}
	resp, err := md.Handler(impl, ctx, dec, nil)
	c.serverDone()
	var msg proto.Message
	if err == nil {
		m, ok := resp.(proto.Message)
		if ok && m != nil {
			msg = proto.Clone(m)
		} else {
			err = status.Errorf(codes.Internal, "grpcnet: %s returned no proto message", c.Method)
		}
	}
	err = handlerStatus(err)
	c.post(Response, false, msg, err, func() { c.finish(err, false, msg) })
}

// Invoke implements grpc.ClientConnInterface: a unary call. It returns
// when the response is delivered, a message of the call is lost, ctx
// ends, the connection is closed or an end is Down.
func (c *directConn) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	in, ok := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok || !ok2 {
		return status.Error(codes.Internal, errNotProto.Error())
	}
	call, err := c.begin(ctx, method, nil)
	if err != nil {
		return err
	}
	call.req = proto.Clone(in)
	call.post(Request, true, call.req, nil, call.arrive)
	select {
	case <-call.done:
	case <-ctx.Done():
		call.finish(status.FromContextError(ctx.Err()).Err(), true, nil)
	}
	call.mu.Lock()
	err, resp := call.mu.err, call.mu.resp
	call.mu.Unlock()
	if err != nil {
		return err
	}
	moveInto(out, resp)
	return nil
}

// inflight is a stream message delivered and not yet received, the
// sender's clone: each delivery is received once, the last receipt
// moves the clone into the receiver's message (moveInto) and an earlier
// one (of a duplicate) copies it. Guarded by the Call's mu.
type inflight struct {
	msg proto.Message
	// n counts the deliveries not yet received; taken is set once the
	// clone was moved to a receiver.
	n     int
	taken bool
}

// deliverLocked queues q for its receiver (one more delivery); c.mu is
// held.
func (c *Call) deliverLocked(q *inflight, queue *[]*inflight) {
	if q.taken {
		panic(fmt.Sprintf("grpcnet: the wire duplicated a message of call %d (%s) after its receiver took it", c.ID, c.Method))
	}
	q.n++
	*queue = append(*queue, q)
}

// receiveLocked takes the next of queue for pm: it reports whether pm
// may take the clone over (the last delivery of it). c.mu is held.
func receiveLocked(queue *[]*inflight) (q *inflight, last bool) {
	q = (*queue)[0]
	*queue = (*queue)[1:]
	q.n--
	q.taken = q.n == 0
	return q, q.taken
}

// receive fills pm from q (c.mu not held): moved on its last delivery,
// copied before.
func receive(pm proto.Message, q *inflight, last bool) {
	if last {
		moveInto(pm, q.msg)
		return
	}
	proto.Reset(pm)
	proto.Merge(pm, q.msg)
}

// moveInto makes dst the message src is by moving src's struct into it:
// its nested messages, lists and bytes are shared, not copied, and src
// must not be used afterwards (which is what makes the shallow copy,
// which protobuf otherwise forbids, safe: a generated message's internal
// state is its type's and its size cache's, both the same for the two).
// A src of another Go type than dst is merged (copied) instead.
func moveInto(dst, src proto.Message) {
	dv, sv := reflect.ValueOf(dst), reflect.ValueOf(src)
	if dv.Type() != sv.Type() || dv.Kind() != reflect.Pointer || dv.IsNil() || sv.IsNil() {
		proto.Reset(dst)
		proto.Merge(dst, src)
		return
	}
	dv.Elem().Set(sv.Elem())
}

// transportStream gives handlers grpc.Method; headers and trailers are
// accepted and dropped.
type transportStream struct{ method string }

func (s *transportStream) Method() string               { return s.method }
func (s *transportStream) SetHeader(metadata.MD) error  { return nil }
func (s *transportStream) SendHeader(metadata.MD) error { return nil }
func (s *transportStream) SetTrailer(metadata.MD) error { return nil }
