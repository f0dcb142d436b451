package faultproxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Direction is one direction of the proxied connections.
type Direction int

const (
	// ToTarget is client → target bytes.
	ToTarget Direction = iota
	// FromTarget is target → client bytes.
	FromTarget
)

func (d Direction) String() string {
	if d == ToTarget {
		return "to-target"
	}
	return "from-target"
}

// Fault is the set of faults in force; the zero Fault forwards everything.
type Fault struct {
	// Refuse resets every connection and closes new ones on accept.
	Refuse bool
	// Stall holds the bytes of a direction (nothing is forwarded, nothing
	// is lost) until it is cleared.
	Stall [2]bool
	// Delay is added to every chunk of bytes in both directions.
	Delay time.Duration
}

// String describes f for logs.
func (f Fault) String() string {
	switch {
	case f.Refuse:
		return "refuse"
	case f.Stall[ToTarget] && f.Stall[FromTarget]:
		return "blackhole"
	case f.Stall[ToTarget]:
		return "stall to-target"
	case f.Stall[FromTarget]:
		return "stall from-target"
	case f.Delay > 0:
		return fmt.Sprintf("delay %s", f.Delay)
	}
	return "pass"
}

// ErrNotLoopback: an address is outside 127.0.0.0/8.
var ErrNotLoopback = errors.New("faultproxy: address is not on 127.0.0.0/8")

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("faultproxy: %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() || ip.As4()[0] != 127 {
		return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return nil
}

// Proxy forwards connections from its listen address to a target.
type Proxy struct {
	ln     net.Listener
	target string
	log    *slog.Logger

	mu struct {
		sync.Mutex
		fault   Fault
		changed chan struct{} // closed and replaced on every change
		conns   map[*conn]struct{}
		closed  bool
	}
	wg sync.WaitGroup
}

// New listens on listen (host:port on 127.0.0.0/8; port 0 picks one) and
// forwards every accepted connection to target. log may be nil.
func New(listen, target string, log *slog.Logger) (*Proxy, error) {
	if err := checkLoopback(listen); err != nil {
		return nil, err
	}
	if err := checkLoopback(target); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{ln: ln, target: target, log: log.With("proxy", ln.Addr().String(), "target", target)}
	p.mu.changed = make(chan struct{})
	p.mu.conns = map[*conn]struct{}{}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Set puts f in force. With f.Refuse every current connection is reset.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	p.mu.fault = f
	close(p.mu.changed)
	p.mu.changed = make(chan struct{})
	var reset []*conn
	if f.Refuse {
		for c := range p.mu.conns {
			reset = append(reset, c)
			delete(p.mu.conns, c)
		}
	}
	p.mu.Unlock()
	p.log.Info("fault", "fault", f.String())
	for _, c := range reset {
		c.close()
	}
}

// Fault returns the fault in force.
func (p *Proxy) Fault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.fault
}

// Heal clears every fault; stalled bytes flow again.
func (p *Proxy) Heal() { p.Set(Fault{}) }

// Blackhole stalls both directions.
func (p *Proxy) Blackhole() { p.Set(Fault{Stall: [2]bool{true, true}}) }

// StallOneWay stalls one direction only.
func (p *Proxy) StallOneWay(d Direction) {
	var f Fault
	f.Stall[d] = true
	p.Set(f)
}

// Refuse resets every connection and refuses new ones until healed.
func (p *Proxy) Refuse() { p.Set(Fault{Refuse: true}) }

// SetDelay delays every chunk by d (and clears other faults).
func (p *Proxy) SetDelay(d time.Duration) { p.Set(Fault{Delay: d}) }

// ResetConns closes every current connection; new ones are accepted as
// the fault in force says.
func (p *Proxy) ResetConns() {
	p.mu.Lock()
	var all []*conn
	for c := range p.mu.conns {
		all = append(all, c)
		delete(p.mu.conns, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.close()
	}
}

// Conns is the number of open proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.mu.conns)
}

// Close stops accepting, closes every connection and waits for all of the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.mu.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.ResetConns()
	p.wg.Wait()
	return err
}

// state returns the fault in force and a channel closed when it changes.
func (p *Proxy) state() (Fault, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.fault, p.mu.changed
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		cl, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if f, _ := p.state(); f.Refuse {
			resetClose(cl)
			continue
		}
		p.wg.Add(1)
		go p.serve(cl)
	}
}

// resetClose closes c with a TCP RST rather than a FIN where it can.
func resetClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) serve(cl net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.log.Debug("dial target", "err", err)
		resetClose(cl)
		return
	}
	c := &conn{p: p, client: cl, upstream: up, done: make(chan struct{})}
	p.mu.Lock()
	if p.mu.closed || p.mu.fault.Refuse {
		p.mu.Unlock()
		resetClose(cl)
		resetClose(up)
		return
	}
	p.mu.conns[c] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { c.pump(ToTarget, cl, up) })
	wg.Go(func() { c.pump(FromTarget, up, cl) })
	wg.Wait()
	c.close()
	p.mu.Lock()
	delete(p.mu.conns, c)
	p.mu.Unlock()
}
