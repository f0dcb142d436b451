// The cluster commands, which need the placement driver: cluster status,
// store list, range list/show/split/move/transfer-leader, rebalance. The
// ones that start operators wait for them, printing progress on stderr.

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// inspector is the read-only part of the placement admin API.
type inspector interface {
	ClusterStatus(ctx context.Context) (*rangekvpb.ClusterStatusResponse, error)
	Stores(ctx context.Context) ([]*rangekvpb.StoreInfo, error)
	Ranges(ctx context.Context, start, end []byte, limit int) ([]*rangekvpb.RouteInfo, error)
	RangesPage(ctx context.Context, start, end []byte, pageToken string, limit int) ([]*rangekvpb.RouteInfo, string, error)
	RangeForKey(ctx context.Context, key []byte) (*rangekvpb.RouteInfo, error)
	RangeByID(ctx context.Context, rangeID uint64) (*rangekvpb.RouteInfo, error)
	StoreReplicas(ctx context.Context, storeID uint64, rangeIDs ...uint64) ([]*rangekvpb.ReplicaStatus, error)
}

// operatorRunner changes the cluster and follows operators.
type operatorRunner interface {
	Split(ctx context.Context, key []byte) (left, right *rangekvpb.RangeDescriptor, err error)
	MoveReplica(ctx context.Context, rangeID, from, to uint64) (*rangekvpb.OperatorInfo, error)
	TransferLeader(ctx context.Context, rangeID, to uint64) (*rangekvpb.OperatorInfo, error)
	Rebalance(ctx context.Context, dryRun bool) ([]*rangekvpb.OperatorInfo, error)
	Operator(ctx context.Context, id uint64) (*rangekvpb.OperatorInfo, error)
	OperatorHistory(ctx context.Context, rangeID uint64, limit int) ([]*rangekvpb.OperatorInfo, error)
	CompactLog(ctx context.Context, rangeID uint64) (*rangekvpb.CompactLogResponse, error)
}

// adminClient is what the cluster commands need of *router.Admin; tests
// substitute an in-memory twin.
type adminClient interface {
	inspector
	operatorRunner
	Close() error
}

// withAdmin opens the admin client and runs fn under --timeout.
func (a *app) withAdmin(ctx context.Context, cmd string, fn func(ctx context.Context, adm adminClient) error) error {
	adm, err := a.admin(cmd)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, a.g.timeout)
	defer cancel()
	return a.adminError(cmd, fn(ctx, adm))
}

// adminError names the command in an error and explains timeouts, keeping
// the error's type (and so its exit code).
func (a *app) adminError(cmd string, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	var amb *router.AmbiguousError
	if errors.As(err, &amb) {
		return &wrappedError{msg: fmt.Sprintf("%s: outcome unknown, it may or may not have happened (check with 'rangekv cluster status' or 'rangekv range list'): %s", cmd, amb.Reason), err: err}
	}
	var nf *router.NotFoundError
	if errors.As(err, &nf) {
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: %w", cmd, err)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: no answer within --timeout %s (are the --placement members up?): %w", cmd, a.g.timeout, err)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

func (a *app) clusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cluster",
		Short:   "Inspect the cluster (needs --placement)",
		Long:    "Inspect the cluster through the placement driver.",
		Example: `  rangekv cluster status`,
		Args:    argsBetween(0, 0, "a subcommand (see 'rangekv cluster --help')"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Placement members and leader, stores, range count, unhealthy ranges, running operators",
		Long: `Show the placement members (which one leads, which are reachable from the
leader), the stores (up or down), the number of ranges, the unhealthy ranges
(under-replicated: fewer healthy voters than the replication factor;
leaderless: no leader reported, or the leader's store is down) and the
operators running. The first line says "healthy" or "DEGRADED".

With -o json: {"cluster_id", "bootstrapped", "healthy", "members", "stores",
"stores_up", "stores_down", "range_count", "under_replicated", "leaderless",
"operators"}.`,
		Example: `  rangekv cluster status
  rangekv -o json cluster status | jq .under_replicated`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			return a.withAdmin(cmd.Context(), "cluster status", func(ctx context.Context, adm adminClient) error {
				st, err := adm.ClusterStatus(ctx)
				if err != nil {
					return err
				}
				return a.printer().printClusterStatus(st, a.now())
			})
		}),
	}
	cmd.AddCommand(status)
	return cmd
}

func (a *app) storeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "store",
		Short:   "Inspect the stores",
		Example: `  rangekv store list`,
		Args:    argsBetween(0, 0, "a subcommand (see 'rangekv store --help')"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the stores: ID, address, state, replicas, leaders, used bytes, labels",
		Long: `List every store placement knows: its ID, gRPC address, state (up, or down
when it missed heartbeats for the store-down grace period), the replicas and
Raft leaders it reported, the bytes it uses and its labels.

With -o json: {"stores": [{"id", "address", "state", "replicas", "leaders",
"used_bytes", "capacity_bytes", "available_bytes", "labels",
"last_heartbeat", "down_since"}]}.`,
		Example: `  rangekv store list
  rangekv -o json store list`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			return a.withAdmin(cmd.Context(), "store list", func(ctx context.Context, adm adminClient) error {
				stores, err := adm.Stores(ctx)
				if err != nil {
					return err
				}
				sort.Slice(stores, func(i, j int) bool { return stores[i].GetStore().GetStoreId() < stores[j].GetStore().GetStoreId() })
				return a.printer().printStores(stores)
			})
		}),
	}
	cmd.AddCommand(list, a.storeDrainCmd(false), a.storeDrainCmd(true))
	return cmd
}

// drainer is the part of *router.Admin that drains stores (the in-memory
// test twin does not have it).
type drainer interface {
	DrainStore(ctx context.Context, storeID uint64, undo bool) (*rangekvpb.DrainResponse, error)
}

// storeDrainCmd is 'store drain ID' (undo: 'store undrain ID').
func (a *app) storeDrainCmd(undo bool) *cobra.Command {
	var wait time.Duration
	var undoFlag bool
	cmd := &cobra.Command{
		Use:   "drain ID",
		Short: "Move a store's Raft leaderships to other stores and keep them away; wait",
		Long: `Ask store ID to hand every Raft leadership it holds to a live voter on
another store, and to take none back while it drains (placement is told too,
and the store's /readyz answers "not ready"). Clients see only redirects.
rangekv prints the progress on stderr ("drained N/M leaders") until the store
leads nothing (at most --wait; exit 4 if leaderships remain).

A store stopped with SIGTERM drains the same way first. 'rangekv store
undrain ID' (or 'drain --undo') lets it lead ranges again.

With -o json: {"store_id", "draining", "leaders_at_start", "leaders"}.`,
		Example: `  rangekv store drain 2
  rangekv store undrain 2`,
		Args: argsBetween(1, 1, "the store ID"),
		RunE: wrapRun(func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return usageErrorf("ID: %q is not a positive store ID", args[0])
			}
			return a.drainStore(cmd.Context(), id, undo || undoFlag, wait)
		}),
	}
	if undo {
		cmd.Use, cmd.Short, cmd.Long = "undrain ID", "Let a drained store lead ranges again", `Stop draining store ID: it may lead ranges again, and placement moves
leaderships back to it as it balances.`
		cmd.Example = `  rangekv store undrain 2`
	} else {
		cmd.Flags().BoolVar(&undoFlag, "undo", false, "stop draining (same as 'rangekv store undrain ID')")
		cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the leaderships to move (0: do not wait)")
	}
	return cmd
}

func (a *app) drainStore(ctx context.Context, id uint64, undo bool, wait time.Duration) error {
	name := "store drain"
	if undo {
		name = "store undrain"
	}
	adm, err := a.admin(name)
	if err != nil {
		return err
	}
	defer adm.Close()
	dr, ok := adm.(drainer)
	if !ok {
		return fmt.Errorf("%s: not supported by this admin client", name)
	}
	call := func() (*rangekvpb.DrainResponse, error) {
		cctx, cancel := context.WithTimeout(ctx, a.g.timeout)
		defer cancel()
		r, err := dr.DrainStore(cctx, id, undo)
		return r, a.adminError(name, err)
	}
	resp, err := call()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	last := ^uint32(0)
	for !undo && resp.Leaders > 0 && time.Now().Before(deadline) {
		if resp.Leaders != last {
			last = resp.Leaders
			fmt.Fprintf(os.Stderr, "store %d: drained %d/%d leaders\n", id, resp.LeadersAtStart-min(resp.Leaders, resp.LeadersAtStart), resp.LeadersAtStart)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if resp, err = call(); err != nil {
			return err
		}
	}
	if err := a.printer().emitDrain(id, resp); err != nil {
		return err
	}
	if !undo && resp.Leaders > 0 && wait > 0 {
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: store %d still leads %d ranges after --wait %s (no live voter elsewhere? see 'rangekv range list')", name, id, resp.Leaders, wait)}
	}
	return nil
}

func (a *app) rangeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "range",
		Short: "Inspect, split and move ranges",
		Long: `Inspect, split and move ranges through the placement driver, and force
log truncation (range snapshot).`,
		Example: `  rangekv range list
  rangekv range show user/42
  rangekv range split user/5
  rangekv range move --id 7 --from 1 --to 4
  rangekv range transfer-leader --id 7 --to 2
  rangekv range snapshot --id 7`,
		Args: argsBetween(0, 0, "a subcommand (see 'rangekv range --help')"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(a.rangeListCmd(), a.rangeShowCmd(), a.rangeSplitCmd(), a.rangeMoveCmd(), a.rangeTransferCmd(), a.rangeSnapshotCmd())
	return cmd
}

// rangePageMax is placement's largest page of ranges.
const rangePageMax = 10000

func (a *app) rangeListCmd() *cobra.Command {
	var start, end string
	var limit, pageSize int
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the ranges: ID, start, end, epoch, replicas (leader marked), size",
		Long: `List the ranges in key order: ID, start and end key (-inf and +inf are the
ends of the key space), epoch (vVERSION/cCONF_VER: the version grows with
splits, conf_ver with membership changes), replicas as store IDs (* marks
the leader's store; learners are marked) and the approximate size the
leader reports (? when its store did not answer).

--start and --end list only the ranges overlapping [START, END); --limit N
stops after N ranges. The list is read from placement --page-size ranges at
a time (and their sizes from the leaders' stores), each page printed as it
arrives, so a cluster of 100,000 ranges lists without one huge answer;
--timeout bounds each page.

With -o json: {"ranges": [{"id", "start", "end", "epoch": {"conf_ver",
"version"}, "replicas": [{"replica_id", "store_id", "role", "leader"}],
"leader_store_id", "size_bytes"}]} ("end": "" is +inf).`,
		Example: `  rangekv range list
  rangekv range list --start user/ --end user0
  rangekv range list --limit 20
  rangekv -o json range list`,
		Args: argsBetween(0, 0, "no arguments (--start, --end)"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			s, err := parseBytes("start", start, a.g.hex)
			if err != nil {
				return err
			}
			e, err := parseBytes("end", end, a.g.hex)
			if err != nil {
				return err
			}
			if len(e) > 0 && bytes.Compare(s, e) >= 0 {
				return usageErrorf("end: %s must sort after --start %s", quoteKey(e, a.g.hex), quoteKey(s, a.g.hex))
			}
			if limit < 0 {
				return usageErrorf("limit: %d is negative (0 lists every range)", limit)
			}
			if pageSize < 1 || pageSize > rangePageMax {
				return usageErrorf("page-size: %d is not between 1 and %d", pageSize, rangePageMax)
			}
			adm, err := a.admin("range list")
			if err != nil {
				return err
			}
			defer adm.Close()
			return a.adminError("range list", a.listRanges(cmd.Context(), adm, s, e, limit, pageSize))
		}),
	}
	cmd.Flags().StringVar(&start, "start", "", "list ranges overlapping [START, END) only")
	cmd.Flags().StringVar(&end, "end", "", "see --start (empty: to the end of the key space)")
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most N ranges (0: all)")
	cmd.Flags().IntVar(&pageSize, "page-size", 1000, fmt.Sprintf("ranges read from placement per request (1 to %d)", rangePageMax))
	return cmd
}

// listRanges prints the ranges overlapping [s, e) (at most limit; 0: all)
// a page at a time, each page under its own --timeout.
func (a *app) listRanges(ctx context.Context, adm adminClient, s, e []byte, limit, pageSize int) error {
	out := a.printer().rangeStream()
	tok := ""
	listed := 0
	for {
		want := pageSize
		if limit > 0 {
			want = min(want, limit-listed)
		}
		pctx, cancel := context.WithTimeout(ctx, a.g.timeout)
		routes, next, err := adm.RangesPage(pctx, s, e, tok, want)
		var rows []rangeRow
		if err == nil {
			rows = rangeSizes(pctx, adm, routes)
		}
		cancel()
		if err != nil {
			if out.started {
				// What was printed stays; a JSON document is closed so
				// that it still parses.
				return errors.Join(err, out.end())
			}
			return err
		}
		if err := out.rows(rows); err != nil {
			return err
		}
		listed += len(routes)
		if next == "" || (limit > 0 && listed >= limit) {
			return out.end()
		}
		tok = next
	}
}

// rangeSizes adds to each range the size its leader's store reports,
// asking every leader's store once, in parallel, for the ranges it leads
// among routes; a store that does not answer leaves its ranges' size
// unknown.
func rangeSizes(ctx context.Context, adm inspector, routes []*rangekvpb.RouteInfo) []rangeRow {
	rows := make([]rangeRow, len(routes))
	stores := map[uint64][]uint64{} // leader store → its ranges
	for i, r := range routes {
		rows[i].route = r
		if r.LeaderStoreId != 0 {
			stores[r.LeaderStoreId] = append(stores[r.LeaderStoreId], r.GetDescriptor_().GetRangeId())
		}
	}
	var mu sync.Mutex
	sizes := map[[2]uint64]uint64{} // (store, range) → size
	var wg sync.WaitGroup
	for id, ranges := range stores {
		wg.Go(func() {
			reps, err := adm.StoreReplicas(ctx, id, ranges...)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range reps {
				sizes[[2]uint64{id, r.GetDescriptor_().GetRangeId()}] = r.ApproximateSize
			}
		})
	}
	wg.Wait()
	for i, r := range routes {
		if s, ok := sizes[[2]uint64{r.LeaderStoreId, r.Descriptor_.RangeId}]; ok {
			rows[i].size = &s
		}
	}
	return rows
}

func (a *app) rangeShowCmd() *cobra.Command {
	var id uint64
	cmd := &cobra.Command{
		Use:   "show KEY | show --id ID",
		Short: "Show one range in detail: descriptor, epoch, each replica's Raft state, recent operators",
		Long: `Show the range holding KEY (or the range with --id ID): its descriptor and
epoch, and for each replica, as its store reports it: role, Raft state,
term, last/commit/applied index, log length in entries, whether it is
quiescent (not ticking), and size; then the range's running and recent
operators.

With -o json: {"range": {...as in range list}, "replicas": [{"replica_id",
"store_id", "address", "role", "leader", "raft_state", "term",
"first_index", "last_index", "commit_index", "applied_index",
"log_entries", "quiescent", "size_bytes", "error"}], "operators": [...]}.`,
		Example: `  rangekv range show user/42
  rangekv range show --id 7
  rangekv -o json range show --id 1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("id") {
				return argsBetween(0, 0, "no KEY with --id")(cmd, args)
			}
			return argsBetween(1, 1, "KEY (or --id ID)")(cmd, args)
		},
		RunE: wrapRun(func(cmd *cobra.Command, args []string) error {
			var key []byte
			if len(args) == 1 {
				k, err := parseKey("KEY", args[0], a.g.hex)
				if err != nil {
					return err
				}
				key = k
			} else if id == 0 {
				return usageErrorf("id: must be a positive range ID")
			}
			return a.withAdmin(cmd.Context(), "range show", func(ctx context.Context, adm adminClient) error {
				var ri *rangekvpb.RouteInfo
				var err error
				if key != nil {
					ri, err = adm.RangeForKey(ctx, key)
				} else {
					ri, err = adm.RangeByID(ctx, id)
				}
				if err != nil {
					return err
				}
				reps, ops, err := rangeDetails(ctx, adm, ri)
				if err != nil {
					return err
				}
				return a.printer().printRangeShow(ri, reps, ops, a.now())
			})
		}),
	}
	cmd.Flags().Uint64Var(&id, "id", 0, "the range ID (instead of KEY)")
	return cmd
}

// recentOperators is how many finished operators range show lists.
const recentOperators = 5

// rangeDetails reads each replica's status from its store (in parallel)
// and the range's running and recent operators.
func rangeDetails(ctx context.Context, adm adminClient, ri *rangekvpb.RouteInfo) ([]replicaReport, []*rangekvpb.OperatorInfo, error) {
	d := ri.Descriptor_
	stores, err := adm.Stores(ctx)
	if err != nil {
		return nil, nil, err
	}
	addrs := map[uint64]string{}
	for _, s := range stores {
		addrs[s.GetStore().GetStoreId()] = s.GetStore().GetAddress()
	}
	reps := make([]replicaReport, len(d.Replicas))
	var wg sync.WaitGroup
	for i, r := range d.Replicas {
		reps[i] = replicaReport{desc: r, addr: addrs[r.StoreId]}
		wg.Go(func() {
			all, err := adm.StoreReplicas(ctx, r.StoreId, d.RangeId)
			if err != nil {
				reps[i].err = err
				return
			}
			for _, s := range all {
				if s.GetDescriptor_().GetRangeId() == d.RangeId {
					reps[i].status = s
					return
				}
			}
			reps[i].err = fmt.Errorf("holds no replica of range %d (yet, or any more)", d.RangeId)
		})
	}
	wg.Wait()
	var ops []*rangekvpb.OperatorInfo
	if st, err := adm.ClusterStatus(ctx); err == nil {
		for _, o := range st.Operators {
			if o.RangeId == d.RangeId {
				ops = append(ops, o)
			}
		}
	}
	hist, err := adm.OperatorHistory(ctx, d.RangeId, recentOperators)
	if err != nil {
		return nil, nil, err
	}
	return reps, append(ops, hist...), nil
}

func (a *app) rangeSplitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "split KEY",
		Short: "Split the range holding KEY at KEY; print both halves",
		Long: `Split the range holding KEY at KEY: the range keeps [start, KEY) and a new
range takes [KEY, end), on the same stores (a split moves no data). Prints
both descriptors.

KEY must be strictly inside its range: a KEY that already starts a range is
an error (exit 2). If placement's answer is lost, the split may or may not
have happened: rangekv checks, and exits 3 if it cannot tell. The new
range's leader may show as unknown until its first heartbeat reaches
placement (about a second).

With -o json: {"left": {...}, "right": {...}} (as in range list).`,
		Example: `  rangekv range split user/5
  rangekv --hex range split 8000
  rangekv -o json range split m`,
		Args: argsBetween(1, 1, "KEY"),
		RunE: wrapRun(func(cmd *cobra.Command, args []string) error {
			key, err := parseKey("KEY", args[0], a.g.hex)
			if err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), "range split", func(ctx context.Context, adm adminClient) error {
				res, err := a.splitAt(ctx, adm, key)
				if err != nil {
					return err
				}
				return a.printer().printSplit(res)
			})
		}),
	}
}

// splitResult is a split's two halves and their leaders' stores (0:
// unknown to placement yet).
type splitResult struct {
	left, right         *rangekvpb.RangeDescriptor
	leftLead, rightLead uint64
}

// splitAt splits at key. A key that already starts a range is bad usage.
// When placement's answer is lost or a refusal (e.g. the range's leader is
// not known yet), it checks whether a range now starts at key (the split
// happened, perhaps in an earlier attempt whose answer was lost), and
// retries a refusal a few times.
func (a *app) splitAt(ctx context.Context, adm adminClient, key []byte) (splitResult, error) {
	if res, ok := boundaryAt(ctx, adm, key); ok {
		return splitResult{}, usageErrorf("%s is already the start of range %d: nothing to split", quoteKey(key, a.g.hex), res.right.RangeId)
	}
	for attempt := 0; ; attempt++ {
		left, right, err := adm.Split(ctx, key)
		if err == nil {
			res := splitResult{left: left, right: right}
			if ri, e := adm.RangeByID(ctx, left.RangeId); e == nil {
				res.leftLead = ri.LeaderStoreId
			}
			if ri, e := adm.RangeByID(ctx, right.RangeId); e == nil {
				res.rightLead = ri.LeaderStoreId
			}
			return res, nil
		}
		var amb *router.AmbiguousError
		var pe *router.PlacementError
		ambiguous, refused, invalid := errors.As(err, &amb), errors.As(err, &pe), exitCodeFor(err) == exitUsage
		if !ambiguous && (ctx.Err() != nil || (!refused && !invalid)) {
			return splitResult{}, err
		}
		// Is there a boundary at key now? (A fresh deadline: an ambiguous
		// answer often means ctx's ran out.)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		res, ok := boundaryAt(cctx, adm, key)
		cancel()
		if ok {
			return res, nil
		}
		if ambiguous || invalid || attempt >= 4 {
			return splitResult{}, err
		}
		t := time.NewTimer(time.Duration(100<<attempt) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return splitResult{}, err
		case <-t.C:
		}
	}
}

// boundaryAt returns the ranges on both sides of key when a range starts
// at key.
func boundaryAt(ctx context.Context, adm adminClient, key []byte) (splitResult, bool) {
	r, err := adm.RangeForKey(ctx, key)
	if err != nil || !bytes.Equal(r.Descriptor_.StartKey, key) {
		return splitResult{}, false
	}
	before, err := adm.Ranges(ctx, nil, key, 0)
	if err != nil || len(before) == 0 {
		return splitResult{}, false
	}
	l := before[len(before)-1]
	return splitResult{left: l.Descriptor_, right: r.Descriptor_, leftLead: l.LeaderStoreId, rightLead: r.LeaderStoreId}, true
}

// waitFlags are the flags of the commands that wait for operators.
type waitFlags struct {
	noWait  bool
	timeout time.Duration
}

func (w *waitFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.noWait, "no-wait", false, "return once the operator started, without waiting for it")
	cmd.Flags().DurationVar(&w.timeout, "wait-timeout", 10*time.Minute, "how long to wait for the operator(s) to finish")
}

func (a *app) rangeMoveCmd() *cobra.Command {
	var id, from, to uint64
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "move --id ID --from STORE --to STORE",
		Short: "Move a replica of a range to another store; wait, showing progress",
		Long: `Move range ID's replica from store FROM to store TO: placement adds a learner
on TO, lets it catch up (by snapshot), promotes it to voter, moves the
leadership away from FROM if it leads, and removes the replica on FROM.

rangekv waits until the operator finishes (at most --wait-timeout),
printing each step on stderr, then prints the operator. An operator that
ends aborted or timed out exits 4. Ctrl-C stops waiting; the operator keeps
running (see 'rangekv cluster status').

With -o json: {"operator": {"id", "range_id", "kind", "steps",
"current_step", "state", "reason", "created", "finished"}}.`,
		Example: `  rangekv range move --id 7 --from 1 --to 4
  rangekv range move --id 7 --from 1 --to 4 --no-wait`,
		Args: argsBetween(0, 0, "no arguments (--id, --from, --to)"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct {
				name string
				v    uint64
			}{{"id", id}, {"from", from}, {"to", to}} {
				if f.v == 0 {
					return usageErrorf("%s: required, a positive ID (see 'rangekv range move --help')", f.name)
				}
			}
			if from == to {
				return usageErrorf("to: store %d is also --from", to)
			}
			return a.runOperator(cmd.Context(), "range move", wf, func(ctx context.Context, adm adminClient) (*rangekvpb.OperatorInfo, error) {
				return adm.MoveReplica(ctx, id, from, to)
			}, func(d *rangekvpb.RangeDescriptor, _ uint64) bool {
				r := replicaOn(d, to)
				return r != nil && r.Role == rangekvpb.ReplicaRole_VOTER && replicaOn(d, from) == nil
			})
		}),
	}
	cmd.Flags().Uint64Var(&id, "id", 0, "the range ID")
	cmd.Flags().Uint64Var(&from, "from", 0, "the store whose replica moves")
	cmd.Flags().Uint64Var(&to, "to", 0, "the store that receives it")
	wf.register(cmd)
	return cmd
}

func replicaOn(d *rangekvpb.RangeDescriptor, store uint64) *rangekvpb.ReplicaDescriptor {
	for _, r := range d.GetReplicas() {
		if r.StoreId == store {
			return r
		}
	}
	return nil
}

func (a *app) rangeTransferCmd() *cobra.Command {
	var id, to uint64
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "transfer-leader --id ID --to STORE",
		Short: "Move a range's leadership to a store holding a voter; wait",
		Long: `Move range ID's Raft leadership to its voter on store TO, and wait until the
range reports the new leader (at most --wait-timeout), printing progress on
stderr. Prints the operator; one that ends aborted or timed out exits 4.

With -o json: {"operator": {...}} as for range move.`,
		Example: `  rangekv range transfer-leader --id 7 --to 2`,
		Args:    argsBetween(0, 0, "no arguments (--id, --to)"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			if id == 0 {
				return usageErrorf("id: required, a positive range ID")
			}
			if to == 0 {
				return usageErrorf("to: required, a positive store ID")
			}
			return a.runOperator(cmd.Context(), "range transfer-leader", wf, func(ctx context.Context, adm adminClient) (*rangekvpb.OperatorInfo, error) {
				return adm.TransferLeader(ctx, id, to)
			}, func(_ *rangekvpb.RangeDescriptor, leader uint64) bool { return leader == to })
		}),
	}
	cmd.Flags().Uint64Var(&id, "id", 0, "the range ID")
	cmd.Flags().Uint64Var(&to, "to", 0, "the store to lead the range")
	wf.register(cmd)
	return cmd
}

// doneCheck reports, from a range's current descriptor and leader, whether
// an operator's goal was reached (used when placement lost track of it).
type doneCheck func(d *rangekvpb.RangeDescriptor, leaderStore uint64) bool

// runOperator starts one operator and waits for it.
func (a *app) runOperator(ctx context.Context, name string, wf waitFlags, start func(ctx context.Context, adm adminClient) (*rangekvpb.OperatorInfo, error), done doneCheck) error {
	adm, err := a.admin(name)
	if err != nil {
		return err
	}
	defer adm.Close()
	sctx, cancel := context.WithTimeout(ctx, a.g.timeout)
	op, err := start(sctx, adm)
	cancel()
	if err != nil {
		return a.adminError(name, err)
	}
	if wf.noWait {
		return a.printer().printOperator(op, a.now())
	}
	final, err := a.waitOperators(ctx, adm, []*rangekvpb.OperatorInfo{op}, wf.timeout, done)
	if perr := a.printer().printOperator(final[0], a.now()); perr != nil {
		return perr
	}
	return a.adminError(name, err)
}

// waitOperators polls the operators until none runs, printing a progress
// line on stderr whenever one advances. It returns their last known state,
// and an error when one did not finish (aborted, timed out, lost) or the
// wait ended first.
func (a *app) waitOperators(ctx context.Context, adm adminClient, ops []*rangekvpb.OperatorInfo, timeout time.Duration, done doneCheck) ([]*rangekvpb.OperatorInfo, error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cur := append([]*rangekvpb.OperatorInfo(nil), ops...)
	shown := map[uint64]string{}
	show := func(o *rangekvpb.OperatorInfo) {
		line := fmt.Sprintf("range %d: operator %d (%s) %s", o.RangeId, o.Id, o.Kind, progressWords(o))
		if shown[o.Id] != line {
			shown[o.Id] = line
			fmt.Fprintln(a.stderr, line)
		}
	}
	for _, o := range cur {
		show(o)
	}
	var failingSince time.Time // placement not answering since
	for {
		running := 0
		for i, o := range cur {
			if o.State != "running" {
				continue
			}
			pctx, pcancel := context.WithTimeout(ctx, a.g.timeout)
			n, err := adm.Operator(pctx, o.Id)
			pcancel()
			var nf *router.NotFoundError
			switch {
			case err == nil && n.RangeId == o.RangeId && n.CreatedUnixMs == o.CreatedUnixMs:
				cur[i], failingSince = n, time.Time{}
			case err == nil || errors.As(err, &nf):
				// Placement lost it (its leader changed): look at the range.
				cur[i], failingSince = a.settleLost(ctx, adm, o, done), time.Time{}
			case ctx.Err() != nil:
			case failingSince.IsZero():
				failingSince = a.now()
				fmt.Fprintf(a.stderr, "range %d: operator %d: placement does not answer (%s); still waiting\n", o.RangeId, o.Id, errorLine(err))
			case a.now().Sub(failingSince) > maxPlacementSilence:
				return cur, &exitError{code: exitFailure, err: fmt.Errorf("placement did not answer for %s while waiting for operator %d on range %d (it may still run): %w",
					maxPlacementSilence, o.Id, o.RangeId, err)}
			}
			show(cur[i])
			if cur[i].State == "running" {
				running++
			}
		}
		if running == 0 {
			break
		}
		t := time.NewTimer(a.pollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			why := fmt.Sprintf("still running after --wait-timeout %s", timeout)
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = "stopped waiting"
			}
			return cur, &exitError{code: exitFailure, err: fmt.Errorf("%s; %d operator(s) keep running (follow them with 'rangekv cluster status')", why, running)}
		case <-t.C:
		}
	}
	var failed []string
	for _, o := range cur {
		if o.State != "finished" {
			msg := fmt.Sprintf("operator %d on range %d %s", o.Id, o.RangeId, o.State)
			if o.Reason != "" {
				msg += ": " + o.Reason
			}
			failed = append(failed, msg)
		}
	}
	switch len(failed) {
	case 0:
		return cur, nil
	case 1:
		return cur, &exitError{code: exitFailure, err: errors.New(failed[0])}
	}
	return cur, &exitError{code: exitFailure, err: fmt.Errorf("%d operators did not finish; first: %s", len(failed), failed[0])}
}

// maxPlacementSilence is how long waiting for operators goes on while
// placement does not answer.
const maxPlacementSilence = time.Minute

// progressWords describes an operator's state for a progress line.
func progressWords(o *rangekvpb.OperatorInfo) string {
	switch o.State {
	case "running":
		return "step " + stepCell(o)
	case "finished":
		if o.FinishedUnixMs > 0 && o.CreatedUnixMs > 0 {
			return "finished in " + time.Duration((o.FinishedUnixMs-o.CreatedUnixMs)*int64(time.Millisecond)).String()
		}
		return "finished"
	}
	if o.Reason != "" {
		return o.State + ": " + o.Reason
	}
	return o.State
}

// settleLost decides the outcome of an operator placement no longer knows
// from the range's current state.
func (a *app) settleLost(ctx context.Context, adm adminClient, o *rangekvpb.OperatorInfo, done doneCheck) *rangekvpb.OperatorInfo {
	n := &rangekvpb.OperatorInfo{Id: o.Id, RangeId: o.RangeId, Kind: o.Kind, Steps: o.Steps, CurrentStep: o.CurrentStep,
		CreatedUnixMs: o.CreatedUnixMs, State: "lost", Reason: "placement no longer knows this operator (its leader changed?)"}
	if done == nil {
		return n
	}
	ri, err := adm.RangeByID(ctx, o.RangeId)
	if err != nil {
		return n
	}
	if done(ri.Descriptor_, ri.LeaderStoreId) {
		n.State, n.Reason, n.CurrentStep = "finished", "confirmed from the range's current state", uint32(len(o.Steps))
		n.FinishedUnixMs = a.now().UnixMilli()
	}
	return n
}

func (a *app) rebalanceCmd() *cobra.Command {
	var dryRun bool
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "rebalance",
		Short: "Run the scheduler now: show the operators it would start (--dry-run), or start them and wait",
		Long: `Run placement's scheduler once: repair under- and over-replicated ranges,
then balance replicas and leaders across stores, within the operator
limits. With --dry-run it only shows the operators it would start. Without,
it starts them and waits until all finish (at most --wait-timeout),
printing progress on stderr; one that ends aborted or timed out exits 4.

With -o json: {"dry_run": B, "operators": [...]} (as in range move).`,
		Example: `  rangekv rebalance --dry-run
  rangekv rebalance
  rangekv -o json rebalance --no-wait`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			adm, err := a.admin("rebalance")
			if err != nil {
				return err
			}
			defer adm.Close()
			sctx, cancel := context.WithTimeout(cmd.Context(), a.g.timeout)
			ops, err := adm.Rebalance(sctx, dryRun)
			cancel()
			if err != nil {
				return a.adminError("rebalance", err)
			}
			if dryRun || wf.noWait || len(ops) == 0 {
				return a.printer().printRebalance(ops, dryRun, a.now())
			}
			final, err := a.waitOperators(cmd.Context(), adm, ops, wf.timeout, nil)
			if perr := a.printer().printRebalance(final, false, a.now()); perr != nil {
				return perr
			}
			return a.adminError("rebalance", err)
		}),
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only show the operators; start none")
	wf.register(cmd)
	return cmd
}

// emitDrain prints a store's drain state.
func (p *printer) emitDrain(id uint64, r *rangekvpb.DrainResponse) error {
	if p.json {
		return p.emitJSON(struct {
			StoreID        uint64 `json:"store_id"`
			Draining       bool   `json:"draining"`
			LeadersAtStart uint32 `json:"leaders_at_start"`
			Leaders        uint32 `json:"leaders"`
		}{id, r.Draining, r.LeadersAtStart, r.Leaders})
	}
	if !r.Draining {
		_, err := fmt.Fprintf(p.w, "store %d: not draining; it may lead ranges (%d now)\n", id, r.Leaders)
		return err
	}
	_, err := fmt.Fprintf(p.w, "store %d: draining, drained %d/%d leaders\n", id, r.LeadersAtStart-min(r.Leaders, r.LeadersAtStart), r.LeadersAtStart)
	return err
}
