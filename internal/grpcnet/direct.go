// Direct: the in-process network at the message level. This file holds
// its processes (nodes), listeners and connections, and crashes (Down);
// direct_call.go carries the calls, direct_stream.go the streams.

package grpcnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Direct is an in-process network at the message level: no HTTP/2, no
// gRPC transport, no goroutine of its own. Dial'd connections call the
// handlers registered (through Registrar) at the target address through
// their grpc.ServiceDesc, unary and streaming (client, server and bidi
// streams), cloning every message once as it is sent (proto.Clone), so
// that sender and receiver never share one; the receiver takes the clone
// over (Envelope.Msg). Every request, response, stream message and
// stream close passes through the Wire, which delivers it when it
// chooses (see Envelope).
//
// What Direct does not do: it ignores dial and call options (no TLS, no
// client interceptors, no message size limits, no flow control: a send
// never waits for the receiver), runs handlers without the server's
// options or interceptors (rangekv's servers install none), and sends no
// headers or trailers (SetHeader and SetTrailer are accepted and
// dropped). Handler contexts carry the caller's outgoing metadata as
// incoming, its deadline, a peer.Peer whose Addr is the caller's process
// address, and the method (grpc.Method).
//
// Closing a listener (grpc.Server.Stop or GracefulStop does) ends every
// call it serves as Stop would (callers get Unavailable, handler contexts
// are cancelled), and the server's Serve returns only once their handlers
// have, so that no handler runs after Stop or GracefulStop returns.
//
// Every wait in Direct is on a channel or a sync.Cond, and nothing in it
// depends on a timer: it runs inside testing/synctest, and every call
// ends when its messages are delivered or lost, its caller's context is
// cancelled, its connection is closed, or an end of it is Down.
type Direct struct {
	wire Wire

	// mu guards everything below and every Call's ln; it is taken before
	// a Call's mu when both are held. idle (on mu) is signalled when a
	// listener's last handler returns.
	mu        sync.Mutex
	idle      *sync.Cond
	listeners map[string]*directListener
	// epochs counts the crashes (Down) of each process address: nodes
	// made before the last one are dead.
	epochs   map[string]uint64
	calls    map[*Call]struct{} // calls not ended
	nextID   uint64
	nextPort int
}

// NewDirect returns an empty network whose messages pass through w. A nil
// w delivers every message at once, on the sender's goroutine, in the
// order they are sent.
func NewDirect(w Wire) *Direct {
	d := &Direct{wire: w, listeners: map[string]*directListener{}, epochs: map[string]uint64{},
		calls: map[*Call]struct{}{}, nextPort: 40000}
	d.idle = sync.NewCond(&d.mu)
	return d
}

// Node returns the network as seen from the process at addr: its Dials
// are "from" addr (Envelope.From, the handler's peer address). A process
// that restarts after Down takes a new Node: the old one stays dead.
func (d *Direct) Node(addr string) Network {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &directNode{d: d, addr: addr, epoch: d.epochs[addr]}
}

// Down is the crash of the process at addr: its listener at addr is gone
// (calls to addr fail Unavailable until a new process listens there), its
// calls and open streams, both those it made and those made to it, end
// with Unavailable on both sides (handler contexts cancelled), the
// envelopes of those calls still on the wire do nothing when delivered
// or failed, and every Node(addr) made before Down is dead: its Listen
// fails and its connections' calls fail Unavailable. Down does not wait
// for the crashed process's handlers.
func (d *Direct) Down(addr string) {
	d.mu.Lock()
	d.epochs[addr]++
	if l := d.listeners[addr]; l != nil {
		d.closeListenerLocked(l)
	}
	var hit []*Call
	for c := range d.calls {
		if c.From == addr || c.To == addr {
			hit = append(hit, c)
		}
	}
	d.mu.Unlock()
	err := status.Errorf(codes.Unavailable, "grpcnet: process %s is down", addr)
	for _, c := range byID(hit) {
		c.finish(err, true, nil)
	}
}

// byID sorts calls by ID, so that ending many is done in one order.
func byID(calls []*Call) []*Call {
	slices.SortFunc(calls, func(a, b *Call) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return calls
}

// directNode is one process's view of a Direct.
type directNode struct {
	d     *Direct
	addr  string
	epoch uint64
}

// deadLocked reports whether the process was Down since the node was
// made. d.mu is held.
func (n *directNode) deadLocked() bool { return n.d.epochs[n.addr] != n.epoch }

// Listen implements Network. The address must be host:port; port 0 gets a
// port no listener of this Direct holds. It stays taken until the
// listener is closed or its process is Down.
func (n *directNode) Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("grpcnet: listen on %q: %w", addr, err)
	}
	d := n.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if n.deadLocked() {
		return nil, fmt.Errorf("grpcnet: listen on %s: process %s is down", addr, n.addr)
	}
	if port == "0" {
		for {
			d.nextPort++
			addr = net.JoinHostPort(host, strconv.Itoa(d.nextPort))
			if _, taken := d.listeners[addr]; !taken {
				break
			}
		}
	}
	if _, taken := d.listeners[addr]; taken {
		return nil, fmt.Errorf("grpcnet: listen on %s: address already in use", addr)
	}
	l := &directListener{d: d, addr: addr, services: map[string]*directService{}, closed: make(chan struct{})}
	d.listeners[addr] = l
	return l, nil
}

// Dial implements Network. The options are ignored (see Direct). The
// connection reaches whatever listens at addr when each call's first
// message is delivered.
func (n *directNode) Dial(addr string, _ ...grpc.DialOption) (Conn, error) {
	return &directConn{node: n, to: addr}, nil
}

// directListener is a listener of a Direct: the services registered on
// it (through Registrar) and the handlers it runs. Its fields other than
// d, addr and closed are guarded by d.mu.
type directListener struct {
	d        *Direct
	addr     string
	services map[string]*directService
	// serving: Accept was called (Serve runs); calls delivered before
	// wait in pending. handlers counts the handlers running.
	serving  bool
	pending  []*Call
	handlers int
	isClosed bool
	closed   chan struct{} // closed with isClosed
}

type directService struct {
	desc *grpc.ServiceDesc
	impl any
}

// Accept blocks until the listener is closed: Direct connections are no
// net.Conns. The first Accept starts the calls waiting for the server.
// After the close it waits for the handlers still running to return: a
// gRPC server's Stop and GracefulStop wait for their Serve to return
// (without holding the server's lock, as they do while closing the
// listener), so that no handler runs after them.
func (l *directListener) Accept() (net.Conn, error) {
	d := l.d
	d.mu.Lock()
	var failed []failedCall
	if !l.serving && !l.isClosed {
		l.serving = true
		for _, c := range l.pending {
			if f, ok := d.startLocked(c, l); !ok {
				failed = append(failed, f)
			}
		}
		l.pending = nil
	}
	d.mu.Unlock()
	for _, f := range failed {
		f.c.finish(f.err, true, nil)
	}
	<-l.closed
	d.mu.Lock()
	for l.handlers > 0 {
		d.idle.Wait()
	}
	d.mu.Unlock()
	return nil, net.ErrClosed
}

// Close frees the address and ends every call served here (Unavailable
// for the caller, the handler's context cancelled). It does not wait for
// their handlers (Accept does).
func (l *directListener) Close() error {
	d := l.d
	d.mu.Lock()
	hit := d.closeListenerLocked(l)
	d.mu.Unlock()
	err := status.Errorf(codes.Unavailable, "grpcnet: the server at %s stopped", l.addr)
	for _, c := range byID(hit) {
		c.finish(err, true, nil)
	}
	return nil
}

// closeListenerLocked closes l (once) and returns the calls bound to it.
// d.mu is held.
func (d *Direct) closeListenerLocked(l *directListener) []*Call {
	if !l.isClosed {
		l.isClosed = true
		close(l.closed)
		if d.listeners[l.addr] == l {
			delete(d.listeners, l.addr)
		}
	}
	var hit []*Call
	for c := range d.calls {
		if c.ln == l {
			hit = append(hit, c)
		}
	}
	return hit
}

func (l *directListener) Addr() net.Addr { return directAddr(l.addr) }

// lookup finds the handler of a full method name ("/pkg.Service/Method").
// d.mu is held.
func (l *directListener) lookup(method string, stream bool) (*directService, *grpc.MethodDesc, *grpc.StreamDesc, error) {
	method = strings.TrimPrefix(method, "/")
	i := strings.LastIndexByte(method, '/')
	ok := i >= 0
	svcName, name := method, ""
	if ok {
		svcName, name = method[:i], method[i+1:]
	}
	svc := l.services[svcName]
	if !ok || svc == nil {
		return nil, nil, nil, status.Errorf(codes.Unimplemented, "unknown service %s", svcName)
	}
	if !stream {
		for i := range svc.desc.Methods {
			if svc.desc.Methods[i].MethodName == name {
				return svc, &svc.desc.Methods[i], nil, nil
			}
		}
	} else {
		for i := range svc.desc.Streams {
			if svc.desc.Streams[i].StreamName == name {
				return svc, nil, &svc.desc.Streams[i], nil
			}
		}
	}
	return nil, nil, nil, status.Errorf(codes.Unimplemented, "unknown method %s for service %s", name, svcName)
}

// directRegistrar registers a service on a grpc.Server and a Direct
// listener.
type directRegistrar struct {
	srv *grpc.Server
	l   *directListener
}

// RegisterService implements grpc.ServiceRegistrar. The server checks
// impl (and panics, as grpc does, on a mismatch) before the listener
// takes it.
func (r *directRegistrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.srv.RegisterService(desc, impl)
	r.l.d.mu.Lock()
	defer r.l.d.mu.Unlock()
	r.l.services[desc.ServiceName] = &directService{desc: desc, impl: impl}
}

// directConn is a client connection of a Direct node to an address.
type directConn struct {
	node   *directNode
	to     string
	closed bool // guarded by node.d.mu
}

// Ready reports whether a call now would find a server: the connection
// is open, its process is not Down, and something listens at its target
// (which may still crash or drop the call's messages). The router asks it
// instead of a *grpc.ClientConn's connectivity state.
func (c *directConn) Ready() bool {
	d := c.node.d
	d.mu.Lock()
	defer d.mu.Unlock()
	return !c.closed && !c.node.deadLocked() && d.listeners[c.to] != nil
}

// Close ends the connection's calls and streams with Canceled, as
// grpc.ClientConn.Close does; later calls fail the same way.
func (c *directConn) Close() error {
	d := c.node.d
	d.mu.Lock()
	c.closed = true
	var hit []*Call
	for call := range d.calls {
		if call.conn == c {
			hit = append(hit, call)
		}
	}
	d.mu.Unlock()
	for _, call := range byID(hit) {
		call.finish(errConnClosing, true, nil)
	}
	return nil
}

var errConnClosing = status.Error(codes.Canceled, "grpc: the client connection is closing")

// begin registers a new call of c (stream: a stream) to method, or
// returns why it cannot start: the caller's context ended, the connection
// is closed, or its process is Down.
func (c *directConn) begin(ctx context.Context, method string, desc *grpc.StreamDesc) (*Call, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	n := c.node
	d := n.d
	call := newCall(ctx, c, method, desc)
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case c.closed:
		return nil, errConnClosing
	case n.deadLocked():
		return nil, status.Errorf(codes.Unavailable, "grpcnet: process %s is down", n.addr)
	}
	d.nextID++
	call.ID = d.nextID
	d.calls[call] = struct{}{}
	return call, nil
}

type directAddr string

func (directAddr) Network() string  { return "direct" }
func (a directAddr) String() string { return string(a) }

var errNotProto = errors.New("grpcnet: Direct carries only proto messages")
