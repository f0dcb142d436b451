package e2e

// Stores restart while placement is down: three placement members and
// three stores as processes; every placement member is killed with
// SIGKILL, then every store, and the stores are started again from their
// data directories. They start without placement and serve reads and
// writes of their ranges through the CLI and a client that knows only the
// store addresses.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/procs"
	"github.com/rangekv/rangekv/router"
)

func TestStoresRestartWithoutPlacementProcesses(t *testing.T) {
	start := time.Now()
	pdBin := placementBin(t)
	base := t.TempDir()
	addrs := freeAddrs(t, 12)
	var initial []procs.Peer
	var pdAddrs []string
	for i := range 3 {
		initial = append(initial, procs.Peer{ID: uint64(i + 1), Addr: addrs[2*i]})
		pdAddrs = append(pdAddrs, addrs[2*i])
	}
	var pds, stores []*proc
	for i := range 3 {
		pd := newProc(t, fmt.Sprintf("placement%d", i+1), pdBin, filepath.Join(base, fmt.Sprintf("pd%d.log", i+1)), procs.PlacementArgs{
			ID: uint64(i + 1), Addr: addrs[2*i], HTTPAddr: addrs[2*i+1], DataDir: filepath.Join(base, fmt.Sprintf("pd%d", i+1)),
			InitialCluster: initial,
			Extra:          pdTestFlags,
		}.Args()...)
		pd.start()
		pds = append(pds, pd)
	}
	var storeAddrs, storeHTTP []string
	for i := range 3 {
		addr, httpAddr := addrs[6+2*i], addrs[7+2*i]
		storeAddrs, storeHTTP = append(storeAddrs, addr), append(storeHTTP, httpAddr)
		args := procs.StoreArgs{Addr: addr, HTTPAddr: httpAddr, DataDir: filepath.Join(base, fmt.Sprintf("store%d", i+1)),
			Placement: pdAddrs, Extra: joinedStoreFlags()}
		p := newProc(t, fmt.Sprintf("store%d", i+1), filepath.Join(binDir, "rangekv-store"), filepath.Join(base, fmt.Sprintf("store%d.log", i+1)), args.Args()...)
		p.start()
		stores = append(stores, p)
	}
	all := append(append([]*proc{}, pds...), stores...)

	cl, err := router.New(pdAddrs, router.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm, err := cl.Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitFor(t, "range 1 with 3 voters", 60*time.Second, func() bool {
		checkProcs(t, all...)
		ri, err := adm.RangeByID(ctx, 1)
		return err == nil && len(ri.Descriptor_.Replicas) == 3
	})
	waitFor(t, "split at m", 30*time.Second, func() bool {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		_, _, err := adm.Split(cctx, []byte("m"))
		return err == nil
	})
	// Both ranges on every store (the store's own view).
	for i, h := range storeHTTP {
		waitFor(t, fmt.Sprintf("store %d to hold 2 ranges", i+1), 30*time.Second, func() bool {
			rs, err := rangeStatus(h)
			if err != nil || len(rs.Replicas) != 2 {
				return false
			}
			for _, r := range rs.Replicas {
				if !r.Initialized {
					return false
				}
			}
			return true
		})
	}
	want := map[string]string{}
	for i := range 20 {
		k := fmt.Sprintf("%c/before/%02d", "cx"[i%2], i)
		if err := cl.Put(ctx, []byte(k), []byte("v"+k)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = "v" + k
	}
	t.Logf("cluster ready %s after start", time.Since(start).Round(time.Millisecond))

	for _, p := range pds {
		p.kill9()
	}
	for _, p := range stores {
		p.kill9()
	}
	for _, p := range stores {
		p.start()
	}
	restarted := time.Now()
	static, err := router.NewStatic(storeAddrs, router.Options{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer static.Close()
	// The first write after the restart waits for leaders to be elected.
	waitFor(t, "a write after the restart", 30*time.Second, func() bool {
		checkProcs(t, stores...)
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		defer ccancel()
		return static.Put(cctx, []byte("c/first"), []byte("1")) == nil
	})
	want["c/first"] = "1"
	t.Logf("writable %s after the stores were restarted without placement", time.Since(restarted).Round(time.Millisecond))
	for i := range 10 {
		k := fmt.Sprintf("%c/after/%02d", "cx"[i%2], i)
		if err := static.Put(ctx, []byte(k), []byte("v"+k)); err != nil {
			t.Fatalf("put %s with placement down: %v", k, err)
		}
		want[k] = "v" + k
	}
	for k, v := range want {
		got, found, err := static.Get(ctx, []byte(k))
		if err != nil || !found || string(got) != v {
			t.Fatalf("get %s with placement down: %q %v %v, want %q", k, got, found, err, v)
		}
	}
	// The CLI, given the store addresses, works too; on both ranges.
	storesFlag := strings.Join(storeAddrs, ",")
	for _, k := range []string{"c/cli", "x/cli"} {
		if _, stderr, code := runCLI(t, "--stores", storesFlag, "--timeout", "10s", "put", k, "cli"); code != 0 {
			t.Fatalf("rangekv put %s with placement down: exit %d: %s", k, code, stderr)
		}
		if stdout, stderr, code := runCLI(t, "--stores", storesFlag, "get", k); code != 0 || stdout != "cli\n" {
			t.Fatalf("rangekv get %s with placement down: exit %d, %q, %s", k, code, stdout, stderr)
		}
	}
	// Each store says in its metrics that placement is unreachable.
	for i, h := range storeHTTP {
		if v := metric(t, h, "rangekv_store_placement_reachable"); v != 0 {
			t.Errorf("store %d: rangekv_store_placement_reachable %v with placement down, want 0", i+1, v)
		}
	}
	checkProcs(t, stores...)
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// metric returns the value of an unlabelled series from a process's
// /metrics (-1 when it is not exported).
func metric(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics of %s: %v", httpAddr, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return v
		}
	}
	return -1
}
