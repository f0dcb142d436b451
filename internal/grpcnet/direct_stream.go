// Direct's streams: the caller's end (grpc.ClientStream) and the
// handler's (grpc.ServerStream), for client, server and bidi streams.

package grpcnet

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// NewStream implements grpc.ClientConnInterface: it opens a stream (the
// StreamOpen envelope) without waiting for the server. The stream ends
// when the handler's StreamEnd is delivered, a message of it is lost,
// ctx ends, the connection is closed or an end is Down.
func (c *directConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	call, err := c.begin(ctx, method, desc)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() {
		call.finish(status.FromContextError(ctx.Err()).Err(), true, nil)
	})
	call.mu.Lock()
	if call.mu.ended {
		stop()
	} else {
		call.mu.stopCtx = stop
	}
	call.mu.Unlock()
	call.post(StreamOpen, true, nil, nil, call.arrive)
	return &clientStream{c: call, ctx: ctx}, nil
}

// clientStream is the caller's end of a Direct stream. As with gRPC, one
// goroutine may send while another receives, but no two send (or receive)
// at once.
type clientStream struct {
	c   *Call
	ctx context.Context
}

// Header returns no metadata: Direct sends no headers.
func (s *clientStream) Header() (metadata.MD, error) { return nil, nil }

// Trailer returns no metadata: Direct sends no trailers.
func (s *clientStream) Trailer() metadata.MD { return nil }

func (s *clientStream) Context() context.Context { return s.ctx }

// CloseSend sends the CloseSend envelope (once; not after the stream
// ended).
func (s *clientStream) CloseSend() error {
	c := s.c
	c.mu.Lock()
	if c.mu.closeSent || c.mu.ended {
		c.mu.Unlock()
		return nil
	}
	c.mu.closeSent = true
	c.mu.Unlock()
	c.post(CloseSend, true, nil, nil, func() {
		c.mu.Lock()
		if c.mu.ended || c.mu.serverDone {
			c.mu.Unlock()
			return
		}
		c.mu.serverEOF = true
		c.mu.Unlock()
		wake(c.serverWake)
	})
	return nil
}

// SendMsg sends a clone of m (the receiver takes the clone over). It does not wait for the receiver; after
// the stream ended it returns io.EOF (RecvMsg tells why), as gRPC does.
func (s *clientStream) SendMsg(m any) error {
	c := s.c
	pm, ok := m.(proto.Message)
	if !ok {
		return status.Error(codes.Internal, errNotProto.Error())
	}
	c.mu.Lock()
	ended, closeSent := c.mu.ended, c.mu.closeSent
	c.mu.Unlock()
	switch {
	case ended:
		return io.EOF
	case closeSent:
		return status.Error(codes.Internal, "SendMsg called after CloseSend")
	}
	msg := proto.Clone(pm)
	q := &inflight{msg: msg}
	c.post(StreamMsg, true, msg, nil, func() {
		c.mu.Lock()
		if c.mu.ended || c.mu.serverDone {
			c.mu.Unlock()
			return
		}
		c.deliverLocked(q, &c.mu.toServer)
		c.mu.Unlock()
		wake(c.serverWake)
	})
	return nil
}

// RecvMsg waits for the next message from the server (into m), or
// returns io.EOF when the handler returned OK and every message was
// received, or the status the stream ended with. For a stream whose
// server sends one message (client streaming), it returns that message
// once the handler's status is in, as gRPC does.
func (s *clientStream) RecvMsg(m any) error {
	c := s.c
	pm, ok := m.(proto.Message)
	if !ok {
		return status.Error(codes.Internal, errNotProto.Error())
	}
	for {
		c.mu.Lock()
		var q *inflight
		var last bool
		var err error
		ready := true
		switch {
		case c.desc.ServerStreams && len(c.mu.toClient) > 0:
			q, last = receiveLocked(&c.mu.toClient)
		case !c.mu.ended:
			ready = false
		case c.mu.err != nil:
			err = c.mu.err
		case len(c.mu.toClient) > 0:
			q, last = receiveLocked(&c.mu.toClient)
		default:
			err = io.EOF
		}
		c.mu.Unlock()
		if !ready {
			<-c.clientWake
			continue
		}
		if err != nil {
			return err
		}
		receive(pm, q, last)
		return nil
	}
}

// serveStream runs a stream's handler and sends its StreamEnd.
func (c *Call) serveStream(ctx context.Context, impl any, sd *grpc.StreamDesc) {
	err := sd.Handler(impl, &serverStream{c: c, ctx: ctx})
	c.serverDone()
	err = handlerStatus(err)
	c.post(StreamEnd, false, nil, err, func() { c.finish(err, false, nil) })
}

// serverStream is the handler's end of a Direct stream.
type serverStream struct {
	c   *Call
	ctx context.Context
}

func (s *serverStream) SetHeader(metadata.MD) error  { return nil }
func (s *serverStream) SendHeader(metadata.MD) error { return nil }
func (s *serverStream) SetTrailer(metadata.MD)       {}
func (s *serverStream) Context() context.Context     { return s.ctx }

// SendMsg sends a clone of m to the caller without waiting for it; it
// fails once the stream is broken.
func (s *serverStream) SendMsg(m any) error {
	c := s.c
	pm, ok := m.(proto.Message)
	if !ok {
		return status.Error(codes.Internal, errNotProto.Error())
	}
	c.mu.Lock()
	err := c.mu.serverErr
	c.mu.Unlock()
	if err != nil {
		return err
	}
	msg := proto.Clone(pm)
	q := &inflight{msg: msg}
	c.post(StreamMsg, false, msg, nil, func() {
		c.mu.Lock()
		if c.mu.ended {
			c.mu.Unlock()
			return
		}
		c.deliverLocked(q, &c.mu.toClient)
		c.mu.Unlock()
		wake(c.clientWake)
	})
	return nil
}

// RecvMsg waits for the next message from the caller (into m); io.EOF
// after the caller's CloseSend, the break's status once the stream is
// broken.
func (s *serverStream) RecvMsg(m any) error {
	c := s.c
	pm, ok := m.(proto.Message)
	if !ok {
		return status.Error(codes.Internal, errNotProto.Error())
	}
	for {
		c.mu.Lock()
		var q *inflight
		var last bool
		var err error
		switch {
		case len(c.mu.toServer) > 0:
			q, last = receiveLocked(&c.mu.toServer)
		case c.mu.serverErr != nil:
			err = c.mu.serverErr
		case c.mu.serverEOF:
			err = io.EOF
		}
		c.mu.Unlock()
		if q == nil && err == nil {
			<-c.serverWake
			continue
		}
		if err != nil {
			return err
		}
		receive(pm, q, last)
		return nil
	}
}
