// The Network interface and its production implementation over TCP.

package grpcnet

import (
	"net"

	"google.golang.org/grpc"
)

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
	Dial(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error)
}

// TCP is the production Network: net.Listen("tcp") and grpc.NewClient.
type TCP struct{}

// Listen implements Network.
func (TCP) Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// Dial implements Network.
func (TCP) Dial(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, opts...)
}

// OrTCP returns n, or TCP when n is nil (for configs that leave it unset).
func OrTCP(n Network) Network {
	if n == nil {
		return TCP{}
	}
	return n
}
