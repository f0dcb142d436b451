package e2e

// Mutual TLS with real processes: `rangekv certs` makes the certificates;
// one placement member and three stores run with --tls-*; range 1 is
// replicated onto every store (store → placement, store ↔ store Raft and
// snapshots over TLS); the CLI and the router SDK serve puts and gets with
// the client certificate; a client without a certificate and one with a
// certificate of another CA are refused with a TLS error at once (not a
// timeout), and a plaintext client gets nothing; rotating a store's
// certificate files in place changes the certificate new handshakes see.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// runBin runs a binary that is expected to exit by itself (within 30s)
// with extra environment, returning its combined output and exit code.
func runBin(t *testing.T, bin string, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(procs.CleanEnv(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case ctx.Err() != nil:
		t.Fatalf("%s %s: still running after 30s", filepath.Base(bin), strings.Join(args, " "))
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return "", -1
}

func TestTLSCluster(t *testing.T) {
	base := t.TempDir()
	certs, otherCerts := filepath.Join(base, "certs"), filepath.Join(base, "other")

	// rangekv certs writes the six files, and refuses to overwrite them.
	if out, errOut, code := runCLI(t, "certs", "--dir", certs, "--hosts", "127.0.0.1,localhost"); code != 0 {
		t.Fatalf("rangekv certs: exit %d: %s%s", code, out, errOut)
	}
	for _, f := range tlsconfig.DevFiles {
		if _, err := os.Stat(filepath.Join(certs, f)); err != nil {
			t.Fatalf("rangekv certs did not write %s: %v", f, err)
		}
	}
	caBefore, _ := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if _, errOut, code := runCLI(t, "certs", "--dir", certs); code != 2 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("rangekv certs over existing files: exit %d, stderr %q; want exit 2 and a refusal", code, errOut)
	}
	if caAfter, _ := os.ReadFile(filepath.Join(certs, "ca.crt")); !bytes.Equal(caBefore, caAfter) {
		t.Fatal("a refused rangekv certs changed ca.crt")
	}
	if out, errOut, code := runCLI(t, "certs", "--dir", otherCerts); code != 0 {
		t.Fatalf("rangekv certs (other CA): exit %d: %s%s", code, out, errOut)
	}
	file := func(dir, name string) string { return filepath.Join(dir, name) }
	nodeTLS := []string{"--tls-cert", file(certs, "node.crt"), "--tls-key", file(certs, "node.key"), "--tls-ca", file(certs, "ca.crt")}
	clientTLS := []string{"--tls-cert", file(certs, "client.crt"), "--tls-key", file(certs, "client.key"), "--tls-ca", file(certs, "ca.crt")}

	// A partial set stops the process, naming the missing key (flags and
	// environment alike).
	storeBin, pdBin := filepath.Join(binDir, "rangekv-store"), placementBin(t)
	out, code := runBin(t, storeBin, nil, "--data-dir", file(base, "partial"), "--placement", "127.0.0.1:1",
		"--tls-cert", file(certs, "node.crt"), "--tls-ca", file(certs, "ca.crt"))
	if code != 2 || !strings.Contains(out, "tls.key: missing") {
		t.Fatalf("store with --tls-cert and --tls-ca only: exit %d, output %q; want exit 2 naming tls.key", code, out)
	}
	out, code = runBin(t, pdBin, []string{"RANGEKV_TLS_CERT=" + file(certs, "node.crt"), "RANGEKV_TLS_KEY=" + file(certs, "node.key")},
		"--id", "1", "--initial-cluster", "1=127.0.0.1:1", "--data-dir", file(base, "partial-pd"))
	if code != 2 || !strings.Contains(out, "tls.ca: missing") {
		t.Fatalf("placement with RANGEKV_TLS_CERT and RANGEKV_TLS_KEY only: exit %d, output %q; want exit 2 naming tls.ca", code, out)
	}
	out, code = runBin(t, storeBin, nil, "--data-dir", file(base, "badkey"), "--placement", "127.0.0.1:1",
		"--tls-cert", file(certs, "node.crt"), "--tls-key", file(certs, "client.key"), "--tls-ca", file(certs, "ca.crt"))
	if code != 2 || !strings.Contains(out, "tls.key: ") || !strings.Contains(out, "not the private key") {
		t.Fatalf("store with the key of another certificate: exit %d, output %q; want exit 2 naming tls.key", code, out)
	}

	// The cluster: one placement member, three stores, all with node.crt.
	addrs := freeAddrs(t, 8)
	pdAddr := addrs[0]
	pd := newProc(t, "placement", pdBin, file(base, "pd.log"), procs.PlacementArgs{
		ID: 1, Addr: pdAddr, HTTPAddr: addrs[1], DataDir: file(base, "pd"),
		InitialCluster: []procs.Peer{{ID: 1, Addr: pdAddr}},
		Extra:          slices.Concat(pdTestFlags, nodeTLS),
	}.Args()...)
	pd.start()
	all := []*proc{pd}
	var storeAddrs, storeHTTP []string
	for i := range 3 {
		addr, httpAddr := addrs[2+2*i], addrs[3+2*i]
		storeAddrs, storeHTTP = append(storeAddrs, addr), append(storeHTTP, httpAddr)
		args := procs.StoreArgs{Addr: addr, HTTPAddr: httpAddr, DataDir: file(base, fmt.Sprintf("store%d", i+1)),
			Placement: []string{pdAddr}, Extra: joinedStoreFlags(nodeTLS...)}
		p := newProc(t, fmt.Sprintf("store%d", i+1), storeBin, file(base, fmt.Sprintf("store%d.log", i+1)), args.Args()...)
		p.start()
		all = append(all, p)
	}

	clientSrc, err := tlsconfig.Load(tlsconfig.Files{Cert: file(certs, "client.crt"), Key: file(certs, "client.key"), CA: file(certs, "ca.crt")}, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(pdAddr, tlsconfig.DialOption(clientSrc))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pc := rangekvpb.NewPlacementClient(conn)
	range1Voters := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := pc.GetRange(ctx, &rangekvpb.GetRangeRequest{RangeId: 1})
		if err != nil || r.Error != nil || len(r.Ranges) != 1 {
			return 0
		}
		n := 0
		for _, rep := range r.Ranges[0].Descriptor_.Replicas {
			if rep.Role == rangekvpb.ReplicaRole_VOTER {
				n++
			}
		}
		return n
	}
	waitFor(t, "range 1 with 3 voters (stores joined placement over TLS)", 45*time.Second, func() bool {
		checkProcs(t, all...)
		return range1Voters() == 3
	})
	// Every store holds range 1 (the added replicas came by snapshot from
	// another store over TLS).
	for i, httpAddr := range storeHTTP {
		waitFor(t, fmt.Sprintf("store %d to hold range 1", i+1), 20*time.Second, func() bool {
			rs, err := rangeStatus(httpAddr)
			return err == nil && len(rs.Replicas) == 1 && rs.Replicas[0].Initialized
		})
	}

	// The CLI with the client certificate: puts and gets through placement.
	for i := range 5 {
		k, v := fmt.Sprintf("tls/%d", i), fmt.Sprintf("v%d", i)
		if out, errOut, code := runCLI(t, append(append([]string{"--placement", pdAddr}, clientTLS...), "put", k, v)...); code != 0 {
			t.Fatalf("rangekv put %s over TLS: exit %d: %s%s", k, code, out, errOut)
		}
		if out, errOut, code := runCLI(t, append(append([]string{"--placement", pdAddr}, clientTLS...), "get", k)...); code != 0 || strings.TrimSpace(out) != v {
			t.Fatalf("rangekv get %s over TLS: exit %d, %q %s; want %q", k, code, out, errOut, v)
		}
	}
	// The router SDK with the client certificate, in both modes.
	for _, mode := range []string{"placement", "static"} {
		var cl *router.Client
		if mode == "placement" {
			cl, err = router.New([]string{pdAddr}, router.Options{TLS: clientSrc.ClientConfig(), Seed: 1})
		} else {
			cl, err = router.NewStatic(storeAddrs, router.Options{TLS: clientSrc.ClientConfig(), Seed: 1})
		}
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := cl.Put(ctx, []byte("sdk/"+mode), []byte(mode)); err != nil {
			t.Fatalf("router (%s) put over TLS: %v", mode, err)
		}
		got, found, err := cl.Get(ctx, []byte("tls/3"))
		if err != nil || !found || string(got) != "v3" {
			t.Fatalf("router (%s) get over TLS: %q %v %v, want v3", mode, got, found, err)
		}
		cancel()
		cl.Close()
	}

	// Refused clients: each trusts the cluster's CA; one has no
	// certificate, one has a certificate of another CA. Both get an
	// *router.AuthError at once, not a timeout.
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(file(certs, "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	otherCert, err := tls.LoadX509KeyPair(file(otherCerts, "client.crt"), file(otherCerts, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want []string // one of these in the error
	}{
		{"no certificate", &tls.Config{RootCAs: pool}, []string{"certificate required", "bad certificate"}},
		{"certificate of another CA", &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{otherCert}},
			[]string{"unknown certificate authority", "bad certificate"}},
	} {
		for _, mode := range []string{"placement", "static"} {
			var cl *router.Client
			if mode == "placement" {
				cl, err = router.New([]string{pdAddr}, router.Options{TLS: tc.cfg, Seed: 1})
			} else {
				cl, err = router.NewStatic(storeAddrs, router.Options{TLS: tc.cfg, Seed: 1})
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, _, err = cl.Get(ctx, []byte("tls/1"))
			cancel()
			cl.Close()
			var ae *router.AuthError
			if !errors.As(err, &ae) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s (%s): %v, want a *router.AuthError (not a timeout)", tc.name, mode, err)
			}
			if !containsAny(err.Error(), tc.want) {
				t.Fatalf("%s (%s): %v, want the server's refusal (%s)", tc.name, mode, err, strings.Join(tc.want, " or "))
			}
		}
	}
	// A plaintext client writes nothing.
	if _, errOut, code := runCLI(t, "--placement", pdAddr, "--timeout", "2s", "put", "plain", "x"); code == 0 {
		t.Fatalf("plaintext put succeeded against a TLS cluster (stderr %q)", errOut)
	}
	if out, _, code := runCLI(t, append(append([]string{"--placement", pdAddr}, clientTLS...), "get", "plain")...); code != 1 {
		t.Fatalf("get of the plaintext client's key: exit %d (%q), want 1 (not found)", code, out)
	}

	// Rotation without restart: node.crt and node.key are replaced in
	// place by a new pair from the same CA; new handshakes with every
	// process see the new serial, and the cluster keeps serving.
	serialAt := func(addr string) string {
		d := &tls.Dialer{Config: clientSrc.ClientConfig()}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return "error: " + err.Error()
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	oldSerial := certSerial(t, file(certs, "node.crt"))
	servers := append([]string{pdAddr}, storeAddrs...)
	for _, a := range servers {
		if got := serialAt(a); got != oldSerial {
			t.Fatalf("before rotation %s presents serial %s, want node.crt's %s", a, got, oldSerial)
		}
	}
	ca, err := tlsconfig.LoadCA(file(certs, "ca.crt"), file(certs, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := ca.Issue(tlsconfig.Leaf{CommonName: "rotated", Hosts: []string{"127.0.0.1"}, Server: true, Client: true,
		NotBefore: time.Now().Add(-time.Hour), ValidFor: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"node.key": rotated.KeyPEM, "node.crt": rotated.CertPEM} {
		tmp := file(certs, name+".new")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file(certs, name)); err != nil {
			t.Fatal(err)
		}
	}
	newSerial := certSerial(t, file(certs, "node.crt"))
	for _, a := range servers {
		waitFor(t, fmt.Sprintf("%s to present the rotated certificate", a), 10*time.Second, func() bool {
			checkProcs(t, all...)
			return serialAt(a) == newSerial
		})
	}
	if out, errOut, code := runCLI(t, append(append([]string{"--placement", pdAddr}, clientTLS...), "put", "after/rotation", "ok")...); code != 0 {
		t.Fatalf("put after rotation: exit %d: %s%s", code, out, errOut)
	}
	checkProcs(t, all...)
}

// certSerial is the serial of the certificate in path (decimal).
func certSerial(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
