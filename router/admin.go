// Admin: the placement driver's inspection and operation calls (cluster
// status, stores, ranges, splits, operators) and a replica's Raft status
// from its store, for tools such as the rangekv CLI.

package router

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Admin calls the placement driver (and stores) of a Client made with New.
// Returned messages belong to the caller. Safe for concurrent use.
type Admin struct{ c *Client }

// Admin returns the admin calls of c, or ErrNoPlacement for a static
// client.
func (c *Client) Admin() (*Admin, error) {
	if c.pd == nil {
		return nil, ErrNoPlacement
	}
	return &Admin{c: c}, nil
}

// ClusterStatus returns the placement members, stores, range count,
// unhealthy ranges and running operators.
func (a *Admin) ClusterStatus(ctx context.Context) (*rangekvpb.ClusterStatusResponse, error) {
	var out *rangekvpb.ClusterStatusResponse
	err := a.c.pd.call(ctx, "cluster status", false, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.ClusterStatus(ctx, &rangekvpb.ClusterStatusRequest{})
		if err != nil {
			return nil, err
		}
		out = resp
		return resp.Error, nil
	})
	return out, err
}

// Stores lists every store of the cluster.
func (a *Admin) Stores(ctx context.Context) ([]*rangekvpb.StoreInfo, error) {
	var out []*rangekvpb.StoreInfo
	err := a.c.pd.call(ctx, "list stores", false, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.ListStores(ctx, &rangekvpb.ListStoresRequest{})
		if err != nil {
			return nil, err
		}
		out = resp.Stores
		return resp.Error, nil
	})
	return out, err
}

// Store returns one store; *NotFoundError when there is none.
func (a *Admin) Store(ctx context.Context, storeID uint64) (*rangekvpb.StoreInfo, error) {
	return a.c.pd.getStore(ctx, storeID)
}

// Ranges returns the routes of the ranges overlapping [start, end) in key
// order (empty end: to the end; limit 0: all), reading placement a page
// at a time. With many ranges, RangesPage lets the caller handle each
// page as it comes.
func (a *Admin) Ranges(ctx context.Context, start, end []byte, limit int) ([]*rangekvpb.RouteInfo, error) {
	return a.c.pd.scanRanges(ctx, start, end, limit)
}

// RangesPage returns one page of the routes of the ranges overlapping
// [start, end) in key order: at most limit (0: placement's default, 1,000;
// at most 10,000) from pageToken ("": the first page), and the token of
// the next page ("" after the last). Pass start and end unchanged with
// each token.
func (a *Admin) RangesPage(ctx context.Context, start, end []byte, pageToken string, limit int) (routes []*rangekvpb.RouteInfo, nextPageToken string, err error) {
	if limit < 0 || limit > scanPage {
		return nil, "", fmt.Errorf("limit: %d is not between 0 and %d", limit, scanPage)
	}
	return a.c.pd.scanPage(ctx, start, end, pageToken, limit)
}

func (a *Admin) getRange(ctx context.Context, req *rangekvpb.GetRangeRequest, what string) (*rangekvpb.RouteInfo, error) {
	var out *rangekvpb.RouteInfo
	err := a.c.pd.call(ctx, "get range", false, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.GetRange(ctx, req)
		if err != nil {
			return nil, err
		}
		if len(resp.Ranges) > 0 {
			out = resp.Ranges[0]
		}
		return resp.Error, nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, &NotFoundError{What: what}
	}
	return out, nil
}

// RangeForKey returns the route of the range holding key.
func (a *Admin) RangeForKey(ctx context.Context, key []byte) (*rangekvpb.RouteInfo, error) {
	return a.getRange(ctx, &rangekvpb.GetRangeRequest{Key: key}, fmt.Sprintf("range holding key %q", key))
}

// RangeByID returns the route of a range; *NotFoundError when there is
// none.
func (a *Admin) RangeByID(ctx context.Context, rangeID uint64) (*rangekvpb.RouteInfo, error) {
	return a.getRange(ctx, &rangekvpb.GetRangeRequest{RangeId: rangeID}, fmt.Sprintf("range %d", rangeID))
}

// Split splits the range holding key at key and returns both halves. Its
// outcome is ambiguous (*AmbiguousError) if placement did not answer.
func (a *Admin) Split(ctx context.Context, key []byte) (left, right *rangekvpb.RangeDescriptor, err error) {
	err = a.c.pd.call(ctx, "split", true, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.Split(ctx, &rangekvpb.SplitRequest{Key: key})
		if err != nil {
			return nil, err
		}
		left, right = resp.Left, resp.Right
		return resp.Error, nil
	})
	if err == nil {
		a.c.mu.Lock()
		a.c.mu.cache.insert(left, leader{})
		a.c.mu.cache.insert(right, leader{})
		a.c.mu.Unlock()
	}
	return left, right, err
}

func (a *Admin) operatorCall(ctx context.Context, op string, mutating bool, fn func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.OperatorResponse, error)) (*rangekvpb.OperatorInfo, error) {
	var out *rangekvpb.OperatorInfo
	err := a.c.pd.call(ctx, op, mutating, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := fn(ctx, pc)
		if err != nil {
			return nil, err
		}
		out = resp.Operator
		return resp.Error, nil
	})
	return out, err
}

// MoveReplica starts an operator that moves range rangeID's replica from
// one store to another (add learner, catch up, promote, remove) and
// returns it as started; follow it with Operator.
func (a *Admin) MoveReplica(ctx context.Context, rangeID, from, to uint64) (*rangekvpb.OperatorInfo, error) {
	return a.operatorCall(ctx, "move replica", true, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.OperatorResponse, error) {
		return pc.MoveReplica(ctx, &rangekvpb.MoveReplicaRequest{RangeId: rangeID, FromStoreId: from, ToStoreId: to})
	})
}

// TransferLeader starts an operator that moves range rangeID's leadership
// to a store.
func (a *Admin) TransferLeader(ctx context.Context, rangeID, to uint64) (*rangekvpb.OperatorInfo, error) {
	return a.operatorCall(ctx, "transfer leader", true, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.OperatorResponse, error) {
		return pc.TransferLeader(ctx, &rangekvpb.TransferLeaderOpRequest{RangeId: rangeID, ToStoreId: to})
	})
}

// Operator returns an operator of the current placement leader;
// *NotFoundError when it has none with this ID (operators are numbered per
// placement leadership: after a placement leader change the ID may be
// unknown or name another operator — compare RangeId and CreatedUnixMs).
func (a *Admin) Operator(ctx context.Context, id uint64) (*rangekvpb.OperatorInfo, error) {
	op, err := a.operatorCall(ctx, "get operator", false, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.OperatorResponse, error) {
		return pc.GetOperator(ctx, &rangekvpb.GetOperatorRequest{OperatorId: id})
	})
	if status.Code(err) == codes.NotFound {
		return nil, &NotFoundError{What: fmt.Sprintf("operator %d", id)}
	}
	return op, err
}

// Rebalance runs the scheduler once and returns the operators it chose:
// started, or (dryRun) only proposed.
func (a *Admin) Rebalance(ctx context.Context, dryRun bool) ([]*rangekvpb.OperatorInfo, error) {
	var out []*rangekvpb.OperatorInfo
	err := a.c.pd.call(ctx, "rebalance", !dryRun, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.Rebalance(ctx, &rangekvpb.RebalanceRequest{DryRun: dryRun})
		if err != nil {
			return nil, err
		}
		out = resp.Operators
		return resp.Error, nil
	})
	return out, err
}

// OperatorHistory returns finished operators, newest first (rangeID 0:
// of every range; limit 0: placement's default).
func (a *Admin) OperatorHistory(ctx context.Context, rangeID uint64, limit int) ([]*rangekvpb.OperatorInfo, error) {
	var out []*rangekvpb.OperatorInfo
	err := a.c.pd.call(ctx, "operator history", false, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		resp, err := pc.OperatorHistory(ctx, &rangekvpb.OperatorHistoryRequest{RangeId: rangeID, Limit: uint32(limit)})
		if err != nil {
			return nil, err
		}
		out = resp.Operators
		return resp.Error, nil
	})
	return out, err
}

// storeAdmin resolves store storeID's address (through placement) and
// returns the admin client of that store and the address.
func (a *Admin) storeAdmin(ctx context.Context, storeID uint64) (rangekvpb.AdminClient, string, error) {
	addr, err := a.c.storeAddr(ctx, storeID)
	if err != nil {
		return nil, "", err
	}
	if addr == "" {
		return nil, "", &NotFoundError{What: fmt.Sprintf("address of store %d", storeID)}
	}
	conn, err := a.c.conn(addr)
	if err != nil {
		return nil, "", err
	}
	return rangekvpb.NewAdminClient(conn), addr, nil
}

// StoreReplicas asks a store for the Raft status of the replicas it holds
// of rangeIDs (none: every replica), in range ID order, reading the
// store's listing a page at a time. Ranges the store holds no replica of
// are left out.
func (a *Admin) StoreReplicas(ctx context.Context, storeID uint64, rangeIDs ...uint64) ([]*rangekvpb.ReplicaStatus, error) {
	adm, addr, err := a.storeAdmin(ctx, storeID)
	if err != nil {
		return nil, err
	}
	out, err := listReplicas(ctx, adm, rangeIDs)
	if err != nil {
		return nil, fmt.Errorf("store %d (%s): %w", storeID, addr, err)
	}
	return out, nil
}

// listPage is the page size of listReplicas (the store's maximum).
const listPage = 10000

// listReplicas pages through a store's Admin.ListRanges (only rangeIDs
// when not empty) and returns every replica status.
func listReplicas(ctx context.Context, adm rangekvpb.AdminClient, rangeIDs []uint64) ([]*rangekvpb.ReplicaStatus, error) {
	var out []*rangekvpb.ReplicaStatus
	req := &rangekvpb.ListRangesRequest{Limit: listPage, RangeIds: rangeIDs}
	for {
		resp, err := adm.ListRanges(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.Replicas...)
		if resp.NextPageToken == "" {
			return out, nil
		}
		req.PageToken = resp.NextPageToken
	}
}
