// Mem: the in-memory Network, gRPC over buffered pipes between the
// listeners and dialers of one Mem.

package grpcnet

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
)

// memBufferBytes is the buffer of each direction of an in-memory
// connection.
const memBufferBytes = 1 << 20

// Mem is a Network inside the process: Listen registers a name, Dial
// connects to the listener registered under it. Port 0 gets a port no
// listener of this Mem has used. Safe for concurrent use.
type Mem struct {
	mu        sync.Mutex
	listeners map[string]*memListener
	nextPort  int
}

// NewMem returns an empty in-memory network.
func NewMem() *Mem {
	return &Mem{listeners: map[string]*memListener{}, nextPort: 40000}
}

// Listen implements Network. The address must be host:port; it stays
// taken until the listener is closed.
func (m *Mem) Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("grpcnet: listen on %q: %w", addr, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if port == "0" {
		for {
			m.nextPort++
			addr = net.JoinHostPort(host, strconv.Itoa(m.nextPort))
			if _, taken := m.listeners[addr]; !taken {
				break
			}
		}
	}
	if _, taken := m.listeners[addr]; taken {
		return nil, fmt.Errorf("grpcnet: listen on %s: address already in use", addr)
	}
	l := &memListener{Listener: bufconn.Listen(memBufferBytes), m: m, addr: memAddr(addr)}
	m.listeners[addr] = l
	return l, nil
}

// Dial implements Network: the connection reaches the listener that holds
// addr when it connects (not when it is made).
func (m *Mem) Dial(addr string, opts ...grpc.DialOption) (Conn, error) {
	opts = append(opts[:len(opts):len(opts)], grpc.WithContextDialer(m.dial))
	return grpc.NewClient("passthrough:///"+addr, opts...)
}

func (m *Mem) dial(ctx context.Context, addr string) (net.Conn, error) {
	m.mu.Lock()
	l := m.listeners[addr]
	m.mu.Unlock()
	if l == nil {
		return nil, &net.OpError{Op: "dial", Net: "mem", Addr: memAddr(addr), Err: fmt.Errorf("connection refused")}
	}
	return l.DialContext(ctx)
}

type memListener struct {
	*bufconn.Listener
	m    *Mem
	addr memAddr
}

func (l *memListener) Addr() net.Addr { return l.addr }

// Close frees the address and closes the listener (connections made
// through it stay open, as with TCP).
func (l *memListener) Close() error {
	l.m.mu.Lock()
	if l.m.listeners[string(l.addr)] == l {
		delete(l.m.listeners, string(l.addr))
	}
	l.m.mu.Unlock()
	return l.Listener.Close()
}

type memAddr string

func (memAddr) Network() string  { return "mem" }
func (a memAddr) String() string { return string(a) }
