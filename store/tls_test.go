package store_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// Stores with mutual TLS: Raft messages between them and the snapshot that
// brings a new replica travel over TLS; a client with the node
// certificate reads and writes, and one without a certificate is refused.
func TestTLSStores(t *testing.T) {
	dir := t.TempDir()
	if _, err := tlsconfig.GenerateDev(dir, tlsconfig.DevOptions{Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	src, err := tlsconfig.Load(tlsconfig.Files{Cert: filepath.Join(dir, "node.crt"), Key: filepath.Join(dir, "node.key"), CA: filepath.Join(dir, "ca.crt")}, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.Start(t, 3, testcluster.Options{Replicas: 2, TLS: src})
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%02d", i)), []byte("v")); err != nil {
			t.Fatalf("put over TLS: %v", err)
		}
	}
	// Store 3 joins range 1 as a learner: its data comes by snapshot over
	// TLS.
	target := c.ReplicaStatus(c.WaitLeader(1), 1).GetAppliedIndex()
	if _, err := c.ChangeReplicas(ctx, 1, rangekvpb.ReplicaChangeType_ADD_LEARNER, 3); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("store 3 to apply the writes", 20*time.Second, func() bool {
		st := c.ReplicaStatus(2, 1)
		return st.GetInitialized() && st.GetAppliedIndex() >= target
	})

	plain, err := router.NewStatic(c.Addrs, router.Options{TLS: &tls.Config{RootCAs: src.ClientConfig().RootCAs}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, _, err = plain.Get(ctx, []byte("k01"))
	var ae *router.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("client without a certificate: %v, want *router.AuthError", err)
	}
}
