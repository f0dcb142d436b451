// Options.Network: every connection is dialled through it, and a
// connection without connectivity state is ready as it says.

package router

import (
	"context"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
)

// fakeConn is a Conn of fakeNetwork; its calls are never made here.
type fakeConn struct {
	grpc.ClientConnInterface
	ready bool
}

func (*fakeConn) Close() error  { return nil }
func (c *fakeConn) Ready() bool { return c.ready }

// fakeNetwork records the addresses dialled and the number of options.
type fakeNetwork struct {
	mu     sync.Mutex
	dialed []string
	opts   int
}

func (n *fakeNetwork) Dial(addr string, opts ...grpc.DialOption) (Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dialed = append(n.dialed, addr)
	n.opts = len(opts)
	return &fakeConn{ready: addr != "down:1"}, nil
}

func TestOptionsNetworkDials(t *testing.T) {
	net := &fakeNetwork{}
	c, err := NewStatic([]string{"s1:1", "s2:1"}, Options{Seed: 1, Network: net})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := New([]string{"pd1:1"}, Options{Seed: 1, Network: net})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if want := []string{"s1:1", "s2:1", "pd1:1"}; !slices.Equal(net.dialed, want) {
		t.Fatalf("dialled %q, want %q", net.dialed, want)
	}
	if net.opts != len(dialOptions(c.opts)) {
		t.Fatalf("the network got %d dial options, want the client's %d", net.opts, len(dialOptions(c.opts)))
	}

	ctx := context.Background()
	up, _ := net.Dial("s1:1")
	down, _ := net.Dial("down:1")
	if !readyConn(ctx, up, nil, 0) || readyConn(ctx, down, nil, 0) {
		t.Fatal("readyConn did not follow the connection's Ready")
	}
	plain := struct{ Conn }{up} // no Ready method: always ready
	if !readyConn(ctx, plain, nil, 0) {
		t.Fatal("a connection without connectivity state or Ready is not ready")
	}
}
