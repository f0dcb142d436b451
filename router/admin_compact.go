package router

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// CompactLog asks the leader of a range to truncate the range's log up to
// its applied index on every replica (a replica behind that index, or
// added later, then catches up from a snapshot), and returns the leader's
// answer: the truncated index and its log before and after. The leader is
// found through placement and NotLeader hints. Unlike writes, a
// compaction whose outcome is unknown is retried: truncating again only
// truncates a log further, it never changes data.
func (a *Admin) CompactLog(ctx context.Context, rangeID uint64) (*rangekvpb.CompactLogResponse, error) {
	var (
		target uint64 // the store to ask; 0: ask placement
		addr   string
		last   error
		hops   int
	)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, ctxErr(fmt.Errorf("compact log of range %d: %w", rangeID, err), last)
		}
		if target == 0 {
			ri, err := a.RangeByID(ctx, rangeID)
			if err != nil {
				return nil, err
			}
			target, addr = ri.LeaderStoreId, ""
		}
		if target != 0 && addr == "" {
			var err error
			if addr, err = a.c.storeAddr(ctx, target); err != nil {
				last = err
			}
		}
		if target == 0 || addr == "" {
			if last == nil {
				last = fmt.Errorf("range %d has no known leader yet", rangeID)
			}
			target = 0
			if err := a.c.backoff.wait(ctx, attempt); err != nil {
				return nil, ctxErr(fmt.Errorf("compact log of range %d: %w", rangeID, err), last)
			}
			continue
		}
		resp, err := a.compactAt(ctx, addr, rangeID)
		if err != nil {
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
				last = fmt.Errorf("store %d (%s): %w", target, addr, err)
				target = 0
				if err := a.c.backoff.wait(ctx, attempt); err != nil {
					return nil, ctxErr(fmt.Errorf("compact log of range %d: %w", rangeID, err), last)
				}
				continue
			}
			return nil, fmt.Errorf("store %d (%s): %w", target, addr, err)
		}
		re := resp.GetError()
		if re == nil {
			return resp, nil
		}
		last = fmt.Errorf("store %d: %s", target, re.Message)
		if nl := re.NotLeader; nl != nil && nl.LeaderStoreId != 0 && nl.LeaderStoreId != target {
			target, addr = nl.LeaderStoreId, nl.LeaderAddress
			if hops++; hops <= maxHintHops {
				continue // follow the hint at once
			}
		} else {
			target = 0
		}
		if err := a.c.backoff.wait(ctx, attempt); err != nil {
			return nil, ctxErr(fmt.Errorf("compact log of range %d: %w", rangeID, err), last)
		}
	}
}

func (a *Admin) compactAt(ctx context.Context, addr string, rangeID uint64) (*rangekvpb.CompactLogResponse, error) {
	conn, err := a.c.conn(addr)
	if err != nil {
		return nil, err
	}
	return rangekvpb.NewAdminClient(conn).CompactLog(ctx, &rangekvpb.CompactLogRequest{RangeId: rangeID})
}
