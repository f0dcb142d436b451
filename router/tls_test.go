package router

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// tlsKV answers every Get with "not found".
type tlsKV struct {
	rangekvpb.UnimplementedKVServer
}

func (tlsKV) Get(context.Context, *rangekvpb.GetRequest) (*rangekvpb.GetResponse, error) {
	return &rangekvpb.GetResponse{Header: &rangekvpb.ResponseHeader{}}, nil
}

// serveTLS serves tlsKV with mutual TLS from the files of dir.
func serveTLS(t *testing.T, dir string) string {
	t.Helper()
	src, err := tlsconfig.Load(tlsconfig.Files{Cert: filepath.Join(dir, "node.crt"), Key: filepath.Join(dir, "node.key"), CA: filepath.Join(dir, "ca.crt")}, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(tlsconfig.ServerOptions(src)...)
	rangekvpb.RegisterKVServer(s, tlsKV{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); wg.Wait() })
	return ln.Addr().String()
}

func devCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := tlsconfig.GenerateDev(dir, tlsconfig.DevOptions{Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A client whose certificate the server refuses gets an *AuthError with
// the server's reason at once, every time: in TLS 1.3 the refusal arrives
// after the client's handshake, racing with gRPC's first write, so a
// single try could pass by luck.
func TestRefusedCertificateIsAuthError(t *testing.T) {
	dir, other := devCerts(t), devCerts(t)
	addr := serveTLS(t, dir)
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	otherCert, err := tls.LoadX509KeyPair(filepath.Join(other, "client.crt"), filepath.Join(other, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(cfg *tls.Config) error {
		c, err := NewStatic([]string{addr}, Options{TLS: cfg, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _, err = c.Get(ctx, []byte("k"))
		return err
	}
	for i := range 10 {
		for _, tc := range []struct {
			name string
			cfg  *tls.Config
			want string
		}{
			{"no certificate", &tls.Config{RootCAs: pool}, "certificate required"},
			{"another CA", &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{otherCert}}, "unknown certificate authority"},
			{"server of another CA", &tls.Config{RootCAs: x509.NewCertPool(), Certificates: []tls.Certificate{good}}, "certificate signed by unknown authority"},
		} {
			err := get(tc.cfg)
			var ae *AuthError
			if !errors.As(err, &ae) || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("try %d, %s: %v, want an *AuthError saying %q (not a timeout)", i, tc.name, err, tc.want)
			}
			if ae.Addr != addr {
				t.Fatalf("%s: AuthError.Addr %q, want %q", tc.name, ae.Addr, addr)
			}
		}
		if err := get(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{good}}); err != nil {
			t.Fatalf("try %d, valid certificate: %v", i, err)
		}
	}
}
