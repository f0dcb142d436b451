package router

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// A write sent on a BatchCommands stream that then breaks may have applied
// (here it did), whatever code the broken stream carries: the SDK returns
// *AmbiguousError and sends it once. A read in the same situation is
// retried on a new stream and succeeds; it is never ambiguous.
func TestBrokenStreamAfterSendIsAmbiguous(t *testing.T) {
	for _, code := range []codes.Code{codes.Internal, codes.ResourceExhausted, codes.Unknown, codes.Unavailable} {
		t.Run(code.String(), func(t *testing.T) {
			fc := newFake(t, 3)
			fc.breakStreams(status.Error(code, "stream broke"))
			c := fc.client(t)
			err := c.Put(tctx(t), []byte("k"), []byte("v"))
			var amb *AmbiguousError
			if !errors.As(err, &amb) {
				t.Fatalf("put on a stream that broke (%s) after sending: %v (%T), want *AmbiguousError", code, err, err)
			}
			wantLog(t, fc, "pd GetRange k", "pd GetStore 1", "s1 put k") // sent once, not retried
			fc.mu.Lock()
			applied := string(fc.data["k"]) == "v"
			fc.mu.Unlock()
			if !applied {
				t.Fatal("the fake did not apply the put: the test proves nothing")
			}

			// A read: the next stream (the broken one is not reused)
			// breaks the same way after the get ran; the get is retried
			// on a fresh stream and answered.
			fc.breakStreams(status.Error(code, "stream broke"))
			v, found, err := c.Get(tctx(t), []byte("k"))
			if err != nil || !found || string(v) != "v" {
				t.Fatalf("get on a stream that broke (%s): %q, %v, %v; want v", code, v, found, err)
			}
			if got := fc.stores[1].streams.Load(); got != 3 {
				t.Errorf("store 1 served %d streams, want 3 (two broken, one answering)", got)
			}
		})
	}
}

// The same codes from a unary RPC (a store without the stream, or a large
// value) cannot be told from a broken connection: a write failing so is
// ambiguous. Codes gRPC never makes itself are the store's answer and stay
// definite; a read is never ambiguous.
func TestUnaryWriteFailureIsAmbiguous(t *testing.T) {
	fc := newFake(t, 3)
	for _, s := range fc.stores {
		s.unaryOnly = true
	}
	c := fc.client(t)
	mustPut(t, c, "k", "0")
	for _, code := range []codes.Code{codes.Internal, codes.ResourceExhausted, codes.Unknown} {
		fc.setInject(func(_ uint64, op string, _ []byte) (*rangekvpb.RangeError, error) {
			return nil, status.Error(code, "broken")
		})
		fc.takeLog()
		err := c.Put(tctx(t), []byte("k"), []byte("v"))
		var amb *AmbiguousError
		if !errors.As(err, &amb) {
			t.Errorf("unary put failing with %s: %v (%T), want *AmbiguousError", code, err, err)
		}
		wantLog(t, fc, "s1 put k")
		_, _, err = c.Get(tctx(t), []byte("k"))
		if errors.As(err, &amb) || status.Code(err) != code {
			t.Errorf("unary get failing with %s: %v (%T), want that status, not ambiguous", code, err, err)
		}
	}
	fc.setInject(func(_ uint64, op string, _ []byte) (*rangekvpb.RangeError, error) {
		return nil, status.Error(codes.FailedPrecondition, "not a counter")
	})
	if _, err := c.Incr(tctx(t), []byte("k"), 1); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("unary incr refused by the store: %v, want FailedPrecondition", err)
	}
}

// An error the store itself answered for one call, carried by a stream
// that stays up, is definite whatever its code: decided by where the
// failure came from, not by its code.
func TestStreamCarriedStoreAnswerIsDefinite(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "k", "0")
	fc.setInject(func(_ uint64, op string, _ []byte) (*rangekvpb.RangeError, error) {
		if op == "put" {
			return nil, status.Error(codes.Internal, "proposal ID already pending")
		}
		return nil, nil
	})
	fc.takeLog()
	err := c.Put(tctx(t), []byte("k"), []byte("v"))
	var amb *AmbiguousError
	if errors.As(err, &amb) || status.Code(err) != codes.Internal || status.Convert(err).Message() != "proposal ID already pending" {
		t.Fatalf("put refused by the store on the stream: %v (%T), want its Internal status, not ambiguous", err, err)
	}
	wantLog(t, fc, "s1 put k")
	if got := fc.stores[1].streams.Load(); got != 1 {
		t.Errorf("store 1 served %d streams, want 1 (the answer did not break it)", got)
	}
}

// A store's DiskFull answer (refused before proposing) reaches the caller
// as a *DiskFullError naming the store: definite, not ambiguous, sent once
// (a retry cannot succeed until space is freed), for a single write and
// inside the *BatchError of a batch.
func TestDiskFullIsTypedAndDefinite(t *testing.T) {
	fc := newFake(t, 3)
	c := fc.client(t)
	mustPut(t, c, "a", "0")
	full := &rangekvpb.RangeError{Message: "low on space", DiskFull: &rangekvpb.DiskFull{StoreId: 1, Dir: "/data/s1", FreeBytes: 4096, MinFreeBytes: 1 << 30}}
	fc.setInject(func(_ uint64, op string, _ []byte) (*rangekvpb.RangeError, error) {
		if op == "put" || op == "batch" {
			return full, nil
		}
		return nil, nil
	})
	fc.takeLog()
	err := c.Put(tctx(t), []byte("a"), []byte("1"))
	var df *DiskFullError
	var amb *AmbiguousError
	if !errors.As(err, &df) || !errors.Is(err, ErrDiskFull) || errors.As(err, &amb) {
		t.Fatalf("put refused for disk space: %v (%T), want *DiskFullError, not ambiguous", err, err)
	}
	if df.StoreID != 1 || df.Dir != "/data/s1" || df.FreeBytes != 4096 || df.MinFreeBytes != 1<<30 || df.Op != "put" {
		t.Errorf("DiskFullError %+v: want store 1, /data/s1, 4096 of 1GiB, op put", df)
	}
	wantLog(t, fc, "s1 put a")

	err = c.BatchPut(tctx(t), []KeyValue{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}})
	var be *BatchError
	if !errors.As(err, &be) || !errors.As(err, &df) || errors.As(err, &amb) || be.Written != 0 {
		t.Fatalf("batch refused for disk space: %v, want *BatchError wrapping *DiskFullError, nothing written", err)
	}
	wantLog(t, fc, "s1 batch a")
}
