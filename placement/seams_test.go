// The seams of Config (config.go): a member whose clock, randomness,
// filesystem and network are all replaced runs on them alone.

package placement_test

import (
	"context"
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
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

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

// joinOnSeams starts a one-member placement group on a manual clock, an
// in-memory filesystem and network and a source seeded with seed, joins a
// store to it (which bootstraps the cluster) and returns the cluster ID.
func joinOnSeams(t *testing.T, seed byte) uint64 {
	t.Helper()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	mem := grpcnet.NewMem()
	cfg := placement.Defaults()
	cfg.ID = 1
	cfg.Addr = "pd1.invalid:7401"
	cfg.InitialCluster = map[uint64]string{1: cfg.Addr}
	cfg.DataDir = "pd"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Clock = clk
	cfg.Rand = &lockedReader{r: rand.NewChaCha8([32]byte{seed})}
	cfg.FS = vfs.NewMem()
	cfg.Network = mem
	s, err := placement.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conn, err := mem.Dial(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pd := rangekvpb.NewPlacementClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The clock moves one Raft tick at a time until the member leads.
	for ticks := 0; !s.IsLeader(); ticks++ {
		if ctx.Err() != nil {
			t.Fatalf("no leader after %d ticks", ticks)
		}
		clk.Advance(cfg.HeartbeatInterval)
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
	resp, err := pd.Join(ctx, &rangekvpb.JoinRequest{Address: "store1.invalid:7501", Empty: true})
	if err != nil || resp.Error != nil {
		t.Fatalf("join: %v %v", resp.GetError(), err)
	}
	if resp.StoreId == 0 || resp.BootstrapRange.GetRangeId() != 1 || resp.ClusterId == 0 {
		t.Fatalf("the first join did not bootstrap: %v", resp)
	}
	return resp.ClusterId
}

// A member on replaced seams elects itself and bootstraps the cluster;
// its address does not resolve and its data directory does not exist on
// the host. The cluster ID comes from Config.Rand: the same seed, the
// same ID.
func TestMemberRunsOnTheSeams(t *testing.T) {
	a, b, c := joinOnSeams(t, 1), joinOnSeams(t, 1), joinOnSeams(t, 2)
	if a != b {
		t.Fatalf("cluster IDs %x and %x from the same seed", a, b)
	}
	if a == c {
		t.Fatalf("cluster ID %x from two seeds", a)
	}
}
