// TLS connections: the client's transport credentials and how a refused
// certificate becomes an *AuthError instead of a store that looks down.
//
// In TLS 1.3 a server checks the client's certificate after the client's
// side of the handshake is complete, so a refusal arrives as an alert on
// the connection's first read, racing with gRPC's first write (which then
// fails as a broken pipe). The credentials therefore wait, after a TLS 1.3
// handshake, for the server's first bytes (a gRPC server sends its
// settings at once): an alert fails the handshake with the server's reason;
// data is kept and read by gRPC as usual. Handshake failures that retrying
// cannot fix are remembered per address, and the retry loops return them.

package router

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// AuthError: a TLS handshake with Addr failed for a reason retrying cannot
// fix: the server refused this client's certificate (none given, another
// CA, expired), the server's certificate does not verify against the
// client's CA or name, or the server does not speak TLS. It is returned
// at once, not retried.
type AuthError struct {
	Addr string
	Err  error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("router: TLS handshake with %s failed: %v", e.Addr, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// firstReadWait bounds the wait for the server's first bytes after a TLS
// 1.3 handshake; a server that has not spoken by then is used as is.
const firstReadWait = 2 * time.Second

// handshakeFailures remembers, per address, the last handshake failure
// that retrying cannot fix (cleared by a successful handshake).
type handshakeFailures struct {
	mu sync.Mutex
	m  map[string]error
}

func (h *handshakeFailures) record(addr string, err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil || !isAuthFailure(err) {
		delete(h.m, addr)
		return
	}
	if h.m == nil {
		h.m = map[string]error{}
	}
	h.m[addr] = err
}

// get returns the *AuthError of addr, or nil.
func (h *handshakeFailures) get(addr string) error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err, ok := h.m[addr]; ok {
		return &AuthError{Addr: addr, Err: err}
	}
	return nil
}

// isAuthFailure: an alert from the server, a certificate that does not
// verify, or a peer that does not speak TLS.
func isAuthFailure(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true // crypto/tls reports a received alert this way
	}
	var cve *tls.CertificateVerificationError
	var rhe tls.RecordHeaderError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cve) || errors.As(err, &rhe) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// tlsCreds are credentials.NewTLS with the first-read check and the
// failure record.
type tlsCreds struct {
	credentials.TransportCredentials
	failures *handshakeFailures
}

func newTLSCreds(cfg *tls.Config, failures *handshakeFailures) credentials.TransportCredentials {
	return &tlsCreds{TransportCredentials: credentials.NewTLS(cfg), failures: failures}
}

func (c *tlsCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err == nil {
		conn, err = confirmAccepted(ctx, conn, info)
	}
	c.failures.record(authority, err)
	return conn, info, err
}

func (c *tlsCreds) Clone() credentials.TransportCredentials {
	return &tlsCreds{TransportCredentials: c.TransportCredentials.Clone(), failures: c.failures}
}

// confirmAccepted waits, after a TLS 1.3 handshake, for the server's first
// bytes or its alert (see the file comment).
func confirmAccepted(ctx context.Context, conn net.Conn, info credentials.AuthInfo) (net.Conn, error) {
	ti, ok := info.(credentials.TLSInfo)
	if !ok || ti.State.Version != tls.VersionTLS13 {
		return conn, nil // TLS 1.2 checked the client certificate in the handshake
	}
	deadline := time.Now().Add(firstReadWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		conn.Close()
		return nil, err
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		conn.Close()
		return nil, err
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, err
	}
	return &prefixConn{Conn: conn, prefix: buf[:n]}, nil
}

// prefixConn replays bytes read before gRPC took the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
