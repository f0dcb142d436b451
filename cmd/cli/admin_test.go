package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// TestGoldenAdmin runs the cluster commands against the in-memory admin
// client, in table and JSON output, and compares stdout, stderr and the
// exit code with testdata/admin_<case>.golden.
func TestGoldenAdmin(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *fakeAdmin)
		args  []string
	}{
		{name: "cluster_status_table", args: []string{"cluster", "status"}},
		{name: "cluster_status_json", args: []string{"-o", "json", "cluster", "status"}},
		{name: "cluster_status_healthy_table", setup: func(f *fakeAdmin) {
			f.stores = f.stores[:3]
			f.status.Members[2].Reachable = true
			f.status.UnderReplicated, f.status.Leaderless, f.status.Operators = nil, nil, nil
		}, args: []string{"cluster", "status"}},
		{name: "store_list_table", args: []string{"store", "list"}},
		{name: "store_list_json", args: []string{"-o", "json", "store", "list"}},
		{name: "range_list_table", args: []string{"range", "list"}},
		{name: "range_list_json", args: []string{"-o", "json", "range", "list"}},
		{name: "range_list_span_table", args: []string{"range", "list", "--start", "n", "--end", "z"}},
		{name: "range_list_hex_table", args: []string{"--hex", "range", "list"}},
		{name: "range_list_paged_table", args: []string{"range", "list", "--page-size", "2"}},
		{name: "range_list_paged_json", args: []string{"-o", "json", "range", "list", "--page-size", "1"}},
		{name: "range_list_limit_table", args: []string{"range", "list", "--limit", "2", "--page-size", "1"}},
		{name: "range_list_bad_page_size", args: []string{"range", "list", "--page-size", "10001"}},
		{name: "range_list_fails_mid_json", setup: func(f *fakeAdmin) { f.pageErrAt = 2 },
			args: []string{"-o", "json", "range", "list", "--page-size", "2"}},
		{name: "range_show_key_table", args: []string{"range", "show", "a"}},
		{name: "range_show_id_json", args: []string{"-o", "json", "range", "show", "--id", "1"}},
		{name: "range_show_store_down_table", setup: func(f *fakeAdmin) {
			f.storeErr[3] = fmt.Errorf("store 3 (127.0.0.1:7503): connection refused")
		}, args: []string{"range", "show", "--id", "9"}},
		{name: "range_show_missing", args: []string{"range", "show", "--id", "42"}},
		{name: "range_show_both", args: []string{"range", "show", "a", "--id", "1"}},
		{name: "range_split_table", args: []string{"range", "split", "g"}},
		{name: "range_split_json", args: []string{"-o", "json", "range", "split", "g"}},
		{name: "range_split_existing", args: []string{"range", "split", "m"}},
		{name: "range_split_refused_then_ok", setup: func(f *fakeAdmin) {
			f.splitErr = &router.PlacementError{Op: "split", Message: "the range has no known leader yet; retry shortly", Permanent: true}
		}, args: []string{"range", "split", "g"}},
		{name: "range_split_lost_answer", setup: func(f *fakeAdmin) {
			f.splitErr = &router.AmbiguousError{Op: "placement split", Reason: "context deadline exceeded"}
		}, args: []string{"range", "split", "g"}},
		{name: "range_split_lost_answer_done", setup: func(f *fakeAdmin) {
			f.splitErr, f.splitErrAfter = &router.AmbiguousError{Op: "placement split", Reason: "context deadline exceeded"}, true
		}, args: []string{"range", "split", "g"}},
		{name: "range_move_table", args: []string{"range", "move", "--id", "7", "--from", "1", "--to", "4"}},
		{name: "range_move_json", args: []string{"-o", "json", "range", "move", "--id", "7", "--from", "1", "--to", "4"}},
		{name: "range_move_no_wait", args: []string{"range", "move", "--id", "7", "--from", "1", "--to", "4", "--no-wait"}},
		{name: "range_move_aborted", setup: func(f *fakeAdmin) { f.abortAt = 2 }, args: []string{"range", "move", "--id", "7", "--from", "1", "--to", "4"}},
		{name: "range_move_bad_range", args: []string{"range", "move", "--id", "99", "--from", "1", "--to", "4"}},
		{name: "range_move_missing_flag", args: []string{"range", "move", "--id", "7", "--to", "4"}},
		{name: "range_move_lost_confirmed", setup: func(f *fakeAdmin) {
			f.forget = true
			f.routes[1].Descriptor_ = desc(7, "m", "user 9", 3, 7, 4, 2, 3)
		}, args: []string{"range", "move", "--id", "7", "--from", "1", "--to", "4"}},
		{name: "range_move_lost_unknown", setup: func(f *fakeAdmin) { f.forget = true }, args: []string{"range", "move", "--id", "7", "--from", "1", "--to", "4"}},
		{name: "range_transfer_leader_table", args: []string{"range", "transfer-leader", "--id", "7", "--to", "3"}},
		{name: "range_transfer_leader_json", args: []string{"-o", "json", "range", "transfer-leader", "--id", "7", "--to", "3"}},
		{name: "range_snapshot_table", args: []string{"range", "snapshot", "--id", "7"}},
		{name: "range_snapshot_json", args: []string{"-o", "json", "range", "snapshot", "--id", "7"}},
		{name: "range_snapshot_store_down", setup: func(f *fakeAdmin) {
			f.storeErr[3] = fmt.Errorf("store 3 (127.0.0.1:7503): connection refused")
		}, args: []string{"range", "snapshot", "--id", "7", "--wait-timeout", "20ms"}},
		{name: "range_snapshot_missing_id", args: []string{"range", "snapshot"}},
		{name: "range_snapshot_unknown_range", args: []string{"range", "snapshot", "--id", "42"}},
		{name: "rebalance_dry_run_table", setup: withRebalance, args: []string{"rebalance", "--dry-run"}},
		{name: "rebalance_dry_run_json", setup: withRebalance, args: []string{"-o", "json", "rebalance", "--dry-run"}},
		{name: "rebalance_table", setup: withRebalance, args: []string{"rebalance"}},
		{name: "rebalance_json", setup: withRebalance, args: []string{"-o", "json", "rebalance"}},
		{name: "rebalance_nothing", args: []string{"rebalance"}},
		{name: "rebalance_nothing_json", args: []string{"-o", "json", "rebalance", "--dry-run"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAdmin()
			if tc.setup != nil {
				tc.setup(f)
			}
			stdout, stderr, code := runAdmin(t, f, tc.args...)
			got := fmt.Sprintf("$ rangekv %s\n-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", shellJoin(tc.args), stdout, stderr, code)
			checkGolden(t, "admin_"+tc.name, got)
			if strings.Contains(strings.Join(tc.args, " "), "-o json") && stdout != "" {
				var v map[string]any
				if err := json.Unmarshal([]byte(stdout), &v); err != nil {
					t.Errorf("stdout is not one JSON document: %v\n%s", err, stdout)
				}
			}
		})
	}
}

// TestRangeListPages: range list reads placement a page at a time and
// asks each leader's store only for the sizes of that page's ranges; the
// paged output holds the same ranges as one page does.
func TestRangeListPages(t *testing.T) {
	f := newFakeAdmin()
	whole, _, code := runAdmin(t, f, "-o", "json", "range", "list")
	if code != 0 || len(f.pageCalls) != 1 {
		t.Fatalf("one page: exit %d, page calls %q", code, f.pageCalls)
	}
	f = newFakeAdmin()
	paged, _, code := runAdmin(t, f, "-o", "json", "range", "list", "--page-size", "1")
	if code != 0 || paged != whole {
		t.Fatalf("--page-size 1: exit %d, stdout\n%s\nwant the one-page output\n%s", code, paged, whole)
	}
	wantPages := []string{`token "" limit 1`, `token "1" limit 1`, `token "2" limit 1`}
	if !slices.Equal(f.pageCalls, wantPages) {
		t.Fatalf("page calls %q, want %q", f.pageCalls, wantPages)
	}
	// Range 9 has no leader: no store is asked for its size.
	slices.Sort(f.storeCalls)
	wantStores := []string{"store 1 ranges [1]", "store 2 ranges [7]"}
	if !slices.Equal(f.storeCalls, wantStores) {
		t.Fatalf("store calls %q, want %q", f.storeCalls, wantStores)
	}
	f = newFakeAdmin()
	if _, _, code := runAdmin(t, f, "range", "list", "--limit", "2", "--page-size", "5"); code != 0 || !slices.Equal(f.pageCalls, []string{`token "" limit 2`}) {
		t.Fatalf("--limit 2: exit %d, page calls %q; want one call for 2 ranges", code, f.pageCalls)
	}
}

func withRebalance(f *fakeAdmin) {
	f.rebalance = []*rangekvpb.OperatorInfo{
		{RangeId: 1, Kind: "balance-leader", Steps: []string{"transfer leader to store 3"}},
		{RangeId: 9, Kind: "balance-replica", Steps: []string{"add learner on store 4", "promote learner on store 4", "remove replica on store 2"}},
	}
}

// The cluster commands need --placement.
func TestAdminNeedsPlacement(t *testing.T) {
	for _, args := range [][]string{{"cluster", "status"}, {"store", "list"}, {"range", "list"}, {"range", "split", "k"}, {"rebalance"},
		{"range", "move", "--id", "1", "--from", "1", "--to", "2"}, {"bench", "--ranges", "4", "--ops", "1"}} {
		_, stderr, code := runFake(t, newFake(), append([]string{"--placement=", "--stores", "127.0.0.1:1"}, args...)...)
		if code != exitUsage || !strings.Contains(stderr, "--placement") {
			t.Errorf("rangekv --stores ... %s: exit %d, stderr %q; want 2 naming --placement", strings.Join(args, " "), code, stderr)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 3 << 20: "3.0 MiB", 5 << 40: "5.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
