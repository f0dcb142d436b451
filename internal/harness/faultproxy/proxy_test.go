package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// echoServer echoes every line back; received gets each line it read.
func echoServer(t *testing.T) (addr string, received chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	received = make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						if errors.Is(err, io.EOF) {
							io.WriteString(c, "bye\n") // after the client half-closed
						}
						return
					}
					received <- strings.TrimSuffix(line, "\n")
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), received
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New("127.0.0.1:0", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s+"\n"); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv reads one line within timeout.
func (c *client) recv(timeout time.Duration) (string, error) {
	c.c.SetReadDeadline(time.Now().Add(timeout))
	line, err := c.r.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

func (c *client) want(s string) {
	c.t.Helper()
	got, err := c.recv(5 * time.Second)
	if err != nil || got != s {
		c.t.Fatalf("read %q, %v; want %q", got, err, s)
	}
}

// quiet is how long a test waits to see that nothing arrives.
const quiet = 200 * time.Millisecond

func (c *client) wantNothing() {
	c.t.Helper()
	got, err := c.recv(quiet)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("read %q, %v; want nothing within %s", got, err, quiet)
	}
}

func wantReceived(t *testing.T, received chan string, s string) {
	t.Helper()
	select {
	case got := <-received:
		if got != s {
			t.Fatalf("target received %q, want %q", got, s)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("target did not receive %q", s)
	}
}

func wantNotReceived(t *testing.T, received chan string) {
	t.Helper()
	select {
	case got := <-received:
		t.Fatalf("target received %q through a stalled path", got)
	case <-time.After(quiet):
	}
}

func TestOnlyLoopback(t *testing.T) {
	for _, c := range []struct{ listen, target string }{
		{"0.0.0.0:0", "127.0.0.1:1"},
		{"127.0.0.1:0", "10.0.0.1:80"},
		{"[::1]:0", "127.0.0.1:1"},
		{"localhost:0", "127.0.0.1:1"},
	} {
		if _, err := New(c.listen, c.target, nil); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("New(%q, %q) = %v, want ErrNotLoopback", c.listen, c.target, err)
		}
	}
	p, err := New("127.0.0.2:0", "127.0.0.1:1", nil)
	if err != nil {
		t.Fatalf("127.0.0.2 is loopback: %v", err)
	}
	p.Close()
}

func TestForwardsAndHalfCloses(t *testing.T) {
	target, received := echoServer(t)
	p := newProxy(t, target)
	c := dial(t, p.Addr())
	c.send("hello")
	wantReceived(t, received, "hello")
	c.want("hello")
	// A half-close reaches the target, whose answer still comes back.
	c.c.(*net.TCPConn).CloseWrite()
	c.want("bye")
}

func TestBlackholeHoldsBytesUntilHealed(t *testing.T) {
	target, received := echoServer(t)
	p := newProxy(t, target)
	c := dial(t, p.Addr())
	c.send("before")
	c.want("before")
	<-received

	p.Blackhole()
	c.send("during")
	wantNotReceived(t, received)
	c.wantNothing()

	p.Heal()
	wantReceived(t, received, "during")
	c.want("during")
}

func TestBlackholeHoldsNewConnections(t *testing.T) {
	target, received := echoServer(t)
	p := newProxy(t, target)
	p.Blackhole()
	c := dial(t, p.Addr())
	c.send("x")
	wantNotReceived(t, received)
	p.Heal()
	wantReceived(t, received, "x")
	c.want("x")
}

func TestStallOneWay(t *testing.T) {
	target, received := echoServer(t)
	p := newProxy(t, target)
	c := dial(t, p.Addr())

	p.StallOneWay(FromTarget)
	c.send("a")
	wantReceived(t, received, "a") // requests get through
	c.wantNothing()                // answers do not
	p.Heal()
	c.want("a")

	p.StallOneWay(ToTarget)
	c.send("b")
	wantNotReceived(t, received)
	p.Heal()
	wantReceived(t, received, "b")
	c.want("b")
}

func TestRefuseResetsAndRefuses(t *testing.T) {
	target, received := echoServer(t)
	p := newProxy(t, target)
	c := dial(t, p.Addr())
	c.send("a")
	c.want("a")
	<-received

	p.Refuse()
	if got, err := c.recv(5 * time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("existing connection read %q, %v; want it reset", got, err)
	}
	// A new connection is reset at once: at connect or at the first read.
	if raw, err := net.Dial("tcp", p.Addr()); err == nil {
		c2 := &client{t: t, c: raw, r: bufio.NewReader(raw)}
		defer raw.Close()
		if got, err := c2.recv(5 * time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("new connection read %q, %v; want it closed", got, err)
		}
	}
	if n := p.Conns(); n != 0 {
		t.Fatalf("%d connections open while refusing", n)
	}

	p.Heal()
	c3 := dial(t, p.Addr())
	c3.send("c")
	c3.want("c")
}

func TestDelay(t *testing.T) {
	target, _ := echoServer(t)
	p := newProxy(t, target)
	c := dial(t, p.Addr())
	const d = 150 * time.Millisecond
	p.SetDelay(d)
	start := time.Now()
	c.send("slow")
	c.want("slow")
	// Delayed on the way there and on the way back.
	if el := time.Since(start); el < 2*d {
		t.Fatalf("round trip took %s, want at least %s", el, 2*d)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	target, _ := echoServer(t)
	p, err := New("127.0.0.1:0", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	c.send("a")
	c.want("a")
	p.Blackhole() // a stalled pump must not keep Close waiting
	c.send("b")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.recv(5 * time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
}
