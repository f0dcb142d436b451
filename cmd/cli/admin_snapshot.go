// range snapshot: force a log truncation on a range's replicas (so that a
// lagging or new replica catches up from a snapshot), waiting until each
// replica has truncated, and report each replica's log before and after.

package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func (a *app) rangeSnapshotCmd() *cobra.Command {
	var id uint64
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "snapshot --id ID",
		Short: "Force a log truncation on a range's replicas; lagging and new replicas then catch up by snapshot",
		Long: `Force a snapshot + log truncation on range ID: the range's leader truncates
the Raft log of every replica up to the leader's applied index (through
Raft, ignoring the automatic truncation thresholds and replicas that lag).
Data is not touched. A replica that had not yet received the entries up to
that index, and any replica added later, can no longer catch up from the
log: the leader sends it a snapshot of the range instead.

rangekv then waits (at most --wait-timeout) until every replica reports a
log starting after the truncated index, printing progress on stderr, and
prints each replica's log before and after (first..last index and number of
entries). A replica that did not truncate in time (e.g. its store is down)
shows as pending and the command exits 4.

With -o json: {"range_id", "truncated_index", "leader_store_id",
"replicas": [{"replica_id", "store_id", "role", "leader",
"first_index_before", "last_index_before", "log_entries_before",
"first_index_after", "last_index_after", "log_entries_after", "state",
"error"}]}; state is "truncated", "pending" or "unreachable".`,
		Example: `  rangekv range snapshot --id 7
  rangekv -o json range snapshot --id 1 --wait-timeout 1m`,
		Args: argsBetween(0, 0, "no arguments (--id)"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if id == 0 {
				return usageErrorf("id: required, a positive range ID")
			}
			return a.withAdmin(cmd.Context(), "range snapshot", func(ctx context.Context, adm adminClient) error {
				return a.snapshotRange(ctx, adm, id, wait)
			})
		}),
	}
	cmd.Flags().Uint64Var(&id, "id", 0, "the range ID")
	cmd.Flags().DurationVar(&wait, "wait-timeout", 30*time.Second, "how long to wait for every replica to truncate")
	return cmd
}

// snapshotRow is one replica's log before and after the truncation.
type snapshotRow struct {
	desc          *rangekvpb.ReplicaDescriptor
	before, after *rangekvpb.ReplicaStatus
	err           error
}

func (r *snapshotRow) truncated(index uint64) bool {
	return r.after != nil && r.after.FirstIndex > index
}

func (a *app) snapshotRange(ctx context.Context, adm adminClient, id uint64, wait time.Duration) error {
	ri, err := adm.RangeByID(ctx, id)
	if err != nil {
		return err
	}
	d := ri.Descriptor_
	rows := make([]snapshotRow, len(d.Replicas))
	for i, r := range d.Replicas {
		rows[i].desc = r
	}
	replicaStatuses(ctx, adm, d.RangeId, rows, func(r *snapshotRow, s *rangekvpb.ReplicaStatus, err error) { r.before, r.err = s, err })
	resp, err := adm.CompactLog(ctx, id)
	if err != nil {
		return err
	}
	idx := resp.TruncatedIndex
	lead := ri.LeaderStoreId
	fmt.Fprintf(a.stderr, "range %d: log truncated up to index %d on the leader (log %d..%d before, %d..%d after)\n",
		id, idx, resp.FirstIndexBefore, resp.LastIndexBefore, resp.FirstIndexAfter, resp.LastIndexAfter)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	reported := map[uint64]bool{}
	for {
		replicaStatuses(wctx, adm, d.RangeId, rows, func(r *snapshotRow, s *rangekvpb.ReplicaStatus, err error) {
			if s != nil || r.after == nil {
				r.after, r.err = s, err
			}
		})
		pending := 0
		for i := range rows {
			r := &rows[i]
			if r.truncated(idx) {
				if !reported[r.desc.StoreId] {
					reported[r.desc.StoreId] = true
					fmt.Fprintf(a.stderr, "range %d: replica %d on store %d truncated (log starts at %d)\n", id, r.desc.ReplicaId, r.desc.StoreId, r.after.FirstIndex)
				}
				continue
			}
			pending++
		}
		if pending == 0 {
			break
		}
		t := time.NewTimer(a.pollInterval)
		select {
		case <-wctx.Done():
			t.Stop()
		case <-t.C:
		}
		if wctx.Err() != nil {
			fmt.Fprintf(a.stderr, "range %d: %d replica(s) had not truncated within --wait-timeout %s\n", id, pending, wait)
			break
		}
	}
	if err := a.printer().printSnapshot(d, lead, idx, rows); err != nil {
		return err
	}
	for i := range rows {
		if !rows[i].truncated(idx) {
			return &exitError{code: exitFailure, err: fmt.Errorf("range snapshot: replica %d on store %d has not truncated its log up to index %d", rows[i].desc.ReplicaId, rows[i].desc.StoreId, idx)}
		}
	}
	return nil
}

// replicaStatuses reads each replica's status of range rangeID from its
// store, in parallel, and hands it (or the error) to set.
func replicaStatuses(ctx context.Context, adm adminClient, rangeID uint64, rows []snapshotRow, set func(r *snapshotRow, s *rangekvpb.ReplicaStatus, err error)) {
	var wg sync.WaitGroup
	for i := range rows {
		r := &rows[i]
		wg.Go(func() {
			all, err := adm.StoreReplicas(ctx, r.desc.StoreId, rangeID)
			if err != nil {
				set(r, nil, err)
				return
			}
			for _, s := range all {
				if s.GetDescriptor_().GetRangeId() == rangeID {
					set(r, s, nil)
					return
				}
			}
			set(r, nil, fmt.Errorf("holds no replica of range %d (yet, or any more)", rangeID))
		})
	}
	wg.Wait()
}

type snapshotReplicaJSON struct {
	ReplicaID        uint64 `json:"replica_id"`
	StoreID          uint64 `json:"store_id"`
	Role             string `json:"role"`
	Leader           bool   `json:"leader"`
	FirstIndexBefore uint64 `json:"first_index_before"`
	LastIndexBefore  uint64 `json:"last_index_before"`
	LogEntriesBefore uint64 `json:"log_entries_before"`
	FirstIndexAfter  uint64 `json:"first_index_after"`
	LastIndexAfter   uint64 `json:"last_index_after"`
	LogEntriesAfter  uint64 `json:"log_entries_after"`
	State            string `json:"state"`
	Error            string `json:"error,omitempty"`
}

func (r *snapshotRow) state(idx uint64) string {
	switch {
	case r.truncated(idx):
		return "truncated"
	case r.after == nil:
		return "unreachable"
	}
	return "pending"
}

// logCell renders a replica's log as "first..last (n)".
func logCell(s *rangekvpb.ReplicaStatus) string {
	if s == nil {
		return "?"
	}
	return fmt.Sprintf("%d..%d (%d)", s.FirstIndex, s.LastIndex, logEntries(s))
}

func (p *printer) printSnapshot(d *rangekvpb.RangeDescriptor, lead, idx uint64, rows []snapshotRow) error {
	if p.json {
		doc := struct {
			RangeID        uint64                `json:"range_id"`
			TruncatedIndex uint64                `json:"truncated_index"`
			LeaderStoreID  uint64                `json:"leader_store_id"`
			Replicas       []snapshotReplicaJSON `json:"replicas"`
		}{RangeID: d.RangeId, TruncatedIndex: idx, LeaderStoreID: lead, Replicas: []snapshotReplicaJSON{}}
		for i := range rows {
			r := &rows[i]
			rj := snapshotReplicaJSON{ReplicaID: r.desc.ReplicaId, StoreID: r.desc.StoreId, Role: roleName(r.desc.Role),
				Leader: r.desc.StoreId == lead, State: r.state(idx)}
			if s := r.before; s != nil {
				rj.FirstIndexBefore, rj.LastIndexBefore, rj.LogEntriesBefore = s.FirstIndex, s.LastIndex, logEntries(s)
			}
			if s := r.after; s != nil {
				rj.FirstIndexAfter, rj.LastIndexAfter, rj.LogEntriesAfter = s.FirstIndex, s.LastIndex, logEntries(s)
			}
			if r.err != nil && !r.truncated(idx) {
				rj.Error = errorLine(r.err)
			}
			doc.Replicas = append(doc.Replicas, rj)
		}
		return p.emitJSON(doc)
	}
	fmt.Fprintf(p.w, "range %d: log truncated up to index %d\n", d.RangeId, idx)
	tw := newTable(p.w)
	fmt.Fprintln(tw, "REPLICA\tSTORE\tROLE\tLOG BEFORE\tLOG AFTER\tSTATE")
	var errs []string
	for i := range rows {
		r := &rows[i]
		store := strconv.FormatUint(r.desc.StoreId, 10)
		if r.desc.StoreId == lead {
			store += "*"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.desc.ReplicaId, store, roleName(r.desc.Role), logCell(r.before), logCell(r.after), r.state(idx))
		if r.err != nil && !r.truncated(idx) {
			errs = append(errs, fmt.Sprintf("  store %d: %s", r.desc.StoreId, errorLine(r.err)))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range errs {
		fmt.Fprintln(p.w, e)
	}
	return nil
}
