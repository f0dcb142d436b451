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
)

// joinTimeout bounds how long a starting store waits for placement.
const joinTimeout = 2 * time.Minute

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
	req := &rangekvpb.JoinRequest{StoreId: ident.StoreId, ClusterId: ident.ClusterId, Address: s.cfg.AdvertiseAddr,
		Labels: s.cfg.Labels, Empty: len(descs) == 0}
	var resp *rangekvpb.JoinResponse
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	s.log.Info("joining the cluster through placement", "placement", s.cfg.Placement, "store", ident.StoreId)
	err = s.pd.call(ctx, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		r, err := pc.Join(ctx, req)
		if err != nil {
			return nil, err
		}
		resp = r
		return r.Error, nil
	})
	var mm *ErrClusterMismatch
	if errors.As(err, &mm) {
		return fmt.Errorf("data directory %q belongs to another cluster: %s; use an empty --data-dir for a new store", s.cfg.DataDir, mm.Msg)
	}
	if err != nil {
		return fmt.Errorf("join: %w", err)
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
	s.cfg.StoreID = ident.StoreId
	s.log = s.cfg.Logger.With("store", ident.StoreId)
	s.liveness.self = ident.StoreId
	if d := resp.BootstrapRange; d != nil && len(descs) == 0 {
		b := s.db.NewBatch()
		defer b.Close()
		if err := writeInitialRangeState(b, d); err != nil {
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

// resolveStore finds a store's address through placement (cached).
func (s *Store) resolveStore(id uint64) (string, bool) {
	if a, ok := s.storeAddrs.Load(id); ok {
		return a.(string), true
	}
	if s.pd == nil {
		return "", false
	}
	var addr string
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := s.pd.call(ctx, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		r, err := pc.GetStore(ctx, &rangekvpb.GetStoreRequest{StoreId: id})
		if err != nil {
			return nil, err
		}
		addr = r.GetStore().GetStore().GetAddress()
		return r.Error, nil
	})
	if err != nil || addr == "" {
		return "", false
	}
	s.storeAddrs.Store(id, addr)
	return addr, true
}
