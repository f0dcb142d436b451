// Tests of the store and placement command lines and the helpers beside
// them.

package procs

import (
	"net"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestStoreArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    StoreArgs
		want string
	}{
		{"static", StoreArgs{Addr: "a:1", HTTPAddr: "a:2", DataDir: "/d/s1", StoreID: 1,
			InitialStores: []Peer{{1, "a:1"}, {2, "b:1"}}, Extra: []string{"--raft.profile", "production"}},
			"--addr a:1 --http-addr a:2 --data-dir /d/s1 --store-id 1 --initial-stores 1=a:1,2=b:1 --raft.profile production"},
		{"joins placement", StoreArgs{Addr: "a:1", HTTPAddr: "a:2", DataDir: "/d/s1", Placement: []string{"p:1", "p:2"}},
			"--addr a:1 --http-addr a:2 --data-dir /d/s1 --placement p:1,p:2"},
		{"no HTTP server", StoreArgs{Addr: "a:1", DataDir: "/d"},
			"--addr a:1 --http-addr  --data-dir /d"},
	} {
		if got := strings.Join(tc.a.Args(), " "); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestPlacementArgs(t *testing.T) {
	a := PlacementArgs{ID: 2, Addr: "p:2", HTTPAddr: "p:3", DataDir: "/d/pd2",
		InitialCluster: []Peer{{1, "p:1"}, {2, "p:2"}}, Replicas: 3, Extra: []string{"--tls-ca", "ca.crt"}}
	want := "--id 2 --addr p:2 --http-addr p:3 --data-dir /d/pd2 --initial-cluster 1=p:1,2=p:2 --schedule.replicas 3 --tls-ca ca.crt"
	if got := strings.Join(a.Args(), " "); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	a.Replicas, a.Extra = 0, nil
	if got := a.Args(); slices.Contains(got, "--schedule.replicas") {
		t.Errorf("Replicas 0 passed --schedule.replicas: %v", got)
	}
}

func TestFilterEnv(t *testing.T) {
	env := []string{"A=1", "RANGEKV_STORES=x", "B=2=3", "RANGEKV_TLS_CA=y"}
	got := FilterEnv(env, func(name string) bool { return name == "RANGEKV_STORES" })
	if want := []string{"A=1", "B=2=3", "RANGEKV_TLS_CA=y"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// Everything dropped is an empty environment, not nil (which inherits).
	if got := FilterEnv(env, func(string) bool { return true }); got == nil || len(got) != 0 {
		t.Errorf("all dropped: %#v, want an empty non-nil slice", got)
	}
}

func TestFreeLoopbackAddrs(t *testing.T) {
	addrs, err := FreeLoopbackAddrs(4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 4 || len(slices.Compact(slices.Sorted(slices.Values(addrs)))) != 4 {
		t.Fatalf("addresses %v, want 4 distinct", addrs)
	}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("%s is not on 127.0.0.1", a)
		}
		ln, err := net.Listen("tcp", a) // free again once returned
		if err != nil {
			t.Errorf("%s: %v", a, err)
			continue
		}
		ln.Close()
	}
}

func TestLastLines(t *testing.T) {
	path := t.TempDir() + "/log"
	if err := os.WriteFile(path, []byte("one\n\n  two\t\nthree  \n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LastLines(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"  two", "three"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, _ := LastLines(path, 10); len(got) != 3 {
		t.Errorf("n above the line count: %q", got)
	}
	if _, err := LastLines(path+".missing", 1); err == nil {
		t.Error("no error for a missing file")
	}
}
