// How the router makes its connections (Options.Network, by default
// grpc.NewClient over TCP) and waits for one to be up.

package router

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// Conn is a client connection as a Network makes it: what generated
// clients need, and Close. *grpc.ClientConn is one.
//
// It is an alias of an interface literal, declared the same way as
// rangekv's internal network seam (internal/grpcnet.Conn), so that the
// seam's networks (TCP, the in-memory ones of the tests and the
// simulation) are Networks here without this package importing it.
type Conn = interface {
	grpc.ClientConnInterface
	Close() error
}

// Network makes a Client's connections. Dial, like grpc.NewClient, does
// not connect: the first call does.
type Network interface {
	Dial(addr string, opts ...grpc.DialOption) (Conn, error)
}

// dial makes a connection to addr with opts' dial options through
// opts.Network, or grpc.NewClient without one.
func dial(opts Options, addr string) (Conn, error) {
	if opts.Network != nil {
		return opts.Network.Dial(addr, dialOptions(opts)...)
	}
	return grpc.NewClient(addr, dialOptions(opts)...)
}

// readyConn waits at most timeout for conn to be up; false when it is
// refused or down (try another one now). A connection other than a
// *grpc.ClientConn has no connectivity state: it is ready when it says so
// (Ready, as an in-process network's connections do: something listens at
// its target) or, without a Ready method, always (its calls fail when
// they cannot be carried).
func readyConn(ctx context.Context, conn Conn, clk Clock, timeout time.Duration) bool {
	cc, ok := conn.(*grpc.ClientConn)
	if !ok {
		if r, ok := conn.(interface{ Ready() bool }); ok {
			return r.Ready()
		}
		return true
	}
	if cc.GetState() == connectivity.Ready {
		return true // the common case, without a timer
	}
	cc.Connect()
	ctx, cancel := withTimeout(ctx, clk, timeout)
	defer cancel()
	for {
		st := cc.GetState()
		switch st {
		case connectivity.Ready:
			return true
		case connectivity.TransientFailure, connectivity.Shutdown:
			return false
		}
		if !cc.WaitForStateChange(ctx, st) {
			return false
		}
	}
}
