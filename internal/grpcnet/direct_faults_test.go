// Tests of how Direct's calls end: a lost message, a crashed process
// (Down), the caller's cancellation, a closed connection, a stopped
// server; and a wire that reorders across calls but keeps each call's
// order.

package grpcnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// unary starts a UnaryCall with body on conn and returns where its error
// will be.
func unary(ctx context.Context, conn Conn, body string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{Payload: payload(body)})
		done <- err
	}()
	return done
}

// bidi opens a FullDuplexCall on conn (without waiting for anything).
func bidi(t *testing.T, ctx context.Context, conn Conn) testpb.TestService_FullDuplexCallClient {
	t.Helper()
	st, err := testpb.NewTestServiceClient(conn).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func send(t *testing.T, st testpb.TestService_FullDuplexCallClient, body string) {
	t.Helper()
	if err := st.Send(&testpb.StreamingOutputCallRequest{Payload: payload(body)}); err != nil {
		t.Fatal(err)
	}
}

// recv starts a Recv on st and returns where its body or error will be.
func recv(st testpb.TestService_FullDuplexCallClient) <-chan string {
	out := make(chan string, 1)
	go func() {
		m, err := st.Recv()
		if err != nil {
			out <- "error " + status.Code(err).String()
			return
		}
		out <- string(m.GetPayload().GetBody())
	}()
	return out
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
}

// wantEnded checks what the handlers that ended on their context
// returned (in any order).
func wantEnded(t *testing.T, impl *testServer, want ...string) {
	t.Helper()
	var got []string
	for range want {
		select {
		case s := <-impl.ended:
			got = append(got, s)
		default:
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("handlers ended with %q, want %q", got, want)
	}
}

// A lost request or response fails a unary call with Unavailable; a lost
// stream message breaks the stream on both sides; envelopes of a broken
// call do nothing when delivered; a duplicated stream message arrives
// twice.
func TestDirectLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &heldWire{}
		d := NewDirect(w)
		impl := newTestServer()
		serveDirect(t, d, "server:1", impl)
		conn, _ := d.Node("client:1").Dial("server:1")
		defer conn.Close()
		ctx := context.Background()

		done := unary(ctx, conn, "a")
		synctest.Wait()
		w.next().Fail(errors.New("cable cut"))
		err := <-done
		wantCode(t, "lost request", err, codes.Unavailable)
		if !strings.Contains(err.Error(), "cable cut") {
			t.Fatalf("the loss does not say why: %v", err)
		}
		if len(impl.seen()) != 0 {
			t.Fatal("a lost request reached the handler")
		}

		done = unary(ctx, conn, "b")
		synctest.Wait()
		w.next().Deliver()
		synctest.Wait()
		if e := w.next(); e.Kind != Response {
			t.Fatalf("%v, want the response", e.Kind)
		} else {
			e.Fail(nil)
		}
		wantCode(t, "lost response", <-done, codes.Unavailable)

		// A duplicated message is answered twice.
		st := bidi(t, ctx, conn)
		send(t, st, "x")
		synctest.Wait()
		w.next().Deliver() // open
		synctest.Wait()
		dup := w.next()
		dup.Deliver()
		dup.Deliver()
		w.pump()
		if a, b := <-recv(st), <-recv(st); a != "x!" || b != "x!" {
			t.Fatalf("duplicate answered %q, %q", a, b)
		}

		// A lost message breaks the stream both ways; the message after
		// it, still on the wire, does nothing when delivered.
		send(t, st, "y")
		send(t, st, "z")
		synctest.Wait()
		got := recv(st)
		w.next().Fail(nil)
		if s := <-got; s != "error Unavailable" {
			t.Fatalf("caller's Recv after a loss: %s", s)
		}
		synctest.Wait()
		wantEnded(t, impl, "bidi: rpc error: code = Unavailable desc = grpcnet: StreamMsg of /grpc.testing.TestService/FullDuplexCall from client:1 to server:1: lost")
		w.next().Deliver()
		if err := st.Send(&testpb.StreamingOutputCallRequest{}); !errors.Is(err, io.EOF) {
			t.Fatalf("Send on a broken stream: %v, want io.EOF", err)
		}

		// The wire must not deliver a unary message twice.
		done = unary(ctx, conn, "c")
		synctest.Wait()
		e := w.next()
		e.Deliver()
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("a second Deliver of a Request did not panic")
				}
			}()
			e.Deliver()
		}()
		w.pump()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// Down ends every call to and from the process, both sides, and its
// listener; the crashed process's node stays dead, a new one works.
func TestDirectDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewDirect(nil)
		impl := newTestServer()
		serveDirect(t, d, "server:1", impl)
		client := d.Node("client:1")
		conn, _ := client.Dial("server:1")
		defer conn.Close()
		ctx := context.Background()

		blocked := unary(ctx, conn, "block")
		st := bidi(t, ctx, conn)
		send(t, st, "a")
		if s := <-recv(st); s != "a!" {
			t.Fatal(s)
		}
		got := recv(st)
		synctest.Wait()
		if !conn.(*directConn).Ready() {
			t.Fatal("a connection to a serving process is not ready")
		}
		d.Down("server:1")
		wantCode(t, "call in flight to a crashed process", <-blocked, codes.Unavailable)
		if s := <-got; s != "error Unavailable" {
			t.Fatalf("open stream to a crashed process: %s", s)
		}
		synctest.Wait()
		wantEnded(t, impl, "unary: context canceled",
			"bidi: rpc error: code = Unavailable desc = grpcnet: process server:1 is down")
		wantCode(t, "call to a crashed process", <-unary(ctx, conn, "b"), codes.Unavailable)
		if conn.(*directConn).Ready() {
			t.Fatal("a connection to a crashed process is ready")
		}

		// The restarted process takes a new node; the old one is dead.
		if _, err := d.Node("server:1").Listen("server:1"); err != nil {
			t.Fatalf("restart: %v", err)
		}
		if _, err := client.Listen("server:1"); err == nil {
			t.Fatal("listen on a taken address")
		}
		d.Down("server:1")
		d.Down("client:1")
		impl2 := newTestServer()
		serveDirect(t, d, "server:1", impl2)
		wantCode(t, "call from a crashed process", <-unary(ctx, conn, "c"), codes.Unavailable)
		if _, err := client.Listen("client:1"); err == nil {
			t.Fatal("a crashed process's node listened")
		}
		conn2, _ := d.Node("client:1").Dial("server:1")
		defer conn2.Close()
		if err := <-unary(ctx, conn2, "d"); err != nil {
			t.Fatalf("call from the restarted process: %v", err)
		}

		// A crash of the caller breaks its streams on the server too.
		st = bidi(t, ctx, conn2)
		send(t, st, "e")
		if s := <-recv(st); s != "e!" {
			t.Fatal(s)
		}
		d.Down("client:1")
		synctest.Wait()
		wantEnded(t, impl2, "bidi: rpc error: code = Unavailable desc = grpcnet: process client:1 is down")
		if s := <-recv(st); s != "error Unavailable" {
			t.Fatalf("a crashed caller's own stream: %s", s)
		}
	})
}

// The caller's cancellation ends a call and a stream and cancels their
// handlers; closing the connection ends its calls with Canceled;
// stopping the server ends its calls with Unavailable and returns only
// when their handlers have.
func TestDirectEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewDirect(nil)
		impl := newTestServer()
		srv := serveDirect(t, d, "server:1", impl)
		conn, _ := d.Node("client:1").Dial("server:1")

		ctx, cancel := context.WithCancel(context.Background())
		blocked := unary(ctx, conn, "block")
		st := bidi(t, ctx, conn)
		send(t, st, "block")
		got := recv(st)
		synctest.Wait()
		cancel()
		wantCode(t, "cancelled call", <-blocked, codes.Canceled)
		if s := <-got; s != "error Canceled" {
			t.Fatalf("cancelled stream: %s", s)
		}
		synctest.Wait()
		wantEnded(t, impl, "unary: context canceled", "bidi: context canceled")
		if _, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.Canceled {
			t.Fatalf("call with an ended context: %v", err)
		}

		ctx = context.Background()
		blocked = unary(ctx, conn, "block")
		synctest.Wait()
		conn.Close()
		wantCode(t, "call on a closed connection", <-blocked, codes.Canceled)
		wantCode(t, "new call on a closed connection", <-unary(ctx, conn, "a"), codes.Canceled)
		synctest.Wait()
		wantEnded(t, impl, "unary: context canceled")

		conn, _ = d.Node("client:1").Dial("server:1")
		defer conn.Close()
		blocked = unary(ctx, conn, "block")
		st = bidi(t, ctx, conn)
		send(t, st, "block")
		synctest.Wait()
		srv.Stop()
		// Stop returned: both handlers have.
		wantEnded(t, impl, "unary: context canceled", "bidi: context canceled")
		wantCode(t, "call to a stopped server", <-blocked, codes.Unavailable)
		if s := <-recv(st); s != "error Unavailable" {
			t.Fatalf("stream of a stopped server: %s", s)
		}
	})
}

// shuffleWire delivers the envelopes held in a seeded random order
// across calls, each call's in the order sent.
type shuffleWire struct {
	mu    sync.Mutex
	calls []*Call // with envelopes held, in the order they first had one
	held  map[*Call][]*Envelope
	sent  []uint64 // call IDs in send order
	order []uint64 // call IDs in delivery order
}

func (w *shuffleWire) Send(e *Envelope) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.held[e.Call]) == 0 {
		w.calls = append(w.calls, e.Call)
	}
	w.held[e.Call] = append(w.held[e.Call], e)
	w.sent = append(w.sent, e.Call.ID)
}

// deliverOne delivers the oldest envelope of a random call; false when
// none is held.
func (w *shuffleWire) deliverOne(r *rand.Rand) bool {
	w.mu.Lock()
	if len(w.calls) == 0 {
		w.mu.Unlock()
		return false
	}
	i := r.IntN(len(w.calls))
	c := w.calls[i]
	e := w.held[c][0]
	w.held[c] = w.held[c][1:]
	if len(w.held[c]) == 0 {
		w.calls = slices.Delete(w.calls, i, i+1)
	}
	w.order = append(w.order, c.ID)
	w.mu.Unlock()
	e.Deliver()
	return true
}

// Concurrent unary calls and streams through a wire that reorders across
// calls all get their own answers, each stream's in order.
func TestDirectWireReorders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &shuffleWire{held: map[*Call][]*Envelope{}}
		d := NewDirect(w)
		serveDirect(t, d, "server:1", newTestServer())
		conn, _ := d.Node("client:1").Dial("server:1")
		defer conn.Close()
		ctx := context.Background()

		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 10 {
			wg.Go(func() {
				body := fmt.Sprint("u", i)
				resp, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{Payload: payload(body)})
				if err == nil && string(resp.GetPayload().GetBody()) != body+"!" {
					err = fmt.Errorf("call %s answered %q", body, resp.GetPayload().GetBody())
				}
				errs <- err
			})
		}
		for i := range 4 {
			wg.Go(func() {
				st, err := testpb.NewTestServiceClient(conn).FullDuplexCall(ctx)
				if err != nil {
					errs <- err
					return
				}
				for j := range 5 {
					if err := st.Send(&testpb.StreamingOutputCallRequest{Payload: payload(fmt.Sprint(i, "-", j))}); err != nil {
						errs <- err
						return
					}
				}
				st.CloseSend()
				for j := range 5 {
					m, err := st.Recv()
					if err == nil && string(m.GetPayload().GetBody()) != fmt.Sprint(i, "-", j, "!") {
						err = fmt.Errorf("stream %d message %d is %q", i, j, m.GetPayload().GetBody())
					}
					if err != nil {
						errs <- err
						return
					}
				}
				_, err = st.Recv()
				if !errors.Is(err, io.EOF) {
					errs <- fmt.Errorf("stream %d ended with %v", i, err)
					return
				}
				errs <- nil
			})
		}
		r := rand.New(rand.NewPCG(1, 2))
		for {
			synctest.Wait()
			if !w.deliverOne(r) {
				break
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if slices.Equal(w.sent, w.order) {
			t.Fatal("the wire delivered in send order: the test reorders nothing")
		}
	})
}
