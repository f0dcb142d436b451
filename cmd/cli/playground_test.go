package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPlaygroundState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st, err := loadOrCreatePlaygroundState(dir, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Stores) != 3 {
		t.Fatalf("%d stores, want 3", len(st.Stores))
	}
	seen := map[string]bool{}
	for i, s := range st.Stores {
		if s.ID != uint64(i+1) || s.Dir != "store"+string(rune('1'+i)) {
			t.Errorf("store %d: %+v", i, s)
		}
		for _, a := range []string{s.Addr, s.HTTPAddr} {
			if !strings.HasPrefix(a, "127.0.0.1:") || seen[a] {
				t.Errorf("address %q is not a distinct loopback address", a)
			}
			seen[a] = true
		}
	}
	if got := st.initialStoresFlag(); got != "1="+st.Stores[0].Addr+",2="+st.Stores[1].Addr+",3="+st.Stores[2].Addr {
		t.Errorf("initial stores flag %q", got)
	}

	// A restart reads the same addresses back, whatever the default count.
	again, err := loadOrCreatePlaygroundState(dir, 5, false)
	if err != nil || !slices.Equal(again.addrs(), st.addrs()) {
		t.Errorf("reload: %v, %v; want %v", again.addrs(), err, st.addrs())
	}
	// An explicit different count is refused.
	if _, err := loadOrCreatePlaygroundState(dir, 5, true); exitCodeFor(err) != exitUsage {
		t.Errorf("--store-count 5 over a 3-store playground: %v", err)
	}

	// Store data without the state file: its ports are unknown.
	other := t.TempDir()
	if err := os.Mkdir(filepath.Join(other, "store1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreatePlaygroundState(other, 3, false); exitCodeFor(err) != exitUsage || !strings.Contains(err.Error(), "playground.json") {
		t.Errorf("store data without playground.json: %v", err)
	}
	if _, err := loadOrCreatePlaygroundState(t.TempDir(), 0, true); exitCodeFor(err) != exitUsage {
		t.Errorf("--store-count 0: %v", err)
	}
}

func TestStoreEnv(t *testing.T) {
	got := storeEnv([]string{"PATH=/bin", "RANGEKV_PLACEMENT=x", "RANGEKV_STORES=y", "RANGEKV_RAFT_PROFILE=high-availability", "RANGEKV_OUTPUT=json"})
	want := []string{"PATH=/bin", "RANGEKV_RAFT_PROFILE=high-availability"}
	if !slices.Equal(got, want) {
		t.Errorf("storeEnv = %v, want %v", got, want)
	}
}

func TestFindStoreBin(t *testing.T) {
	if _, err := findStoreBin(filepath.Join(t.TempDir(), "nope")); exitCodeFor(err) != exitUsage {
		t.Errorf("missing --store-bin: %v", err)
	}
}
