// Joining the cluster through placement: a new store gets its store ID and
// the cluster ID and keeps them in its data directory; the first store of
// a new cluster creates range 1; a data directory of another cluster is
// refused.

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// joinTimeout bounds how long a new store waits for placement.
const joinTimeout = 2 * time.Minute

// restartJoinTimeout bounds the Join a store with an identity and ranges
// tries before it starts without placement; it gives up sooner when no
// member can be reached (a member that is down refuses the connection at
// once).
const restartJoinTimeout = 2 * time.Second

// joinPlacement gets the store its identity. A store whose data directory
// holds an identity and ranges does not need placement to start: it tries
// Join briefly (to refuse a data directory of another cluster, and to
// update its address) and, if placement does not answer, starts from what it
// persisted and joins in the background (rejoinPlacement). A new store,
// or one that holds no range, waits for placement as it has nothing to
// serve without it.
func (s *Store) joinPlacement() error {
	var ident rangekvpb.StoreIdent
	hasIdent, err := getProto(s.db, keys.StoreIdentKey(), &ident)
	if err != nil {
		return err
	}
	if hasIdent && s.cfg.StoreID != 0 && ident.StoreId != s.cfg.StoreID {
		return &ErrIdentityMismatch{Found: &ident, Want: &rangekvpb.StoreIdent{StoreId: s.cfg.StoreID}}
	}
	descs, err := loadDescriptors(s.db)
	if err != nil {
		return err
	}
	restart := hasIdent && len(descs) > 0
	timeout := joinTimeout
	if restart {
		timeout = restartJoinTimeout
	}
	s.log.Info("joining the cluster through placement", "placement", s.cfg.Placement, "store", ident.StoreId)
	resp, err := s.join(&ident, len(descs) == 0, timeout)
	var mm *ErrClusterMismatch
	if errors.As(err, &mm) {
		return fmt.Errorf("data directory %q belongs to another cluster: %s; use an empty --data-dir for a new store", s.cfg.DataDir, mm.Msg)
	}
	if err != nil && !restart {
		return fmt.Errorf("join: %w", err)
	}
	if err != nil {
		// Everything a restart needs is on disk: the identity, the
		// ranges and the peer addresses (store_peer_addrs.go).
		s.setIdentity(ident.StoreId)
		s.needRejoin = true
		s.log.Warn("placement unreachable: starting from the identity in the data directory; joining in the background",
			"cluster", fmt.Sprintf("%x", ident.ClusterId), "err", err)
		return nil
	}
	if !hasIdent {
		ident = rangekvpb.StoreIdent{StoreId: resp.StoreId, ClusterId: resp.ClusterId}
		v, err := proto.Marshal(&ident)
		if err != nil {
			return err
		}
		if err := s.db.Set(keys.StoreIdentKey(), v, pebble.Sync); err != nil {
			return err
		}
	}
	s.setIdentity(ident.StoreId)
	if d := resp.BootstrapRange; d != nil && len(descs) == 0 {
		b := s.db.NewBatch()
		defer b.Close()
		if err := driver.WriteInitialState(b, d, driver.InitialHardState()); err != nil {
			return err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
		s.log.Info("created range 1: this is the first store of a new cluster", "cluster", fmt.Sprintf("%x", resp.ClusterId))
	}
	s.log.Info("joined the cluster", "cluster", fmt.Sprintf("%x", resp.ClusterId))
	return nil
}

func (s *Store) setIdentity(id uint64) {
	s.cfg.StoreID = id
	s.log = s.cfg.Logger.With("store", id)
	s.liveness.self = id
}

// join asks placement to admit the store, for at most timeout; a store
// with an identity and ranges gives up as soon as no member is reachable.
func (s *Store) join(ident *rangekvpb.StoreIdent, empty bool, timeout time.Duration) (*rangekvpb.JoinResponse, error) {
	req := &rangekvpb.JoinRequest{StoreId: ident.StoreId, ClusterId: ident.ClusterId, Address: s.cfg.AdvertiseAddr,
		Labels: s.cfg.Labels, Empty: empty}
	var resp *rangekvpb.JoinResponse
	ctx, cancel := s.pdCtx(timeout)
	defer cancel()
	call := s.pd.call
	if ident.StoreId != 0 && !empty {
		call = s.pd.callIfReachable
	}
	err := call(ctx, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		r, err := pc.Join(ctx, req)
		if err != nil {
			return nil, err
		}
		resp = r
		return r.Error, nil
	})
	s.notePlacement("join", err)
	return resp, err
}

// rejoinPlacement joins in the background a store that started without
// placement: it retries Join (which also records the store's current
// address and labels) with a backoff until it succeeds or the store
// stops; it reports whether it succeeded. It runs on the report loop,
// before the first report.
func (s *Store) rejoinPlacement() bool {
	var ident rangekvpb.StoreIdent
	if _, err := getProto(s.db, keys.StoreIdentKey(), &ident); err != nil {
		s.log.Error("rejoin: read the store identity", "err", err)
		return false
	}
	backoff := s.cfg.StoreHeartbeatInterval
	for {
		_, err := s.join(&ident, false, s.cfg.StoreHeartbeatInterval+restartJoinTimeout)
		if err == nil {
			s.log.Info("joined the cluster (in the background)", "cluster", fmt.Sprintf("%x", ident.ClusterId))
			return true
		}
		var mm *ErrClusterMismatch
		if errors.As(err, &mm) {
			s.log.Error("placement refuses this store: its data directory belongs to another cluster; it serves its ranges but placement will not manage them",
				"data_dir", s.cfg.DataDir, "err", err)
		}
		t := s.cfg.Clock.NewTimer(backoff)
		select {
		case <-s.stopCh:
			t.Stop()
			return false
		case <-t.C():
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
