// Store drain through the admin API: find the store's address through
// placement and call its Drain RPC (see store/store_drain.go).

package router

import (
	"context"
	"fmt"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// DrainStore asks store storeID to move its Raft leaderships to other
// stores and keep them away (undo: stop draining). It returns at once with
// the store's progress; call it again to follow the drain (it is
// idempotent).
func (a *Admin) DrainStore(ctx context.Context, storeID uint64, undo bool) (*rangekvpb.DrainResponse, error) {
	adm, addr, err := a.storeAdmin(ctx, storeID)
	if err != nil {
		return nil, err
	}
	resp, err := adm.Drain(ctx, &rangekvpb.DrainRequest{Undo: undo})
	if err != nil {
		return nil, fmt.Errorf("store %d (%s): %w", storeID, addr, err)
	}
	return resp, nil
}
