// Store incarnations: fencing a store whose data directory was wiped.
//
// A store started again under the same store ID on an empty data directory
// remembers none of its Raft votes; with static bootstrap it even
// re-creates range 1 with the same replica IDs. It could vote twice in one
// term and elect two leaders (issue 15 item 3, Q4; docs/operations.md,
// "A store whose disk was wiped").
//
// Every data directory gets a random incarnation when it is first
// initialized, and every Raft stream carries the sender's incarnation
// (gRPC metadata). Invariant: a store delivers Raft messages from a peer
// store only under the incarnation it first accepted from that peer,
// recorded durably (synced) before the first message of the stream is
// delivered; a stream from any other incarnation is refused with
// FailedPrecondition. So the votes and acknowledgements of a wiped store
// never reach a peer that knew it, whenever and however it is started.
//
// On top of that, with static bootstrap, a store whose data directory is
// empty asks every peer of InitialStores, before it writes anything,
// whether it knows an incarnation of this store ID (a probe stream, which
// records nothing); if one does, Open fails with *ErrWipedStore. Peers
// that do not answer within bootstrapProbeTimeout are skipped (the stores
// of a new cluster start in any order); the fence above still holds.
// Config.NewCluster skips the probe.

package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/internal/clock"
	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/internal/tlsconfig"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	// gRPC metadata of a Raft stream: the sender's incarnation, and "1"
	// on a bootstrap probe.
	mdIncarnation = "rangekv-incarnation"
	mdProbe       = "rangekv-probe"
	// bootstrapProbeTimeout bounds the wait for the peers' answers.
	bootstrapProbeTimeout = 3 * time.Second
)

// ErrWipedStore: the data directory is empty but a peer store already
// exchanged Raft messages with an earlier incarnation of this store ID.
type ErrWipedStore struct {
	StoreID, Peer uint64
}

func (e *ErrWipedStore) Error() string {
	return fmt.Sprintf("store-id: store %d starts on an empty data directory, but store %d already exchanged Raft messages with an earlier store %d whose data is gone (wiped or replaced); "+
		"started like this it would forget its Raft votes and could vote twice in a term, so it refuses to start. "+
		"Restore its data directory, or replace it by a store with a new --store-id; --new-cluster skips this check and is only for a cluster whose stores are all new (the other stores refuse this one's Raft traffic anyway)",
		e.StoreID, e.Peer, e.StoreID)
}

// peerIncarnations caches the incarnation accepted from each peer store.
type peerIncarnations struct {
	sync.Mutex
	m map[uint64]uint64
}

// loadIncarnation reads this data directory's incarnation, or picks a new
// one from rnd (ok false: not persisted yet, see saveIncarnation).
func loadIncarnation(db *pebble.DB, rnd io.Reader) (inc uint64, ok bool, err error) {
	v, c, err := db.Get(keys.StoreIncarnationKey())
	if err == nil {
		defer c.Close()
		if len(v) != 8 {
			return 0, false, fmt.Errorf("store incarnation: %d bytes, want 8", len(v))
		}
		return binary.BigEndian.Uint64(v), true, nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return 0, false, err
	}
	var b [8]byte
	for inc == 0 {
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return 0, false, err
		}
		inc = binary.BigEndian.Uint64(b[:])
	}
	return inc, false, nil
}

func saveIncarnation(db *pebble.DB, inc uint64) error {
	return db.Set(keys.StoreIncarnationKey(), binary.BigEndian.AppendUint64(nil, inc), pebble.Sync)
}

// withIncarnation returns ctx carrying this store's incarnation for a
// Raft stream (and the probe mark).
func (s *Store) withIncarnation(ctx context.Context, probe bool) context.Context {
	kv := []string{mdIncarnation, strconv.FormatUint(s.incarnation, 10)}
	if probe {
		kv = append(kv, mdProbe, "1")
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// streamIncarnation reads the sender's incarnation (0: a sender that
// predates incarnations) and whether the stream is a probe.
func streamIncarnation(ctx context.Context) (inc uint64, probe bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(mdIncarnation); len(v) > 0 {
		inc, _ = strconv.ParseUint(v[0], 10, 64)
	}
	return inc, len(md.Get(mdProbe)) > 0
}

// admitPeer decides whether a Raft stream from store peer under
// incarnation inc is accepted (the invariant above). The first accepted
// incarnation is recorded (synced) unless the stream is a probe.
func (s *Store) admitPeer(peer, inc uint64, probe bool) error {
	if peer == 0 || inc == 0 {
		return nil
	}
	p := &s.peerInc
	p.Lock()
	defer p.Unlock()
	known, ok := p.m[peer]
	if !ok {
		v, c, err := s.db.Get(keys.PeerIncarnationKey(peer))
		switch {
		case err == nil:
			if len(v) == 8 {
				known, ok = binary.BigEndian.Uint64(v), true
			}
			c.Close()
		case !errors.Is(err, pebble.ErrNotFound):
			return status.Errorf(codes.Unavailable, "read the incarnation of store %d: %v", peer, err)
		}
	}
	if ok && known != inc {
		s.metrics.messagesDropped.WithLabelValues("wiped_store").Inc()
		s.log.Error("refusing Raft traffic from a store whose data directory was wiped or replaced (it could vote twice in a term)",
			"peer", peer, "incarnation", inc, "known", known, "probe", probe)
		return status.Errorf(codes.FailedPrecondition,
			"store %d refuses Raft traffic from store %d: it is not the incarnation of store %d this store exchanged Raft messages with (its data directory was wiped or replaced), and it could vote twice in a term",
			s.cfg.StoreID, peer, peer)
	}
	if !ok && !probe {
		if err := s.db.Set(keys.PeerIncarnationKey(peer), binary.BigEndian.AppendUint64(nil, inc), pebble.Sync); err != nil {
			return status.Errorf(codes.Unavailable, "record the incarnation of store %d: %v", peer, err)
		}
		ok = true
	}
	if ok {
		if p.m == nil {
			p.m = make(map[uint64]uint64)
		}
		p.m[peer] = inc
	}
	return nil
}

// probePeers asks every peer of InitialStores whether it knows another
// incarnation of this store ID; it returns *ErrWipedStore if one does.
// Peers that do not answer in time are skipped.
func (s *Store) probePeers() error {
	ctx, cancel := clock.WithTimeout(context.Background(), s.cfg.Clock, bootstrapProbeTimeout)
	defer cancel()
	type answer struct {
		peer uint64
		err  error
	}
	answers := make(chan answer, len(s.cfg.InitialStores))
	n := 0
	for id, addr := range s.cfg.InitialStores {
		if id == s.cfg.StoreID {
			continue
		}
		n++
		go func() { answers <- answer{id, s.probe(ctx, id, addr)} }()
	}
	var wiped *ErrWipedStore
	for range n {
		a := <-answers
		switch {
		case status.Code(a.err) == codes.FailedPrecondition:
			wiped = &ErrWipedStore{StoreID: s.cfg.StoreID, Peer: a.peer}
		case a.err != nil:
			s.log.Info("new data directory: a peer store did not answer whether it knew this store before; going on", "peer", a.peer, "err", a.err)
		}
	}
	if wiped != nil {
		return wiped
	}
	return nil
}

// probe opens a probe stream to one peer and returns its verdict.
func (s *Store) probe(ctx context.Context, peer uint64, addr string) error {
	conn, err := s.cfg.Network.Dial(addr, tlsconfig.DialOption(s.cfg.TLS))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := rangekvpb.NewRaftClient(conn).RaftStream(s.withIncarnation(ctx, true))
	if err != nil {
		return err
	}
	if err := stream.Send(&rangekvpb.RaftMessageBatch{FromStore: s.cfg.StoreID, ToStore: peer}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}
