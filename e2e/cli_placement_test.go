package e2e

// The playground with its placement driver, used through the rangekv CLI
// binary with --placement, then stopped with SIGINT.

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	pgStoreLine     = regexp.MustCompile(`(?m)^\s+store (\d+)\s+pid (\d+)\s+addr (\S+)\s+http http://(\S+)\s+log (\S+)`)
	pgPlacementLine = regexp.MustCompile(`(?m)^\s+placement (\d+)\s+pid (\d+)\s+addr (\S+)\s+http http://(\S+)\s+log (\S+)`)
)

// pgProc is one child the playground printed.
type pgProc struct {
	pid        int
	addr, http string
	log        string
}

// placementPlayground is a running `rangekv playground` with placement.
type placementPlayground struct {
	*playgroundProc
	t *testing.T

	members, stores []pgProc
	placement       string // --placement value
}

func parseProcs(t *testing.T, re *regexp.Regexp, out string) []pgProc {
	t.Helper()
	var ps []pgProc
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		pid, err := strconv.Atoi(m[2])
		if err != nil {
			t.Fatalf("pid %q: %v", m[2], err)
		}
		ps = append(ps, pgProc{pid: pid, addr: m[3], http: m[4], log: m[5]})
	}
	return ps
}

// startPlacementPlayground runs rangekv playground (3 placement members, 3
// stores) on dataDir and waits until it says it is ready.
func startPlacementPlayground(t *testing.T, dataDir string) *placementPlayground {
	t.Helper()
	pg := &placementPlayground{t: t}
	t.Cleanup(func() {
		for _, p := range append(append([]pgProc(nil), pg.members...), pg.stores...) {
			syscall.Kill(p.pid, syscall.SIGKILL) // a child left behind by a failed test
		}
		if t.Failed() {
			for _, p := range append(append([]pgProc(nil), pg.members...), pg.stores...) {
				t.Logf("%s tail:\n%s", p.log, tail(p.log, 10))
			}
		}
	})
	pg.playgroundProc = runPlayground(t, dataDir, 100*time.Second, "--store-flag=--raft.profile=high-availability", "--ready-timeout", "90s")
	pg.members = parseProcs(t, pgPlacementLine, pg.output())
	pg.stores = parseProcs(t, pgStoreLine, pg.output())
	if len(pg.members) != 3 || len(pg.stores) != 3 {
		t.Fatalf("playground printed %d placement and %d store lines, want 3 and 3:\n%s", len(pg.members), len(pg.stores), pg.output())
	}
	var addrs []string
	for _, m := range pg.members {
		addrs = append(addrs, m.addr)
	}
	pg.placement = strings.Join(addrs, ",")
	for _, want := range []string{"export RANGEKV_PLACEMENT=" + pg.placement, "rangekv cluster status", "--placement " + pg.placement} {
		if !strings.Contains(pg.output(), want) {
			t.Errorf("playground output lacks %q:\n%s", want, pg.output())
		}
	}
	return pg
}

// stopAndCheck sends SIGINT and checks that the playground exits 0 with
// every child gone and its ports free, and that the stores stopped before
// the placement members.
func (pg *placementPlayground) stopAndCheck() {
	t := pg.t
	t.Helper()
	pg.interruptAndWait(t, 40*time.Second)
	var storeStops, memberStops []time.Time
	for _, p := range append(append([]pgProc(nil), pg.members...), pg.stores...) {
		if !processGone(p.pid) {
			t.Errorf("child pid %d (%s) still exists after the playground exited", p.pid, p.addr)
		}
		for _, a := range []string{p.addr, p.http} {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Errorf("address %s is still in use after the playground exited: %v", a, err)
				continue
			}
			ln.Close()
		}
	}
	for _, p := range pg.stores {
		storeStops = append(storeStops, signalTime(t, p.log))
	}
	for _, p := range pg.members {
		memberStops = append(memberStops, signalTime(t, p.log))
	}
	for _, s := range storeStops {
		for _, m := range memberStops {
			if !s.IsZero() && !m.IsZero() && !s.Before(m) {
				t.Errorf("a store got its stop signal at %s, after a placement member (%s): stores stop first", s, m)
			}
		}
	}
}

// signalTime returns when a child logged that a signal stopped it (its
// last such line).
func signalTime(t *testing.T, logPath string) time.Time {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Errorf("%s: %v", logPath, err)
		return time.Time{}
	}
	defer f.Close()
	var last time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && strings.HasPrefix(rec.Msg, "signal received") {
			last = rec.Time
		}
	}
	if last.IsZero() {
		t.Errorf("%s: no \"signal received\" line: the child was not stopped by a signal", logPath)
	}
	return last
}

// TestPlaygroundWithPlacement starts the playground (3 placement members
// and 3 stores), checks that range 1 is replicated, uses the cluster
// through --placement, and stops it with SIGINT: exit 0, no child left,
// stores stopped before placement.
func TestPlaygroundWithPlacement(t *testing.T) {
	pg := startPlacementPlayground(t, filepath.Join(t.TempDir(), "data"))
	pd := []string{"--placement", pg.placement}

	stdout, stderr, code := runCLI(t, append(pd, "-o", "json", "cluster", "status")...)
	var st struct {
		Bootstrapped    bool     `json:"bootstrapped"`
		StoresUp        int      `json:"stores_up"`
		UnderReplicated []uint64 `json:"under_replicated"`
		Members         []struct {
			Leader bool `json:"leader"`
		} `json:"members"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil {
		t.Fatalf("cluster status: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if !st.Bootstrapped || st.StoresUp != 3 || len(st.UnderReplicated) != 0 || len(st.Members) != 3 {
		t.Errorf("cluster status right after ready: %s", stdout)
	}

	for _, s := range []struct {
		args   []string
		stdout string
	}{
		{[]string{"put", "hello", "world"}, "OK\n"},
		{[]string{"get", "hello"}, "world\n"},
		{[]string{"incr", "visits"}, "1\n"},
	} {
		if stdout, stderr, code := runCLI(t, append(pd, s.args...)...); code != 0 || stdout != s.stdout {
			t.Errorf("rangekv %s: exit %d stdout %q stderr %q", strings.Join(s.args, " "), code, stdout, stderr)
		}
	}
	if stdout, stderr, code := runCLI(t, append(pd, "range", "split", "m")...); code != 0 || !strings.Contains(stdout, "right") {
		t.Errorf("range split m: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if stdout, stderr, code := runCLI(t, append(pd, "put", "zebra", "z")...); code != 0 || stdout != "OK\n" {
		t.Errorf("put in the new range: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runCLI(t, append(pd, "scan")...)
	var keys []string
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		k, _, _ := strings.Cut(l, "\t")
		keys = append(keys, k)
	}
	if want := "hello playground/started visits zebra"; code != 0 || strings.Join(keys, " ") != want {
		t.Errorf("scan across ranges: exit %d keys %q, want %q (stderr %q)", code, keys, want, stderr)
	}
	if stdout, stderr, code := runCLI(t, append(pd, "range", "list")...); code != 0 || strings.Count(stdout, "\n") != 3 {
		t.Errorf("range list: exit %d stderr %q\n%s", code, stderr, stdout)
	}
	if stdout, stderr, code := runCLI(t, append(pd, "store", "list")...); code != 0 || strings.Count(stdout, " up ") != 3 {
		t.Errorf("store list: exit %d stderr %q\n%s", code, stderr, stdout)
	}
	// Static mode against the same stores.
	var stores []string
	for _, s := range pg.stores {
		stores = append(stores, s.addr)
	}
	if stdout, stderr, code := runCLI(t, "--stores", strings.Join(stores, ","), "get", "zebra"); code != 0 || stdout != "z\n" {
		t.Errorf("--stores get zebra: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	pg.stopAndCheck()
}
