package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// memStream is an in-memory twin of a mux (BatchCommands) client stream:
// Send records each message and then waits for the test to release it;
// Recv returns what the test feeds it.
type memStream struct {
	grpc.ClientStream // not used; nil
	sent              chan *rangekvpb.BatchCommandsRequest
	release           chan error // one value per Send: its result
	recv              chan *rangekvpb.BatchCommandsResponse
	recvErr           chan error
	closed            chan struct{} // closed by cancel: Recv fails, as gRPC's does
	closeOnce         sync.Once
}

// cancel is the stream's cancel function.
func (m *memStream) cancel() { m.closeOnce.Do(func() { close(m.closed) }) }

func newMemStream() *memStream {
	return &memStream{sent: make(chan *rangekvpb.BatchCommandsRequest, 16), release: make(chan error, 16),
		recv: make(chan *rangekvpb.BatchCommandsResponse, 16), recvErr: make(chan error, 1), closed: make(chan struct{})}
}

func (m *memStream) Send(r *rangekvpb.BatchCommandsRequest) error {
	m.sent <- r
	return <-m.release
}

func (m *memStream) Recv() (*rangekvpb.BatchCommandsResponse, error) {
	select {
	case r := <-m.recv:
		return r, nil
	case err := <-m.recvErr:
		return nil, err
	case <-m.closed:
		return nil, status.Error(codes.Canceled, "stream cancelled")
	}
}

func (m *memStream) next(t *testing.T) *rangekvpb.BatchCommandsRequest {
	t.Helper()
	select {
	case r := <-m.sent:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("nothing sent within 10s")
		return nil
	}
}

func getReq(key string) *rangekvpb.BatchCommandsRequest_Request {
	return &rangekvpb.BatchCommandsRequest_Request{Cmd: &rangekvpb.BatchCommandsRequest_Request_Get{Get: &rangekvpb.GetRequest{Key: []byte(key)}}}
}

func getAnswer(id uint64, value string) *rangekvpb.BatchCommandsResponse_Response {
	return &rangekvpb.BatchCommandsResponse_Response{Id: id, Cmd: &rangekvpb.BatchCommandsResponse_Response_Get{
		Get: &rangekvpb.GetResponse{Header: &rangekvpb.ResponseHeader{}, Found: true, Value: []byte(value)}}}
}

// queued waits until s holds n calls not yet sent.
func queued(t *testing.T, s *muxStream, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		q := len(s.mu.queue)
		s.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued after 10s, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type callResult struct {
	key   string
	value string
	err   error
}

// startCalls makes a Get call of each key on s in its own goroutine.
func startCalls(ctx context.Context, s *muxStream, wg *sync.WaitGroup, out chan<- callResult, keys ...string) {
	for _, k := range keys {
		wg.Go(func() {
			resp, err := s.do(ctx, getReq(k), 16)
			out <- callResult{key: k, value: string(resp.GetGet().GetValue()), err: err}
		})
	}
}

// Calls that arrive while a message is being sent leave together in the
// next one, and each caller gets the answer with its own ID, whatever the
// order of the answers.
func TestMuxStreamCoalescesWaitingCalls(t *testing.T) {
	ms := newMemStream()
	var wg sync.WaitGroup
	s := newMuxStream(ms, ms.cancel, &wg, func() {})
	ctx := tctx(t)
	results := make(chan callResult, 16)
	var calls sync.WaitGroup

	startCalls(ctx, s, &calls, results, "a")
	first := ms.next(t) // the sender now waits in Send
	if len(first.Requests) != 1 {
		t.Fatalf("first message has %d calls, want 1", len(first.Requests))
	}
	more := []string{"b", "c", "d", "e", "f", "g", "h", "i", "j"}
	startCalls(ctx, s, &calls, results, more...)
	queued(t, s, len(more))
	ms.release <- nil
	second := ms.next(t)
	ms.release <- nil
	if len(second.Requests) != len(more) {
		t.Fatalf("second message has %d calls, want the %d that waited", len(second.Requests), len(more))
	}
	// Answer in reverse order, all in one message; the value names the
	// key the call asked for.
	all := append(append([]*rangekvpb.BatchCommandsRequest_Request{}, first.Requests...), second.Requests...)
	ans := &rangekvpb.BatchCommandsResponse{}
	for i := len(all) - 1; i >= 0; i-- {
		ans.Responses = append(ans.Responses, getAnswer(all[i].Id, "v-"+string(all[i].GetGet().Key)))
	}
	ms.recv <- ans
	calls.Wait()
	close(results)
	n := 0
	for r := range results {
		n++
		if r.err != nil || r.value != "v-"+r.key {
			t.Errorf("call %s: value %q, error %v; want v-%s", r.key, r.value, r.err, r.key)
		}
	}
	if n != 1+len(more) {
		t.Fatalf("%d calls finished, want %d", n, 1+len(more))
	}
	s.fail(errors.New("test over"))
	wg.Wait()
}

// When the stream fails, a call that was sent has an unknown outcome (a
// lostError, which the router reports as ambiguous for a write, whatever
// the stream's own code: here Internal), and a call still queued is known
// not to have been sent (retried safely).
func TestMuxStreamFailureTellsSentFromUnsent(t *testing.T) {
	ms := newMemStream()
	var wg sync.WaitGroup
	s := newMuxStream(ms, ms.cancel, &wg, func() {})
	ctx := tctx(t)
	results := make(chan callResult, 4)
	var calls sync.WaitGroup
	startCalls(ctx, s, &calls, results, "sent")
	ms.next(t)
	startCalls(ctx, s, &calls, results, "queued")
	queued(t, s, 1)
	ms.recvErr <- status.Error(codes.Internal, "stream terminated by RST_STREAM with error code: INTERNAL_ERROR")
	// The queued call learns at once; the sent one once its Send (made by
	// its own goroutine) returns.
	r := <-results
	if r.key != "queued" {
		t.Fatalf("first to fail: %s; want the queued call", r.key)
	}
	got := map[string]error{r.key: r.err}
	ms.release <- errors.New("stream broken")
	r = <-results
	got[r.key] = r.err
	calls.Wait()
	wg.Wait()
	if err := got["sent"]; !lost(err) || notSent(err) || !mayHaveApplied(err) || status.Code(err) != codes.Unavailable {
		t.Errorf("sent call: %v; want lost (may have applied, code Unavailable), not marked as not sent", err)
	}
	if err := got["queued"]; !notSent(err) || mayHaveApplied(err) || status.Code(err) != codes.Unavailable {
		t.Errorf("queued call: %v; want a not-sent error with code Unavailable", err)
	}
	// A failed stream takes no more calls: they fail as not sent.
	if _, err := s.do(ctx, getReq("late"), 16); !notSent(err) {
		t.Errorf("call on a failed stream: %v; want not sent", err)
	}
}

// A call whose context ends stops waiting at once; its late answer is
// dropped and does not disturb the next call.
func TestMuxStreamCallerDeadline(t *testing.T) {
	ms := newMemStream()
	var wg sync.WaitGroup
	s := newMuxStream(ms, ms.cancel, &wg, func() {})
	defer func() { s.fail(errors.New("test over")); wg.Wait() }()
	ctx, cancel := context.WithCancel(tctx(t))
	done := make(chan error, 1)
	go func() {
		_, err := s.do(ctx, getReq("slow"), 16)
		done <- err
	}()
	req := ms.next(t)
	ms.release <- nil
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: %v; want Canceled", err)
	}
	ms.recv <- &rangekvpb.BatchCommandsResponse{Responses: []*rangekvpb.BatchCommandsResponse_Response{getAnswer(req.Requests[0].Id, "late")}}
	results := make(chan callResult, 1)
	var calls sync.WaitGroup
	startCalls(tctx(t), s, &calls, results, "next")
	next := ms.next(t)
	ms.release <- nil
	ms.recv <- &rangekvpb.BatchCommandsResponse{Responses: []*rangekvpb.BatchCommandsResponse_Response{getAnswer(next.Requests[0].Id, "v-next")}}
	calls.Wait()
	if r := <-results; r.err != nil || r.value != "v-next" {
		t.Fatalf("next call: %q, %v; want v-next", r.value, r.err)
	}
}

// Through a real connection: a call's deadline reaches the store, a
// failed call comes back with the status code the unary RPC would have,
// and a store that serves no stream gets unary calls.
func TestMuxKVAgainstStores(t *testing.T) {
	for _, unaryOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("unaryOnly=%v", unaryOnly), func(t *testing.T) {
			fc := newFake(t, 1)
			fc.stores[1].unaryOnly = unaryOnly
			c := fc.client(t)
			ctx := tctx(t)
			for i := range 20 {
				mustPut(t, c, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%02d", i))
			}
			for i := range 20 {
				v, found, err := c.Get(ctx, []byte(fmt.Sprintf("k%02d", i)))
				if err != nil || !found || string(v) != fmt.Sprintf("v%02d", i) {
					t.Fatalf("get k%02d: %q, %v, %v", i, v, found, err)
				}
			}
			fc.setInject(func(_ uint64, op string, key []byte) (*rangekvpb.RangeError, error) {
				if op == "get" && string(key) == "bad" {
					return nil, status.Error(codes.InvalidArgument, "key: bad")
				}
				return nil, nil
			})
			if _, _, err := c.Get(ctx, []byte("bad")); status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "key: bad" {
				t.Fatalf("get bad: %v; want InvalidArgument \"key: bad\"", err)
			}
			streams := fc.stores[1].streams.Load()
			if unaryOnly && streams != 0 || !unaryOnly && streams != 1 {
				t.Fatalf("store served %d streams; want %d", streams, map[bool]int{true: 0, false: 1}[unaryOnly])
			}
		})
	}
}
