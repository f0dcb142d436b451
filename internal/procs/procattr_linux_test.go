// The parent-death signal: a process whose launcher dies without stopping
// it does not outlive it.

package procs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gone reports whether pid no longer runs: no such process, or a zombie
// waiting for a reaper this test does not control.
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

func TestParentDeathSignal(t *testing.T) {
	for _, tc := range []struct {
		name, deathSig, grandchild string
		wantLog                    string
	}{
		// The default, SIGKILL, ends even a process that ignores SIGTERM.
		{"default SIGKILL", "", "ignore-term", ""},
		// SIGTERM gives a store its clean shutdown.
		{"SIGTERM", "TERM", "serve", "got SIGTERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			childLog := t.TempDir() + "/grandchild.log"
			var grandArgs []string
			if tc.grandchild == "serve" {
				addrs, err := FreeLoopbackAddrs(1)
				if err != nil {
					t.Fatal(err)
				}
				grandArgs = addrs
			}
			spec := helper(t, "launch", append([]string{tc.grandchild}, grandArgs...)...)
			spec.Env = append(spec.Env, "PROCS_TEST_DEATHSIG="+tc.deathSig, "PROCS_TEST_CHILD_LOG="+childLog)
			launcher := start(t, spec)
			if err := launcher.Wait(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if launcher.Err() != nil {
				t.Fatalf("launcher: %v\n%s", launcher.Err(), logText(t, launcher))
			}
			pidText, ok := strings.CutPrefix(strings.TrimSpace(logText(t, launcher)), "child ")
			pid, err := strconv.Atoi(pidText)
			if !ok || err != nil {
				t.Fatalf("launcher log %q has no child pid", logText(t, launcher))
			}
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // if the test fails
			ctx := testCtx(t)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for !gone(pid) {
				select {
				case <-ctx.Done():
					t.Fatalf("grandchild %d still runs after its launcher exited", pid)
				case <-tick.C:
				}
			}
			if tc.wantLog != "" {
				if b, _ := os.ReadFile(childLog); !bytes.Contains(b, []byte(tc.wantLog)) {
					t.Errorf("grandchild log %q lacks %q", b, tc.wantLog)
				}
			}
		})
	}
}
