package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func TestPlaygroundState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := loadOrCreatePlaygroundState(dir, playgroundConfig{storeCount: 3, placementCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Stores) != 3 || len(st.Placement) != 3 || st.Mode != modePlacement || st.static() {
		t.Fatalf("state %+v, want 3 placement members and 3 stores", st)
	}
	seen := map[string]bool{}
	for i, s := range append(append([]playgroundProc(nil), st.Placement...), st.Stores...) {
		if s.ID != uint64(i%3+1) {
			t.Errorf("process %d: %+v", i, s)
		}
		for _, a := range []string{s.Addr, s.HTTPAddr} {
			if !strings.HasPrefix(a, "127.0.0.1:") || seen[a] {
				t.Errorf("address %q is not a distinct loopback address", a)
			}
			seen[a] = true
		}
	}
	if st.Stores[1].Dir != "store2" || st.Placement[2].Dir != "placement3" {
		t.Errorf("dirs: %+v %+v", st.Stores, st.Placement)
	}
	if got := procs.PeerList(st.initialCluster()); got != "1="+st.Placement[0].Addr+",2="+st.Placement[1].Addr+",3="+st.Placement[2].Addr {
		t.Errorf("initial cluster flag %q", got)
	}
	if st.replicas() != 3 {
		t.Errorf("replicas %d", st.replicas())
	}

	// A restart reads the same addresses back, whatever the default counts.
	again, err := loadOrCreatePlaygroundState(dir, playgroundConfig{storeCount: 5, placementCount: 1})
	if err != nil || !slices.Equal(again.addrs(), st.addrs()) || !slices.Equal(again.placementAddrs(), st.placementAddrs()) {
		t.Errorf("reload: %v %v, %v; want %v", again.addrs(), again.placementAddrs(), err, st.addrs())
	}
	// Explicit different counts are refused.
	if _, err := loadOrCreatePlaygroundState(dir, playgroundConfig{storeCount: 5, storesChanged: true}); exitCodeFor(err) != exitUsage {
		t.Errorf("--store-count 5 over a 3-store playground: %v", err)
	}
	if _, err := loadOrCreatePlaygroundState(dir, playgroundConfig{storeCount: 3, placementCount: 1, membersChanged: true}); exitCodeFor(err) != exitUsage {
		t.Errorf("--placement-count 1 over 3 members: %v", err)
	}

	// Static: no placement members, stores with --initial-stores.
	sdir := t.TempDir()
	ss, err := loadOrCreatePlaygroundState(sdir, playgroundConfig{storeCount: 2, placementCount: 0})
	if err != nil || !ss.static() || len(ss.Placement) != 0 || ss.replicas() != 2 {
		t.Fatalf("static: %+v %v", ss, err)
	}
	if got := procs.PeerList(ss.initialStores()); got != "1="+ss.Stores[0].Addr+",2="+ss.Stores[1].Addr {
		t.Errorf("initial stores flag %q", got)
	}

	// A state file from before placement (no mode) is a static playground;
	// asking for placement members over it is refused.
	old := t.TempDir()
	b, _ := json.Marshal(map[string]any{"stores": []map[string]any{{"id": 1, "addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2", "dir": "store1"}}})
	if err := os.WriteFile(filepath.Join(old, playgroundStateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if os, err := loadOrCreatePlaygroundState(old, playgroundConfig{storeCount: 3, placementCount: 3}); err != nil || !os.static() {
		t.Errorf("old state file: %+v %v, want static", os, err)
	}
	if _, err := loadOrCreatePlaygroundState(old, playgroundConfig{storeCount: 3, placementCount: 3, membersChanged: true}); exitCodeFor(err) != exitUsage ||
		!strings.Contains(err.Error(), "--placement-count 0") {
		t.Errorf("--placement-count 3 over an old static playground: %v", err)
	}

	// Data without the state file: its ports are unknown.
	other := t.TempDir()
	if err := os.Mkdir(filepath.Join(other, "store1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreatePlaygroundState(other, playgroundConfig{storeCount: 3, placementCount: 3}); exitCodeFor(err) != exitUsage || !strings.Contains(err.Error(), "playground.json") {
		t.Errorf("store data without playground.json: %v", err)
	}
	if _, err := loadOrCreatePlaygroundState(t.TempDir(), playgroundConfig{storeCount: 0, storesChanged: true, placementCount: 3}); exitCodeFor(err) != exitUsage {
		t.Errorf("--store-count 0: %v", err)
	}
	if _, err := loadOrCreatePlaygroundState(t.TempDir(), playgroundConfig{storeCount: 1, placementCount: -1}); exitCodeFor(err) != exitUsage {
		t.Errorf("--placement-count -1: %v", err)
	}
}

func TestReplicatedNow(t *testing.T) {
	up := func(id uint64) *rangekvpb.StoreInfo {
		return &rangekvpb.StoreInfo{Store: &rangekvpb.StoreDescriptor{StoreId: id}}
	}
	cases := []struct {
		st   *rangekvpb.ClusterStatusResponse
		ok   bool
		want string
	}{
		{&rangekvpb.ClusterStatusResponse{}, false, "no store has joined"},
		{&rangekvpb.ClusterStatusResponse{Bootstrapped: true, Stores: []*rangekvpb.StoreInfo{up(1)}, RangeCount: 1}, false, "1 of 3 stores"},
		{&rangekvpb.ClusterStatusResponse{Bootstrapped: true, Stores: []*rangekvpb.StoreInfo{up(1), up(2), up(3)}, RangeCount: 1, UnderReplicated: []uint64{1}}, false, "ranges 1 under-replicated"},
		{&rangekvpb.ClusterStatusResponse{Bootstrapped: true, Stores: []*rangekvpb.StoreInfo{up(1), up(2), up(3)}, RangeCount: 1, Leaderless: []uint64{1}}, false, "without a leader"},
		{&rangekvpb.ClusterStatusResponse{Bootstrapped: true, Stores: []*rangekvpb.StoreInfo{up(1), up(2), up(3)}, RangeCount: 1}, true, ""},
	}
	for _, c := range cases {
		ok, why := replicatedNow(c.st, 3)
		if ok != c.ok || !strings.Contains(why, c.want) {
			t.Errorf("replicatedNow(%v) = %t %q, want %t %q", c.st, ok, why, c.ok, c.want)
		}
	}
}

func TestStoreEnv(t *testing.T) {
	got := storeEnv([]string{"PATH=/bin", "RANGEKV_PLACEMENT=x", "RANGEKV_STORES=y", "RANGEKV_RAFT_PROFILE=high-availability", "RANGEKV_OUTPUT=json"})
	want := []string{"PATH=/bin", "RANGEKV_RAFT_PROFILE=high-availability"}
	if !slices.Equal(got, want) {
		t.Errorf("storeEnv = %v, want %v", got, want)
	}
}

func TestFindBin(t *testing.T) {
	if _, err := findBin("store-bin", filepath.Join(t.TempDir(), "nope"), "rangekv-store"); exitCodeFor(err) != exitUsage {
		t.Errorf("missing --store-bin: %v", err)
	}
	// The test binary has no rangekv-placement next to it.
	if _, err := findBin("placement-bin", "", "rangekv-placement-nope"); exitCodeFor(err) != exitUsage || !strings.Contains(err.Error(), "make build") {
		t.Errorf("no rangekv-placement: %v", err)
	}
}

// shChildren starts n children of the playground's kind that run script
// under sh and waits until each printed "ready".
func shChildren(t *testing.T, n int, script string) []*child {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh to run test children: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	var children []*child
	for i := range n {
		c, err := startChild(sh, dir, fmt.Sprintf("store %d", i+1), playgroundProc{ID: uint64(i + 1)}, []string{"-c", script})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			kctx, kcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer kcancel()
			if err := c.Kill(kctx); err != nil {
				t.Error(err)
			}
		})
		children = append(children, c)
		if err := c.WaitReady(ctx, func(context.Context) error {
			if b, _ := os.ReadFile(c.LogPath()); !bytes.Contains(b, []byte("ready")) {
				return errors.New("not ready")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return children
}

// Children that stop on SIGTERM are stopped without a word.
func TestStopChildren(t *testing.T) {
	children := shChildren(t, 2, "echo ready; exec sleep 60")
	var stderr bytes.Buffer
	stopChildren(children, make(chan os.Signal), &stderr)
	for _, c := range children {
		if c.Running() {
			t.Errorf("%s still running", c.Name())
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stopChildren printed %q", stderr.String())
	}
}

// A second signal, a second or more into the stop, kills the children
// that ignore SIGTERM at once (well before the 10s grace).
func TestStopChildrenSecondSignalKills(t *testing.T) {
	children := shChildren(t, 2, `trap "" TERM; echo ready; exec sleep 60`)
	sigs := make(chan os.Signal, 1)
	var stderr bytes.Buffer
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		stopChildren(children, sigs, &stderr)
	}()
	// A Ctrl-C every 100ms: those in the first second are ignored.
	ctx, cancel := context.WithTimeout(context.Background(), playgroundStopTimeout/2)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-stopped:
			waiting = false
		case <-tick.C:
			select {
			case sigs <- os.Interrupt:
			default:
			}
		case <-ctx.Done():
			t.Fatal("the second signal did not end the stop before half its grace")
		}
	}
	if want := "rangekv playground: killing store 1, store 2\n"; stderr.String() != want {
		t.Errorf("stopChildren printed %q, want %q", stderr.String(), want)
	}
	for _, c := range children {
		if c.Running() {
			t.Errorf("%s still running", c.Name())
		}
	}
}
