package main

import (
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// brokenStreamStore is a store whose BatchCommands stream takes the first
// message and then fails with code, without answering: the calls in it
// were sent and may have run.
type brokenStreamStore struct {
	rangekvpb.UnimplementedKVServer
	code codes.Code
}

func (s *brokenStreamStore) BatchCommands(stream rangekvpb.KV_BatchCommandsServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	return status.Error(s.code, "stream broke")
}

// A write whose stream to the store broke after it was sent exits 3
// (outcome unknown) whatever the stream's code, through the real router.
func TestBrokenStreamWriteExitsUnknown(t *testing.T) {
	t.Setenv("RANGEKV_PLACEMENT", "")
	t.Setenv("RANGEKV_STORES", "")
	for _, code := range []codes.Code{codes.Internal, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := grpc.NewServer()
			rangekvpb.RegisterKVServer(srv, &brokenStreamStore{code: code})
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(srv.Stop)
			_, stderr, exit := cli(t, "--stores", ln.Addr().String(), "--timeout", "5s", "put", "k", "v")
			if exit != exitUnknown || !strings.Contains(stderr, "outcome unknown") {
				t.Fatalf("put over a stream that broke with %s: exit %d, stderr %q; want 3 and \"outcome unknown\"", code, exit, stderr)
			}
		})
	}
}
