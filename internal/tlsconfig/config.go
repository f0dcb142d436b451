// The *tls.Config values and gRPC credentials built on a Source: every
// handshake takes the Source's current material.

package tlsconfig

import (
	"context"
	"crypto/tls"
	"errors"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// ServerConfig returns a server configuration that requires a client
// certificate signed by the current CA and serves the current certificate.
func (s *Source) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    m.pool,
				Certificates: []tls.Certificate{*m.cert},
				NextProtos:   []string{"h2"},
			}, nil
		},
	}
}

// ClientConfig returns a client configuration that presents the current
// certificate on every handshake and verifies servers against the CA as
// loaded now (a long-lived process that must follow CA rotation uses
// ClientCredentials instead).
func (s *Source) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    s.current().pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.current().cert, nil
		},
	}
}

// clientConfigNow is a client configuration with the current CA pool
// (standard verification: chain and the dialled name).
func (s *Source) clientConfigNow() *tls.Config {
	m := s.current()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    m.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return m.cert, nil
		},
	}
}

// ServerCredentials are the gRPC server credentials of ServerConfig.
func (s *Source) ServerCredentials() credentials.TransportCredentials {
	return credentials.NewTLS(s.ServerConfig())
}

// ClientCredentials are gRPC client credentials that take the current
// certificate and CA on every handshake.
func (s *Source) ClientCredentials() credentials.TransportCredentials {
	return &clientCreds{s: s}
}

// clientCreds builds standard gRPC TLS credentials per handshake, so that a
// rotated CA applies to new connections; hostname verification is grpc's
// (the dialled authority).
type clientCreds struct {
	s          *Source
	serverName string
}

func (c *clientCreds) tlsCreds() credentials.TransportCredentials {
	cfg := c.s.clientConfigNow()
	cfg.ServerName = c.serverName
	return credentials.NewTLS(cfg)
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.tlsCreds().ClientHandshake(ctx, authority, raw)
}

func (c *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("tlsconfig: client credentials cannot serve")
}

// Info names the protocol only: gRPC reads SecurityProtocol ("tls" turns
// on its TLS-only checks). The deprecated SecurityVersion and ServerName
// are left empty: gRPC never reads the first, and the second would only
// override the channel's :authority, which grpc.WithAuthority does now.
func (c *clientCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{s: c.s, serverName: c.serverName}
}

// OverrideServerName is part of the (deprecated) interface: gRPC never
// calls it; the name only replaces the verified host name in handshakes.
func (c *clientCreds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}

// DialOption returns the transport credentials option of a connection from
// a process with Source s: mutual TLS, or plaintext when s is nil.
func DialOption(s *Source) grpc.DialOption {
	if s == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(s.ClientCredentials())
}

// ServerOptions returns the credentials options of a gRPC server of a
// process with Source s (none when s is nil: plaintext).
func ServerOptions(s *Source) []grpc.ServerOption {
	if s == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(s.ServerCredentials())}
}
