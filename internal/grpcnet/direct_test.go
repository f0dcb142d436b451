// Tests of Direct's message path: unary calls and the three kinds of
// stream reach the registered handlers through the Wire, in order, with
// cloned messages, the caller's metadata and its address as the peer.

package grpcnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// testServer is the grpc.testing TestService: every handler notes what
// its context carried. A payload of "block" waits for the context to end;
// "fail" returns FailedPrecondition.
type testServer struct {
	testpb.UnimplementedTestServiceServer
	// ended receives what each handler returned with once its context
	// ended ("unary: context canceled").
	ended chan string

	mu struct {
		sync.Mutex
		seen     []string // "method who peer" per handler
		lastReq  *testpb.SimpleRequest
		lastResp *testpb.SimpleResponse
	}
}

func newTestServer() *testServer { return &testServer{ended: make(chan string, 16)} }

func (s *testServer) note(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	who := strings.Join(md.Get("who"), ",")
	p, _ := peer.FromContext(ctx)
	method, _ := grpc.Method(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.seen = append(s.mu.seen, fmt.Sprintf("%s %s %v", method, who, p.Addr))
	return who
}

func (s *testServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mu.seen)
}

// waitEnd waits for a handler to end on its context.
func (s *testServer) waitEnd(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *testServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	who := s.note(ctx)
	switch body := string(req.GetPayload().GetBody()); body {
	case "block":
		err := s.waitEnd(ctx)
		s.ended <- "unary: " + err.Error()
		return nil, err
	case "fail":
		return nil, status.Error(codes.FailedPrecondition, "asked to fail")
	}
	resp := &testpb.SimpleResponse{Payload: &testpb.Payload{Body: []byte(string(req.GetPayload().GetBody()) + "!")}, Username: who}
	// The handler's request is its own: changing it changes nothing of
	// the caller's.
	req.Payload.Body[0] = 'X'
	s.mu.Lock()
	s.mu.lastReq, s.mu.lastResp = req, resp
	s.mu.Unlock()
	return resp, nil
}

// StreamingOutputCall sends one message per response parameter, its body
// the parameter's index.
func (s *testServer) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	s.note(stream.Context())
	for i := range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: fmt.Appendf(nil, "%d", i)}}); err != nil {
			return err
		}
	}
	return nil
}

// StreamingInputCall answers the total size of the payloads received.
func (s *testServer) StreamingInputCall(stream testpb.TestService_StreamingInputCallServer) error {
	s.note(stream.Context())
	n := 0
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(n)})
		}
		if err != nil {
			s.ended <- "input: " + err.Error()
			return err
		}
		n += len(req.GetPayload().GetBody())
	}
}

// FullDuplexCall echoes each payload with "!" until the caller closes.
func (s *testServer) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	s.note(stream.Context())
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			<-stream.Context().Done() // a broken stream cancels the handler
			s.ended <- "bidi: " + err.Error()
			return err
		}
		switch body := string(req.GetPayload().GetBody()); body {
		case "fail":
			return status.Error(codes.FailedPrecondition, "asked to fail")
		case "block":
			err := s.waitEnd(stream.Context())
			s.ended <- "bidi: " + err.Error()
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: append(req.GetPayload().GetBody(), '!')}}); err != nil {
			return err
		}
	}
}

// serveDirect serves srv's TestService on node addr of d; the server
// stops at the end of the test.
func serveDirect(t *testing.T, d *Direct, addr string, impl *testServer) *grpc.Server {
	t.Helper()
	ln, err := d.Node(addr).Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(Registrar(srv, ln), impl)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return srv
}

// heldWire keeps every envelope until the test delivers or fails it, and
// logs them all.
type heldWire struct {
	mu   sync.Mutex
	held []*Envelope
	log  []*Envelope
}

func (w *heldWire) Send(e *Envelope) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held = append(w.held, e)
	w.log = append(w.log, e)
}

// next takes the oldest envelope held (nil when none is).
func (w *heldWire) next() *Envelope {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.held) == 0 {
		return nil
	}
	e := w.held[0]
	w.held = w.held[1:]
	return e
}

// pump delivers, oldest first, until nothing is held and every goroutine
// of the bubble waits.
func (w *heldWire) pump() {
	for {
		synctest.Wait()
		e := w.next()
		if e == nil {
			return
		}
		e.Deliver()
	}
}

// describe lists the log as "kind direction call".
func (w *heldWire) describe() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, e := range w.log {
		dir := "<-"
		if e.ToServer {
			dir = "->"
		}
		out = append(out, fmt.Sprintf("%d %v %s", e.Call.ID, e.Kind, dir))
	}
	return out
}

func payload(s string) *testpb.Payload { return &testpb.Payload{Body: []byte(s)} }

func wantLog(t *testing.T, w *heldWire, want ...string) {
	t.Helper()
	if got := w.describe(); !slices.Equal(got, want) {
		t.Fatalf("envelopes:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// A unary call is a Request and a Response on the wire, from the dialling
// node to the target; the handler sees the caller's metadata and address
// and its own copies of the messages.
func TestDirectUnary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &heldWire{}
		d := NewDirect(w)
		impl := newTestServer()
		serveDirect(t, d, "server:1", impl)
		conn, err := d.Node("client:1").Dial("server:1")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := &testpb.SimpleRequest{Payload: payload("hello")}
		var resp *testpb.SimpleResponse
		done := make(chan error, 1)
		go func() {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "who", "alice")
			var err error
			resp, err = testpb.NewTestServiceClient(conn).UnaryCall(ctx, req)
			done <- err
		}()
		synctest.Wait()
		e := w.next()
		if e.Kind != Request || !e.ToServer || e.From != "client:1" || e.To != "server:1" ||
			e.Method != "/grpc.testing.TestService/UnaryCall" || e.Call.Stream {
			t.Fatalf("first envelope %+v", e)
		}
		if e.Msg == req || string(e.Msg.(*testpb.SimpleRequest).GetPayload().GetBody()) != "hello" {
			t.Fatal("the request on the wire is not a clone of the caller's")
		}
		e.Deliver()
		w.pump()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if string(resp.GetPayload().GetBody()) != "hello!" || resp.Username != "alice" {
			t.Fatalf("response %v", resp)
		}
		if got := string(req.Payload.Body); got != "hello" {
			t.Fatalf("the handler's change reached the caller's request: %q", got)
		}
		impl.mu.Lock()
		impl.mu.lastResp.Payload.Body[0] = 'Y'
		impl.mu.Unlock()
		if got := string(resp.Payload.Body); got != "hello!" {
			t.Fatalf("the handler's change of its response reached the caller: %q", got)
		}
		if got, want := impl.seen(), []string{"/grpc.testing.TestService/UnaryCall alice client:1"}; !slices.Equal(got, want) {
			t.Fatalf("handler saw %q, want %q", got, want)
		}
		wantLog(t, w, "1 Request ->", "1 Response <-")
		resp2 := w.log[1].Msg.(*testpb.SimpleResponse)
		if resp2 == resp || string(resp2.Payload.Body) != "hello!" {
			t.Fatal("the response on the wire is not the caller's own copy")
		}

		// A handler's error comes back as its status, on a Response
		// without a message.
		go func() {
			_, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: payload("fail")})
			done <- err
		}()
		w.pump()
		if err := <-done; status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("failing handler: %v", err)
		}
		if e := w.log[3]; e.Kind != Response || e.Msg != nil || status.Code(e.Err) != codes.FailedPrecondition {
			t.Fatalf("response of a failed call %+v", e)
		}
	})
}

// Server, client and bidi streams: an opening, the messages each way in
// order, the caller's CloseSend and the handler's end, all on one Call.
func TestDirectStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &heldWire{}
		d := NewDirect(w)
		impl := newTestServer()
		serveDirect(t, d, "server:1", impl)
		conn, _ := d.Node("client:1").Dial("server:1")
		defer conn.Close()
		client := testpb.NewTestServiceClient(conn)
		ctx := context.Background()

		// Server streaming.
		done := make(chan error, 1)
		var got []string
		go func() {
			st, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
				ResponseParameters: []*testpb.ResponseParameters{{}, {}, {}}})
			if err != nil {
				done <- err
				return
			}
			for {
				m, err := st.Recv()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						done <- err
					}
					break
				}
				got = append(got, string(m.GetPayload().GetBody()))
			}
			done <- nil
		}()
		w.pump()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{"0", "1", "2"}) {
			t.Fatalf("server stream gave %q", got)
		}
		wantLog(t, w, "1 StreamOpen ->", "1 StreamMsg ->", "1 CloseSend ->",
			"1 StreamMsg <-", "1 StreamMsg <-", "1 StreamMsg <-", "1 StreamEnd <-")

		// Client streaming.
		w.log = nil
		var total int32
		go func() {
			st, err := client.StreamingInputCall(ctx)
			if err != nil {
				done <- err
				return
			}
			for _, b := range []string{"a", "bb", "ccc"} {
				if err := st.Send(&testpb.StreamingInputCallRequest{Payload: payload(b)}); err != nil {
					done <- err
					return
				}
			}
			resp, err := st.CloseAndRecv()
			total = resp.GetAggregatedPayloadSize()
			done <- err
		}()
		w.pump()
		if err := <-done; err != nil || total != 6 {
			t.Fatalf("client stream: total %d, %v", total, err)
		}
		wantLog(t, w, "2 StreamOpen ->", "2 StreamMsg ->", "2 StreamMsg ->", "2 StreamMsg ->", "2 CloseSend ->",
			"2 StreamMsg <-", "2 StreamEnd <-")

		// Bidi: each message answered before the next is sent; a
		// handler's error status ends the stream after what it sent.
		w.log = nil
		go func() {
			st, err := client.FullDuplexCall(ctx)
			if err != nil {
				done <- err
				return
			}
			got = nil
			for _, b := range []string{"x", "y"} {
				if err := st.Send(&testpb.StreamingOutputCallRequest{Payload: payload(b)}); err != nil {
					done <- err
					return
				}
				m, err := st.Recv()
				if err != nil {
					done <- err
					return
				}
				got = append(got, string(m.GetPayload().GetBody()))
			}
			if err := st.Send(&testpb.StreamingOutputCallRequest{Payload: payload("fail")}); err != nil {
				done <- err
				return
			}
			_, err = st.Recv()
			done <- err
		}()
		w.pump()
		if err := <-done; status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("bidi stream ended with %v, want the handler's FailedPrecondition", err)
		}
		if !slices.Equal(got, []string{"x!", "y!"}) {
			t.Fatalf("bidi stream gave %q", got)
		}
		wantLog(t, w, "3 StreamOpen ->", "3 StreamMsg ->", "3 StreamMsg <-", "3 StreamMsg ->", "3 StreamMsg <-",
			"3 StreamMsg ->", "3 StreamEnd <-")
		if e := w.log[len(w.log)-1]; status.Code(e.Err) != codes.FailedPrecondition {
			t.Fatalf("StreamEnd carries %v", e.Err)
		}
		for _, s := range impl.seen() {
			if !strings.HasSuffix(s, " client:1") {
				t.Fatalf("a stream handler's peer is not the caller: %q", s)
			}
		}
	})
}

// Without a wire every message is delivered at once on the sender's
// goroutine: the handler has the request when Send returns. Calls that
// arrive before the server serves wait for it (as in a TCP backlog), and
// an unknown method is Unimplemented.
func TestDirectNilWire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewDirect(nil)
		ln, err := d.Node("server:1").Listen("server:1")
		if err != nil {
			t.Fatal(err)
		}
		conn, _ := d.Node("client:1").Dial("server:1")
		defer conn.Close()
		client := testpb.NewTestServiceClient(conn)
		impl := newTestServer()
		st, err := client.FullDuplexCall(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{"1", "2", "3"} {
			if err := st.Send(&testpb.StreamingOutputCallRequest{Payload: payload(b)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if len(impl.seen()) != 0 {
			t.Fatal("a handler ran before the server served")
		}
		srv := grpc.NewServer()
		testpb.RegisterTestServiceServer(Registrar(srv, ln), impl)
		served := make(chan struct{})
		go func() { defer close(served); _ = srv.Serve(ln) }()
		var got []string
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(m.GetPayload().GetBody()))
		}
		if !slices.Equal(got, []string{"1!", "2!", "3!"}) {
			t.Fatalf("got %q", got)
		}
		if _, err := client.EmptyCall(context.Background(), &testpb.Empty{}); status.Code(err) != codes.Unimplemented {
			t.Fatalf("unimplemented method: %v", err)
		}
		if _, err := testpb.NewReconnectServiceClient(conn).Start(context.Background(), &testpb.ReconnectParams{}); status.Code(err) != codes.Unimplemented {
			t.Fatalf("unregistered service: %v", err)
		}
		srv.Stop()
		<-served
	})
}
