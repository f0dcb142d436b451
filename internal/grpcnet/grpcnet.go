// The Network interface, the client connection it makes, where servers
// register their services, and the production implementation over TCP.

package grpcnet

import (
	"net"

	"google.golang.org/grpc"
)

// Conn is a client connection: what generated clients need (Invoke,
// NewStream) and Close. *grpc.ClientConn is one; so is a Direct
// connection.
//
// It is an alias of an interface literal, not a defined type, so that a
// package that may not import this one (router imports only proto) can
// declare the same alias and accept every Network here as its own.
type Conn = interface {
	grpc.ClientConnInterface
	Close() error
}

// Network makes the listeners a process's gRPC servers serve on and the
// client connections it dials. Implementations are safe for concurrent
// use.
type Network interface {
	// Listen returns a listener bound to addr (host:port; port 0 picks a
	// free one, which the listener's Addr reports).
	Listen(addr string) (net.Listener, error)
	// Dial returns a client connection to addr made with opts, which
	// carry the caller's credentials and limits. Like grpc.NewClient it
	// does not connect: the first RPC does, and fails if nothing listens
	// at addr. The caller closes the connection.
	Dial(addr string, opts ...grpc.DialOption) (Conn, error)
}

// Registrar returns where a server registers its services: srv itself
// and, when ln belongs to an in-process network (Direct), also that
// listener, so that calls through Direct reach the same implementations.
// Register every service before srv.Serve(ln): Direct starts the calls
// to a listener when Serve first accepts on it (until then they wait, as
// connections wait in a TCP backlog).
func Registrar(srv *grpc.Server, ln net.Listener) grpc.ServiceRegistrar {
	if l, ok := ln.(*directListener); ok {
		return &directRegistrar{srv: srv, l: l}
	}
	return srv
}

// TCP is the production Network: net.Listen("tcp") and grpc.NewClient.
type TCP struct{}

// Listen implements Network.
func (TCP) Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// Dial implements Network.
func (TCP) Dial(addr string, opts ...grpc.DialOption) (Conn, error) {
	return grpc.NewClient(addr, opts...)
}

// OrTCP returns n, or TCP when n is nil (for configs that leave it unset).
func OrTCP(n Network) Network {
	if n == nil {
		return TCP{}
	}
	return n
}
