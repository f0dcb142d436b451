package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the injected clock of the check interval.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// devDir writes development certificates for 127.0.0.1 into a temp dir.
func devDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := GenerateDev(dir, DevOptions{Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func nodeFiles(dir string) Files {
	return Files{Cert: filepath.Join(dir, "node.crt"), Key: filepath.Join(dir, "node.key"), CA: filepath.Join(dir, "ca.crt")}
}

func clientFiles(dir string) Files {
	return Files{Cert: filepath.Join(dir, "client.crt"), Key: filepath.Join(dir, "client.key"), CA: filepath.Join(dir, "ca.crt")}
}

func load(t *testing.T, f Files, clk *fakeClock) *Source {
	t.Helper()
	s, err := Load(f, Options{Now: clk.now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handshake result as both sides saw it.
type result struct {
	serverSawClient *big.Int // serial of the client's certificate (nil: none)
	clientSawServer *big.Int
	serverErr       error
	clientErr       error
}

// server accepts TLS connections with cfg and reports each handshake.
type server struct {
	ln  net.Listener
	out chan result
	wg  sync.WaitGroup
}

func startServer(t *testing.T, cfg *tls.Config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, out: make(chan result, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, cfg)
			err = tc.Handshake()
			r := result{serverErr: err}
			if err == nil {
				if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
					r.serverSawClient = pc[0].SerialNumber
				}
				tc.Write([]byte("x"))
			}
			tc.Close()
			s.out <- r
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// dial makes one handshake (and reads one byte, so that a TLS 1.3 client
// learns that the server refused its certificate).
func (s *server) dial(t *testing.T, cfg *tls.Config) result {
	t.Helper()
	var r result
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.ln.Addr().String(), cfg)
	if err == nil {
		r.clientSawServer = c.ConnectionState().PeerCertificates[0].SerialNumber
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	r.clientErr = err
	select {
	case sr := <-s.out:
		r.serverSawClient, r.serverErr = sr.serverSawClient, sr.serverErr
	case <-time.After(5 * time.Second):
		t.Fatal("server reported no handshake")
	}
	return r
}

func serialOf(t *testing.T, path string) *big.Int {
	t.Helper()
	s, err := Load(Files{Cert: path, Key: strings.TrimSuffix(path, ".crt") + ".key", CA: filepath.Join(filepath.Dir(path), "ca.crt")}, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return s.Leaf().SerialNumber
}

// reissue replaces dir's node certificate and key with new ones from the
// same CA; writeKey false leaves the old key (a half-done rotation).
func reissue(t *testing.T, dir string, writeKey bool) *big.Int {
	t.Helper()
	ca, err := LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.Issue(Leaf{CommonName: "rotated", Hosts: []string{"127.0.0.1"}, Server: true, Client: true,
		NotBefore: time.Now().Add(-time.Hour), ValidFor: time.Hour * 24})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node.crt"), p.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if writeKey {
		if err := os.WriteFile(filepath.Join(dir, "node.key"), p.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certOf(t, p.CertPEM).SerialNumber
}

func certOf(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestValidateNamesTheMissingKey(t *testing.T) {
	for _, tc := range []struct {
		f    Files
		want string
	}{
		{Files{Cert: "c"}, KeyKey},
		{Files{Key: "k"}, KeyCert},
		{Files{CA: "a"}, KeyCert},
		{Files{Cert: "c", Key: "k"}, KeyCA},
		{Files{Cert: "c", CA: "a"}, KeyKey},
		{Files{Key: "k", CA: "a"}, KeyCert},
	} {
		err := tc.f.Validate()
		var te *Error
		if !errors.As(err, &te) || te.Key != tc.want {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.f, err, tc.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want+": missing") {
			t.Errorf("Validate(%+v) = %q, want it to start with %q", tc.f, err, tc.want+": missing")
		}
	}
	if err := (Files{}).Validate(); err != nil {
		t.Errorf("no files: %v, want nil (plaintext)", err)
	}
	if err := (Files{Cert: "c", Key: "k", CA: "a"}).Validate(); err != nil {
		t.Errorf("all files: %v, want nil", err)
	}
}

func TestLoadBadFilesNameTheKey(t *testing.T) {
	dir := devDir(t)
	other := devDir(t) // another CA
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := nodeFiles(dir)
	for _, tc := range []struct {
		name string
		f    Files
		key  string
		msg  string
	}{
		{"cert missing", Files{Cert: filepath.Join(dir, "nope.crt"), Key: good.Key, CA: good.CA}, KeyCert, "no such file"},
		{"key missing", Files{Cert: good.Cert, Key: filepath.Join(dir, "nope.key"), CA: good.CA}, KeyKey, "no such file"},
		{"ca missing", Files{Cert: good.Cert, Key: good.Key, CA: filepath.Join(dir, "nope.crt")}, KeyCA, "no such file"},
		{"cert not pem", Files{Cert: garbage, Key: good.Key, CA: good.CA}, KeyCert, "no PEM certificate"},
		{"ca not pem", Files{Cert: good.Cert, Key: good.Key, CA: garbage}, KeyCA, "no PEM certificate"},
		{"key of another cert", Files{Cert: good.Cert, Key: filepath.Join(dir, "client.key"), CA: good.CA}, KeyKey, "not the private key"},
		{"cert of another CA", Files{Cert: filepath.Join(other, "node.crt"), Key: filepath.Join(other, "node.key"), CA: good.CA}, KeyCert, "not valid under tls.ca"},
		{"partial", Files{Cert: good.Cert, Key: good.Key}, KeyCA, "missing"},
	} {
		_, err := Load(tc.f, Options{Logger: quiet()})
		var te *Error
		if !errors.As(err, &te) || te.Key != tc.key || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), tc.key+": ") {
			t.Errorf("%s: Load = %v, want an error naming %s and saying %q", tc.name, err, tc.key, tc.msg)
		}
	}
	if _, err := Load(good, Options{Logger: quiet()}); err != nil {
		t.Errorf("good files: %v", err)
	}
}

func TestReloadNewHandshakesUseNewCertificate(t *testing.T) {
	dir := devDir(t)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	srv := load(t, nodeFiles(dir), clk)
	cli := load(t, clientFiles(dir), clk)
	s := startServer(t, srv.ServerConfig())

	old := serialOf(t, filepath.Join(dir, "node.crt"))
	r := s.dial(t, cli.ClientConfig())
	if r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
	}
	if r.clientSawServer.Cmp(old) != 0 {
		t.Fatalf("client saw serial %v, want %v", r.clientSawServer, old)
	}
	if want := serialOf(t, filepath.Join(dir, "client.crt")); r.serverSawClient.Cmp(want) != 0 {
		t.Fatalf("server saw client serial %v, want %v", r.serverSawClient, want)
	}

	rotated := reissue(t, dir, true)
	// Within the check interval the files are not re-read.
	clk.add(DefaultCheckInterval / 2)
	if r := s.dial(t, cli.ClientConfig()); r.clientSawServer.Cmp(old) != 0 {
		t.Fatalf("before the check interval: serial %v, want the old %v", r.clientSawServer, old)
	}
	clk.add(DefaultCheckInterval)
	r = s.dial(t, cli.ClientConfig())
	if r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("handshake after rotation: client %v, server %v", r.clientErr, r.serverErr)
	}
	if r.clientSawServer.Cmp(rotated) != 0 {
		t.Fatalf("after rotation the client saw serial %v, want the new %v (old %v)", r.clientSawServer, rotated, old)
	}
}

func TestHalfDoneRotationKeepsPreviousCertificate(t *testing.T) {
	dir := devDir(t)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	srv := load(t, nodeFiles(dir), clk)
	cli := load(t, clientFiles(dir), clk)
	s := startServer(t, srv.ServerConfig())
	old := serialOf(t, filepath.Join(dir, "node.crt"))

	halfDone := reissue(t, dir, false) // new cert, old key
	if halfDone.Cmp(old) == 0 {
		t.Fatalf("the half-done certificate has the old serial %v", old)
	}
	clk.add(DefaultCheckInterval)
	r := s.dial(t, cli.ClientConfig())
	if r.clientErr != nil || r.clientSawServer.Cmp(old) != 0 {
		t.Fatalf("half-done rotation: serial %v err %v, want the old %v served, not the half-done %v", r.clientSawServer, r.clientErr, old, halfDone)
	}
	var te *Error
	if err := srv.Err(); !errors.As(err, &te) || te.Key != KeyKey {
		t.Fatalf("Err() = %v, want an error naming %s", err, KeyKey)
	}

	// Finish the rotation (a new pair, both files).
	rotated := reissue(t, dir, true)
	clk.add(DefaultCheckInterval)
	if r := s.dial(t, cli.ClientConfig()); r.clientErr != nil || r.clientSawServer.Cmp(rotated) != 0 {
		t.Fatalf("finished rotation: serial %v err %v, want %v", r.clientSawServer, r.clientErr, rotated)
	}
	if err := srv.Err(); err != nil {
		t.Fatalf("Err() after a good reload = %v", err)
	}
}

func TestServerRefusesClientWithoutValidCertificate(t *testing.T) {
	dir := devDir(t)
	other := devDir(t)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	srv := load(t, nodeFiles(dir), clk)
	s := startServer(t, srv.ServerConfig())
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)

	// No certificate at all.
	r := s.dial(t, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "client didn't provide a certificate") {
		t.Fatalf("no client certificate: server error %v, want a refusal", r.serverErr)
	}
	if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), "tls:") {
		t.Fatalf("no client certificate: client error %v, want a TLS alert", r.clientErr)
	}

	// A certificate from another CA (the client trusts the right CA).
	otherCert, err := tls.LoadX509KeyPair(filepath.Join(other, "client.crt"), filepath.Join(other, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	r = s.dial(t, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &otherCert, nil }})
	if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "certificate signed by unknown authority") {
		t.Fatalf("other CA: server error %v, want unknown authority", r.serverErr)
	}
	if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), "tls:") {
		t.Fatalf("other CA: client error %v, want a TLS alert", r.clientErr)
	}

	// The right client certificate is accepted.
	cli := load(t, clientFiles(dir), clk)
	if r := s.dial(t, cli.ClientConfig()); r.serverErr != nil || r.clientErr != nil {
		t.Fatalf("valid client: server %v, client %v", r.serverErr, r.clientErr)
	}
}

// The gRPC client credentials verify the dialled address against the
// server certificate's names, and follow a CA rotation.
func TestClientCredentialsVerifyNameAndFollowCA(t *testing.T) {
	dir := devDir(t)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}

	// A server whose certificate names only "example.invalid".
	wrongDir := t.TempDir()
	if _, err := GenerateDev(wrongDir, DevOptions{Hosts: []string{"example.invalid"}}); err != nil {
		t.Fatal(err)
	}
	handshake := func(serverFiles Files, client *Source) error {
		srv := load(t, serverFiles, clk)
		s := startServer(t, srv.ServerConfig())
		raw, err := net.Dial("tcp", s.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, _, err := client.ClientCredentials().ClientHandshake(ctx, s.ln.Addr().String(), raw)
		if err == nil {
			conn.Read(make([]byte, 1))
		}
		<-s.out
		return err
	}
	wrongClient := load(t, clientFiles(wrongDir), clk)
	err := handshake(nodeFiles(wrongDir), wrongClient)
	if err == nil || !strings.Contains(err.Error(), "x509: cannot validate certificate for 127.0.0.1") {
		t.Fatalf("server certificate without 127.0.0.1: %v, want a name mismatch", err)
	}
	cli := load(t, clientFiles(dir), clk)
	if err := handshake(nodeFiles(dir), cli); err != nil {
		t.Fatalf("matching name: %v", err)
	}

	// Rotate the client's files to another CA: the credentials now refuse
	// a server of the old CA.
	oldDir := t.TempDir()
	for _, f := range []string{"ca.crt", "node.crt", "node.key"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if err := os.WriteFile(filepath.Join(oldDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newDir := devDir(t)
	for _, f := range []string{"ca.crt", "client.crt", "client.key"} {
		b, _ := os.ReadFile(filepath.Join(newDir, f))
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	clk.add(DefaultCheckInterval)
	err = handshake(nodeFiles(oldDir), cli)
	if err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("after CA rotation, a server of the old CA: %v, want unknown authority", err)
	}
	if err := handshake(nodeFiles(newDir), cli); err != nil {
		t.Fatalf("after CA rotation, a server of the new CA: %v", err)
	}
}

func TestGenerateDevRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	paths, err := GenerateDev(dir, DevOptions{Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(DevFiles) {
		t.Fatalf("wrote %d files, want %d", len(paths), len(DevFiles))
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if _, err := GenerateDev(dir, DevOptions{Hosts: []string{"127.0.0.1"}}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second run: %v, want a refusal mentioning --force", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if string(before) != string(after) {
		t.Fatal("a refused run changed ca.crt")
	}
	if _, err := GenerateDev(dir, DevOptions{Hosts: []string{"127.0.0.1"}, Force: true}); err != nil {
		t.Fatalf("--force: %v", err)
	}
	forced, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if string(forced) == string(before) {
		t.Fatal("--force did not write a new CA")
	}
	st, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	// The node certificate carries the hosts and both usages.
	s, err := Load(nodeFiles(dir), Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	leaf := s.Leaf()
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("node IP SANs %v, want [127.0.0.1]", leaf.IPAddresses)
	}
	if len(leaf.ExtKeyUsage) != 2 {
		t.Fatalf("node usages %v, want server and client", leaf.ExtKeyUsage)
	}
}
