// Tests of the Networks: a gRPC server on a listener answers a client
// dialled through the same Network; nothing listening means the call fails.

package grpcnet

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// serveHealth serves the gRPC health service on a listener of n bound to
// addr and returns the bound address.
func serveHealth(t *testing.T, n Network, addr string) string {
	t.Helper()
	ln, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(Registrar(srv, ln), health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return ln.Addr().String()
}

// check calls the health service at addr through n.
func check(t *testing.T, n Network, addr string) error {
	t.Helper()
	conn, err := n.Dial(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestNetworksCarryGRPC(t *testing.T) {
	for name, n := range map[string]Network{"tcp": TCP{}, "mem": NewMem(), "direct": NewDirect(nil).Node("test:1")} {
		t.Run(name, func(t *testing.T) {
			addr := serveHealth(t, n, "127.0.0.1:0")
			if strings.HasSuffix(addr, ":0") {
				t.Fatalf("port 0 was not replaced: listener reports %s", addr)
			}
			if err := check(t, n, addr); err != nil {
				t.Fatalf("health check at %s: %v", addr, err)
			}
		})
	}
}

func TestMemAddresses(t *testing.T) {
	m := NewMem()
	a := serveHealth(t, m, "store1:7501")
	if a != "store1:7501" {
		t.Fatalf("listener address %q, want the one asked for", a)
	}
	if _, err := m.Listen("store1:7501"); err == nil {
		t.Fatal("a second listener got an address in use")
	}
	// Nothing listens at store2: the call fails as unavailable, as with a
	// refused TCP connection.
	if err := check(t, m, "store2:7501"); status.Code(err) != codes.Unavailable {
		t.Fatalf("call to an address nobody listens on: %v, want Unavailable", err)
	}
	// A closed listener frees its address.
	ln, err := m.Listen("store3:1")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if ln, err = m.Listen("store3:1"); err != nil {
		t.Fatalf("address of a closed listener: %v", err)
	}
	ln.Close()
}

func TestOrTCP(t *testing.T) {
	if _, ok := OrTCP(nil).(TCP); !ok {
		t.Fatal("OrTCP(nil) is not TCP")
	}
	m := NewMem()
	if OrTCP(m) != Network(m) {
		t.Fatal("OrTCP replaced a set Network")
	}
}
