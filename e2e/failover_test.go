package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// putCLI writes key=value through the rangekv binary until it succeeds:
// exit 3 (outcome unknown) is retried (a put is idempotent), anything else
// but 0 fails the test; the deadline bounds the whole.
func putCLI(t *testing.T, stores, key, value string, deadline time.Time) (unknown int) {
	t.Helper()
	for {
		_, stderr, code := runCLI(t, "--stores", stores, "--timeout", "10s", "put", key, value)
		switch {
		case code == 0:
			return unknown
		case code == 3 && time.Now().Before(deadline):
			unknown++
			t.Logf("put %s: outcome unknown, retrying: %s", key, strings.TrimSpace(stderr))
		default:
			t.Fatalf("put %s: exit %d: %s", key, code, stderr)
		}
	}
}

// TestFailoverThroughCLI: three store processes with static bootstrap
// serve puts and gets through the rangekv binary; the leader of range 1
// (found through /debug/ranges) is killed with SIGKILL and writes go on.
func TestFailoverThroughCLI(t *testing.T) {
	c := startCluster(t, 3)
	c.waitWritable(30*time.Second, c.stores...)
	stores := c.storesFlag()

	want := map[string]string{}
	deadline := time.Now().Add(60 * time.Second)
	for i := range 10 {
		k, v := fmt.Sprintf("before/%02d", i), fmt.Sprintf("v%d", i)
		putCLI(t, stores, k, v, deadline)
		want[k] = v
	}
	if stdout, stderr, code := runCLI(t, "--stores", stores, "get", "before/03"); code != 0 || stdout != "v3\n" {
		t.Fatalf("get: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if stdout, _, code := runCLI(t, "--stores", stores, "-o", "json", "get", "nothing"); code != 1 ||
		stdout != `{"key":"nothing","found":false}`+"\n" {
		t.Fatalf("get of a missing key: exit %d stdout %q", code, stdout)
	}
	if stdout, _, code := runCLI(t, "--stores", stores, "incr", "counter", "-2"); code != 0 || stdout != "-2\n" {
		t.Fatalf("incr counter -2: exit %d stdout %q", code, stdout)
	}

	leader, term := c.waitLeader(0, 15*time.Second)
	t.Logf("killing the leader: store %d (pid %d, term %d)", leader.id, leader.pid(), term)
	leader.kill9()
	var survivors []*storeProc
	for _, p := range c.stores {
		if p != leader {
			survivors = append(survivors, p)
		}
	}

	start := time.Now()
	unknown := 0
	for i := range 10 {
		k, v := fmt.Sprintf("after/%02d", i), fmt.Sprintf("w%d", i)
		unknown += putCLI(t, stores, k, v, deadline)
		want[k] = v
		if i == 0 {
			t.Logf("first write after the kill took %s", time.Since(start).Round(time.Millisecond))
		}
	}
	c.checkRunning(survivors...)
	newLeader, newTerm := c.waitLeader(term, 15*time.Second)
	if newLeader == leader {
		t.Fatalf("the killed store %d is still reported leader", leader.id)
	}
	t.Logf("new leader: store %d, term %d; %d ambiguous writes retried", newLeader.id, newTerm, unknown)

	stdout, stderr, code := runCLI(t, "--stores", stores, "-o", "json", "scan", "after/", "before0")
	if code != 0 {
		t.Fatalf("scan: exit %d: %s", code, stderr)
	}
	var doc struct {
		Pairs []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"pairs"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("scan output: %v: %s", err, stdout)
	}
	got := map[string]string{}
	for _, p := range doc.Pairs {
		got[p.Key] = p.Value
	}
	if len(got) != len(want) {
		t.Errorf("scan found %d keys, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if stdout, _, code := runCLI(t, "--stores", stores, "incr", "counter", "5"); code != 0 || stdout != "3\n" {
		t.Errorf("incr after failover: exit %d stdout %q", code, stdout)
	}
}
