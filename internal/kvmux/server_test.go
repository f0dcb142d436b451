package kvmux

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// memServerStream is an in-memory twin of the server side of a stream.
type memServerStream struct {
	grpc.ServerStream // not used; nil
	ctx               context.Context
	in                chan *rangekvpb.BatchCommandsRequest // closed: the router closed its side
	out               chan *rangekvpb.BatchCommandsResponse
}

func (m *memServerStream) Context() context.Context { return m.ctx }

func (m *memServerStream) Recv() (*rangekvpb.BatchCommandsRequest, error) {
	r, ok := <-m.in
	if !ok {
		return nil, io.EOF
	}
	return r, nil
}

func (m *memServerStream) Send(r *rangekvpb.BatchCommandsResponse) error {
	m.out <- r
	return nil
}

// fakeKV answers Get: key "slow" waits for release, "bad" fails with
// InvalidArgument, "late" waits for its deadline; every answer's value
// says whether the call had a deadline and how far off it was.
type fakeKV struct {
	rangekvpb.UnimplementedKVServer
	release chan struct{}
}

func (f *fakeKV) Get(ctx context.Context, req *rangekvpb.GetRequest) (*rangekvpb.GetResponse, error) {
	switch string(req.Key) {
	case "slow":
		<-f.release
	case "bad":
		return nil, status.Error(codes.InvalidArgument, "key: bad")
	case "late":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	dl, ok := ctx.Deadline()
	v := "no-deadline"
	if ok {
		v = time.Until(dl).Round(time.Second).String()
	}
	return &rangekvpb.GetResponse{Found: true, Value: []byte(v)}, nil
}

func get(id uint64, key string, timeout time.Duration) *rangekvpb.BatchCommandsRequest_Request {
	return &rangekvpb.BatchCommandsRequest_Request{Id: id, TimeoutUs: timeout.Microseconds(),
		Cmd: &rangekvpb.BatchCommandsRequest_Request_Get{Get: &rangekvpb.GetRequest{Key: []byte(key)}}}
}

func TestServeAnswersEachCallOnceAsItsUnaryRPCWould(t *testing.T) {
	// A stream's context has no deadline (a router keeps it open).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	giveUp := time.After(20 * time.Second)
	ms := &memServerStream{ctx: ctx, in: make(chan *rangekvpb.BatchCommandsRequest, 4), out: make(chan *rangekvpb.BatchCommandsResponse, 16)}
	kv := &fakeKV{release: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- Serve(ms, kv) }()

	ms.in <- &rangekvpb.BatchCommandsRequest{Requests: []*rangekvpb.BatchCommandsRequest_Request{
		get(1, "slow", 0), get(2, "fast", 30*time.Second), get(3, "bad", 0), get(4, "late", time.Millisecond),
		{Id: 5}, // names no command
	}}
	want := map[uint64]func(*rangekvpb.BatchCommandsResponse_Response) bool{
		1: func(r *rangekvpb.BatchCommandsResponse_Response) bool {
			return r.Code == 0 && string(r.GetGet().GetValue()) == "no-deadline"
		},
		2: func(r *rangekvpb.BatchCommandsResponse_Response) bool {
			return r.Code == 0 && string(r.GetGet().GetValue()) == "30s"
		},
		3: func(r *rangekvpb.BatchCommandsResponse_Response) bool {
			return codes.Code(r.Code) == codes.InvalidArgument && r.Message == "key: bad" && r.Cmd == nil
		},
		4: func(r *rangekvpb.BatchCommandsResponse_Response) bool {
			return codes.Code(r.Code) == codes.DeadlineExceeded && r.Cmd == nil
		},
		5: func(r *rangekvpb.BatchCommandsResponse_Response) bool {
			return codes.Code(r.Code) == codes.InvalidArgument
		},
	}
	seen := map[uint64]int{}
	take := func(n int) {
		for len(seen) < n {
			select {
			case m := <-ms.out:
				for _, r := range m.Responses {
					seen[r.Id]++
					if f, ok := want[r.Id]; !ok || !f(r) {
						t.Errorf("answer to call %d: %v", r.Id, r)
					}
				}
			case <-giveUp:
				t.Fatalf("answers so far %v; waited 20s for %d", seen, n)
			}
		}
	}
	take(4) // every call but the slow one, which is still running
	if seen[1] != 0 {
		t.Fatalf("the slow call was answered before it finished")
	}
	// The router closes its side with the slow call in flight: it is still
	// answered before Serve returns.
	close(ms.in)
	close(kv.release)
	take(5)
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("call %d answered %d times", id, n)
		}
	}
}
