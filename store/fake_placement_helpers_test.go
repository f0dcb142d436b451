// Scope: one store against a fake placement server, for tests that script
// placement's answers.

package store_test

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// fakePlacementStore serves pd as the only placement member on loopback
// and returns the config of a new in-memory store that uses it, with fast
// Raft timers; the server stops when the test ends (after the store, if
// startStore started it).
func fakePlacementStore(t *testing.T, pd rangekvpb.PlacementServer) store.Config {
	t.Helper()
	pdLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	rangekvpb.RegisterPlacementServer(srv, pd)
	go srv.Serve(pdLn) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := store.Defaults()
	cfg.StoreID = 0
	cfg.Listener, cfg.Addr = ln, ln.Addr().String()
	cfg.Placement = []string{pdLn.Addr().String()}
	cfg.FS, cfg.DataDir = vfs.NewMem(), "data"
	cfg.HeartbeatInterval = 25 * time.Millisecond
	cfg.ElectionTimeout = 250 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// startStore opens and starts a store with cfg; it stops when the test
// ends.
func startStore(t *testing.T, cfg store.Config) *store.Store {
	t.Helper()
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
