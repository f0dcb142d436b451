// The receiver takes a message's clone over: a duplicate's earlier
// receipt is a copy, the last takes the clone, and a duplicate after it
// panics.

package grpcnet

import (
	"testing"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
)

func TestInflightDuplicateCopiesThenMoves(t *testing.T) {
	c := &Call{ID: 1, Method: "/m"}
	sent := &testpb.SimpleRequest{ResponseSize: 7, Payload: &testpb.Payload{Body: []byte("x")}}
	q := &inflight{msg: proto.Clone(sent)}
	var queue []*inflight
	c.deliverLocked(q, &queue)
	c.deliverLocked(q, &queue) // the wire's duplicate
	var a, b testpb.SimpleRequest
	q1, last1 := receiveLocked(&queue)
	receive(&a, q1, last1)
	q2, last2 := receiveLocked(&queue)
	receive(&b, q2, last2)
	if last1 || !last2 {
		t.Fatalf("last receipt: %v then %v, want false then true", last1, last2)
	}
	if !proto.Equal(&a, sent) || !proto.Equal(&b, sent) {
		t.Fatalf("received %v and %v, sent %v", &a, &b, sent)
	}
	if b.Payload != q.msg.(*testpb.SimpleRequest).Payload {
		t.Fatal("the last receipt copied the clone instead of taking it over")
	}
	a.Payload.Body[0] = 'y'
	if string(b.Payload.Body) != "x" {
		t.Fatal("the duplicate's two receipts share a message")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a duplicate delivered after the receiver took the message did not panic")
		}
	}()
	c.deliverLocked(q, &queue)
}

// A src of the same message but another Go type (dynamicpb) is copied:
// protoreflect's Set takes only values of its own type.
func TestMoveIntoOtherTypeCopies(t *testing.T) {
	src := dynamicpb.NewMessage((&testpb.Payload{}).ProtoReflect().Descriptor())
	proto.Merge(src, &testpb.Payload{Body: []byte("x")})
	var dst testpb.Payload
	moveInto(&dst, src)
	if string(dst.Body) != "x" {
		t.Fatalf("moved %v, want body x", &dst)
	}
}
