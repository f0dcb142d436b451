// The seams of Config (config.go): a store whose clock, randomness,
// filesystem, network and worker pool are all replaced runs on them alone.

package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/grpcnet"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// stepRunner is a store.Runner that starts no goroutine: the test runs
// the passes on its own goroutine, as the simulation will.
type stepRunner struct{ pass func(wait bool) bool }

func (r *stepRunner) Start(_ int, pass func(wait bool) bool) { r.pass = pass }
func (r *stepRunner) Stop()                                  {}

// lockedReader makes a seeded source safe for concurrent use.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// A store on a manual clock, an in-memory filesystem and network, a
// seeded random source and the test's goroutine for its passes elects
// itself, takes a write and reads it back. Its address does not resolve
// and its data directory does not exist on the host: nothing reaches the
// host's network or disk.
func TestStoreRunsOnTheSeams(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	mem := grpcnet.NewMem()
	runner := &stepRunner{}
	cfg := store.Defaults()
	cfg.StoreID = 1
	cfg.Addr = "store1.invalid:7501"
	cfg.InitialStores = map[uint64]string{1: cfg.Addr}
	cfg.NewCluster = true
	cfg.DataDir = "data"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Clock = clk
	cfg.Rand = &lockedReader{r: rand.NewChaCha8([32]byte{1})}
	cfg.FS = vfs.NewMem()
	cfg.Network = mem
	cfg.Runner = runner
	s := startStore(t, cfg)
	if runner.pass == nil {
		t.Fatal("Start did not hand the Runner its pass")
	}
	conn, err := mem.Dial(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	kv := rangekvpb.NewKVClient(conn)

	// drive retries call until it succeeds, moving the clock one Raft tick
	// and running every queued pass between looks at it.
	drive := func(what string, call func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := func() <-chan error {
			ch := make(chan error, 1)
			go func() { ch <- call(ctx) }()
			return ch
		}
		done := start()
		for ticks := 0; ; ticks++ {
			select {
			case err := <-done:
				if err == nil {
					return
				}
				if ctx.Err() != nil {
					t.Fatalf("%s after %d ticks: %v", what, ticks, err)
				}
				done = start()
			case <-time.After(time.Millisecond):
				clk.Advance(cfg.HeartbeatInterval)
				for runner.pass(false) {
				}
			}
		}
	}
	rangeErr := func(h *rangekvpb.ResponseHeader) error {
		if e := h.GetError(); e != nil {
			return errors.New(e.GetMessage())
		}
		return nil
	}
	hdr := &rangekvpb.RequestHeader{RangeId: 1}
	drive("put", func(ctx context.Context) error {
		resp, err := kv.Put(ctx, &rangekvpb.PutRequest{Header: hdr, Key: []byte("k"), Value: []byte("v")})
		if err != nil {
			return err
		}
		return rangeErr(resp.GetHeader())
	})
	drive("get", func(ctx context.Context) error {
		resp, err := kv.Get(ctx, &rangekvpb.GetRequest{Header: hdr, Key: []byte("k")})
		if err != nil {
			return err
		}
		if err := rangeErr(resp.GetHeader()); err != nil {
			return err
		}
		if !resp.Found || string(resp.Value) != "v" {
			t.Fatalf("get k = (%q, found=%v), want v", resp.Value, resp.Found)
		}
		return nil
	})
}
