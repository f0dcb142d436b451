package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// conn is one proxied connection: a client side and an upstream side.
type conn struct {
	p                *Proxy
	client, upstream net.Conn
	once             sync.Once
	done             chan struct{}
}

// close resets both sides and stops both pumps.
func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		resetClose(c.client)
		resetClose(c.upstream)
	})
}

type chunk struct {
	data []byte
	at   time.Time // when it was read
}

// pumpQueue bounds the chunks read but not yet written per direction;
// past it the reader stops reading (TCP backpressure).
const pumpQueue = 64

// pump copies src to dst for direction d: a reader stamps each chunk with
// its read time; the writer holds it while d is stalled and until its time
// plus the delay in force. At EOF, once the chunks read before it are
// written, dst is half-closed (the other direction goes on); any other
// error closes the whole connection.
func (c *conn) pump(d Direction, src, dst net.Conn) {
	q := make(chan chunk, pumpQueue)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case q <- chunk{buf[:n], time.Now()}:
				case <-c.done:
					readErr = net.ErrClosed
					return
				}
			}
			if err != nil {
				readErr = err
				return
			}
		}
	})
	defer wg.Wait()
	for ch := range q {
		if !c.hold(d, ch.at) {
			c.close()
			return
		}
		if _, err := dst.Write(ch.data); err != nil {
			c.close()
			return
		}
	}
	wg.Wait() // readErr is set
	if tc, ok := dst.(*net.TCPConn); ok && errors.Is(readErr, io.EOF) {
		tc.CloseWrite()
		return
	}
	c.close()
}

// hold waits until direction d is not stalled and the delay in force has
// passed since at. It returns false when the connection closes meanwhile.
func (c *conn) hold(d Direction, at time.Time) bool {
	for {
		f, changed := c.p.state()
		if f.Refuse {
			return false
		}
		if f.Stall[d] {
			select {
			case <-changed:
				continue
			case <-c.done:
				return false
			}
		}
		wait := time.Until(at.Add(f.Delay))
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			return true
		case <-changed: // the delay may have changed: recompute
			t.Stop()
		case <-c.done:
			t.Stop()
			return false
		}
	}
}
