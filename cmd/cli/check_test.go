package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/placement"
	"github.com/rangekv/rangekv/store"
)

// TestCheckAgainstCluster runs `rangekv check` with faults against an
// in-process cluster with placement: the verdict is linearizable (exit 0)
// with operations on every key, and its JSON has the documented shape.
func TestCheckAgainstCluster(t *testing.T) {
	c := testcluster.StartPD(t, 4, testcluster.PDOptions{Members: 1, ConfigurePD: func(_ int, cfg *placement.Config) {
		cfg.ScheduleInterval = 100 * time.Millisecond
	}})
	c.WaitFor("range 1 on 3 stores", 60*time.Second, func() bool {
		for _, d := range c.Descriptors() {
			return len(d.Replicas) == 3
		}
		return false
	})
	t.Setenv("RANGEKV_PLACEMENT", strings.Join(c.PDAddrs, ","))
	t.Setenv("RANGEKV_STORES", "")
	out := filepath.Join(t.TempDir(), "h.html")
	stdout, stderr, code := cli(t, "-o", "json", "check", "--duration", "3s", "--clients", "3", "--keys", "4",
		"--faults", "split,leader-transfer,move", "--fault-interval", "500ms", "--seed", "5", "--out", out)
	if code != 0 {
		t.Fatalf("check: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("verdict is not JSON: %v: %q", err, stdout)
	}
	if v["verdict"] != "linearizable" || v["keys_checked"].(float64) != 4 || v["ok"].(float64) < 20 {
		t.Fatalf("verdict %s", stdout)
	}
	if faults := v["faults"].(map[string]any); len(faults) == 0 {
		t.Fatalf("no fault was applied: %s", stdout)
	}
	checkGolden(t, "check_verdict_shape", shapeOf(v))

	// Bad usage is exit 2, naming the field.
	if _, stderr, code := cli(t, "check", "--faults", "kill"); code != exitUsage || !strings.Contains(stderr, "faults") {
		t.Fatalf("bad --faults: exit %d, stderr %q", code, stderr)
	}
}

// shapeOf renders a decoded JSON object's keys and value types, one per
// line, sorted: the golden pins the fields, not the counts.
func shapeOf(v map[string]any) string {
	var lines []string
	for k, x := range v {
		typ := fmt.Sprintf("%T", x)
		switch x.(type) {
		case float64:
			typ = "number"
		case []any:
			typ = "array"
		case map[string]any:
			typ = "object"
		}
		lines = append(lines, k+": "+typ)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// TestCheckCatchesBrokenStore: against stores that apply every Incr twice
// the verdict is a violation, exit 1, with the history written to --out.
func TestCheckCatchesBrokenStore(t *testing.T) {
	c := testcluster.StartPD(t, 3, testcluster.PDOptions{Configure: func(_ int, cfg *store.Config) {
		cfg.Knobs = &store.TestingKnobs{TestingApplyIncrTwice: true}
	}})
	t.Setenv("RANGEKV_PLACEMENT", strings.Join(c.PDAddrs, ","))
	t.Setenv("RANGEKV_STORES", "")
	out := filepath.Join(t.TempDir(), "h.html")
	stdout, stderr, code := cli(t, "check", "--duration", "1500ms", "--clients", "2", "--keys", "2", "--seed", "3", "--out", out)
	if code != exitNotFound {
		t.Fatalf("check: exit %d, want %d\nstdout %s\nstderr %s", code, exitNotFound, stdout, stderr)
	}
	if !strings.Contains(stdout, "verdict:      violation") || !strings.Contains(stdout, "history:      "+out) {
		t.Fatalf("stdout %q", stdout)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), "incr(") {
		t.Fatalf("visualization %s: %v", out, err)
	}
}
