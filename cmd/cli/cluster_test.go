package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
)

// cli runs the rangekv root command in-process with args and returns its
// stdout, stderr and exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestCLIAgainstCluster runs the commands against an in-process 3-store
// cluster, as a user would type them.
func TestCLIAgainstCluster(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.WaitLeader(1)
	stores := strings.Join(c.Addrs, ",")
	steps := []struct {
		args   []string
		stdout string
		code   int
	}{
		{[]string{"put", "greeting", "hello"}, "OK\n", 0},
		{[]string{"get", "greeting"}, "hello\n", 0},
		{[]string{"-o", "json", "get", "greeting"}, `{"key":"greeting","found":true,"value":"hello"}` + "\n", 0},
		// A follower read is linearizable on whichever replica serves it.
		{[]string{"get", "greeting", "--consistency", "follower"}, "hello\n", 0},
		{[]string{"get", "missing"}, "", 1},
		{[]string{"-o", "json", "get", "missing"}, `{"key":"missing","found":false}` + "\n", 1},
		{[]string{"-o", "json", "put", "k2", "v2"}, `{"key":"k2","ok":true}` + "\n", 0},
		{[]string{"delete", "k2"}, "OK\n", 0},
		{[]string{"-o", "json", "delete", "k2"}, `{"key":"k2","ok":true}` + "\n", 0},
		{[]string{"get", "k2"}, "", 1},
		{[]string{"cas", "--absent", "lock", "a"}, "swapped: true\nvalue: a\n", 0},
		{[]string{"cas", "--absent", "lock", "b"}, "swapped: false\nvalue: a\n", 1},
		{[]string{"-o", "json", "cas", "lock", "a", "b"}, `{"key":"lock","swapped":true,"found":true,"value":"b"}` + "\n", 0},
		{[]string{"-o", "json", "cas", "lock", "a", "c"}, `{"key":"lock","swapped":false,"found":true,"value":"b"}` + "\n", 1},
		{[]string{"-o", "json", "cas", "nolock", "a", "c"}, `{"key":"nolock","swapped":false,"found":false}` + "\n", 1},
		{[]string{"incr", "n"}, "1\n", 0},
		{[]string{"incr", "n", "41"}, "42\n", 0},
		{[]string{"incr", "n", "-50"}, "-8\n", 0},
		{[]string{"-o", "json", "incr", "n", "+8"}, `{"key":"n","value":0}` + "\n", 0},
		{[]string{"incr", "n", "9223372036854775807"}, "9223372036854775807\n", 0},
		{[]string{"incr", "n"}, "", 4},        // overflow: the store refuses, key unchanged
		{[]string{"incr", "greeting"}, "", 4}, // not a number
		{[]string{"incr", "n", "x"}, "", 2},
		{[]string{"--hex", "put", "00ff", "6869"}, "OK\n", 0},
		{[]string{"--hex", "-o", "json", "get", "00ff"}, `{"key":"00ff","found":true,"value":"6869"}` + "\n", 0},
		{[]string{"--hex", "scan", "00", "01"}, "00ff\t6869\n", 0},
		{[]string{"scan", "g", "m"}, "greeting\thello\nlock\tb\n", 0},
		{[]string{"scan", "g", "--limit", "1"}, "greeting\thello\n", 0},
		{[]string{"-o", "json", "scan", "l", "o"}, `{"pairs":[{"key":"lock","value":"b"},{"key":"n","value":"9223372036854775807"}]}` + "\n", 0},
		{[]string{"-o", "json", "scan", "x", "y"}, `{"pairs":[]}` + "\n", 0},
		{[]string{"scan", "m", "a"}, "", 2}, // END before START: the store says InvalidArgument
		{[]string{"put", strings.Repeat("k", 5000), "v"}, "", 2},
		{[]string{"put", "", "v"}, "", 2},
	}
	for _, s := range steps {
		args := append([]string{"--stores", stores}, s.args...)
		stdout, stderr, code := cli(t, args...)
		if code != s.code || stdout != s.stdout {
			t.Errorf("rangekv %s:\n exit %d, want %d\n stdout %q\n want   %q\n stderr %q",
				strings.Join(s.args, " "), code, s.code, stdout, s.stdout, stderr)
		}
		if code != 0 && (!strings.HasPrefix(stderr, "rangekv: ") || strings.Count(stderr, "\n") != 1) {
			t.Errorf("rangekv %s: stderr is not one rangekv: line: %q", strings.Join(s.args, " "), stderr)
		}
	}

	// A stale read may lag (it is served by any replica), but it catches up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		stdout, stderr, code := cli(t, "--stores", stores, "get", "greeting", "--consistency", "stale")
		if code == 0 && stdout == "hello\n" {
			break
		}
		if code != 0 && code != 1 || time.Now().After(deadline) {
			t.Fatalf("rangekv get greeting --consistency stale: exit %d, stdout %q, stderr %q; want hello within 10s", code, stdout, stderr)
		}
	}

	// A scan larger than the store's max-scan-limit pages through.
	for i := range 30 {
		if _, stderr, code := cli(t, "--stores", stores, "put", "page/"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "v"); code != 0 {
			t.Fatalf("put: %s", stderr)
		}
	}
	stdout, stderr, code := cli(t, "--stores", stores, "-o", "json", "scan", "page/", "page0", "--limit", "20000")
	var doc struct {
		Pairs []struct{ Key, Value string }
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &doc) != nil || len(doc.Pairs) != 30 {
		t.Errorf("scan --limit 20000: exit %d, %d pairs, stderr %q", code, len(doc.Pairs), stderr)
	}

	// RANGEKV_STORES instead of --stores; a dead address first is skipped
	// (after the router's connect timeout).
	t.Setenv("RANGEKV_STORES", "127.0.0.1:1,"+stores)
	if stdout, stderr, code := cli(t, "get", "greeting"); code != 0 || stdout != "hello\n" {
		t.Errorf("get with RANGEKV_STORES: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
}

// TestBenchAgainstCluster runs each workload briefly and checks the JSON.
func TestBenchAgainstCluster(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.WaitLeader(1)
	stores := strings.Join(c.Addrs, ",")
	for _, w := range []struct{ workload, extra string }{
		{"write", "--ops 200"},
		{"read", "--ops 200"},
		{"mixed", "--ops 200 --dist zipf --read-ratio 0.8"},
		{"cas", "--ops 200"},
		{"incr", "--duration 300ms"},
	} {
		args := append([]string{"--stores", stores, "-o", "json", "bench", "--workload", w.workload,
			"--keys", "50", "--clients", "8", "--value-size", "32"}, strings.Fields(w.extra)...)
		stdout, stderr, code := cli(t, args...)
		if code != 0 {
			t.Fatalf("bench %s: exit %d stderr %q", w.workload, code, stderr)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("bench %s: %v: %q", w.workload, err, stdout)
		}
		for _, k := range []string{"workload", "clients", "ops", "errors", "duration_s", "ops_per_s", "p50_ms", "p95_ms", "p99_ms", "p999_ms"} {
			if _, ok := got[k]; !ok {
				t.Errorf("bench %s: JSON lacks %q: %s", w.workload, k, stdout)
			}
		}
		if len(got) != 10 {
			t.Errorf("bench %s: JSON has %d fields, want exactly 10: %s", w.workload, len(got), stdout)
		}
		if got["workload"] != w.workload || got["clients"] != float64(8) {
			t.Errorf("bench %s: %s", w.workload, stdout)
		}
		if strings.Contains(w.extra, "--ops") && got["ops"].(float64)+got["errors"].(float64) != 200 {
			t.Errorf("bench %s --ops 200: ops+errors = %v", w.workload, got["ops"].(float64)+got["errors"].(float64))
		}
		if got["ops"].(float64) == 0 || got["p50_ms"].(float64) <= 0 || got["p50_ms"].(float64) > got["p999_ms"].(float64) {
			t.Errorf("bench %s: implausible result %s", w.workload, stdout)
		}
	}
	// The counters the incr workload touched are integers.
	cl := c.Client()
	pairs, err := cl.Scan(c.Ctx(10*time.Second), []byte("bench/incr/"), []byte("bench/incr0"), 0)
	if err != nil || len(pairs) == 0 {
		t.Fatalf("incr keys: %d, %v", len(pairs), err)
	}
	if _, _, code := cli(t, "--stores", stores, "bench", "--ops", "5", "--duration", "1s"); code != 2 {
		t.Errorf("--ops with --duration: exit %d, want 2", code)
	}
	if _, _, code := cli(t, "--stores", stores, "bench", "--ranges", "4"); code != 2 {
		t.Errorf("--ranges 4: exit %d, want 2", code)
	}
}
