// The environment, ports and log files of started processes.

package procs

import (
	"bufio"
	"net"
	"os"
	"strings"
)

// FilterEnv returns env ("NAME=value" entries) without the variables drop
// names. The result is never nil, even when empty: a nil Spec.Env would
// inherit everything instead.
func FilterEnv(env []string, drop func(name string) bool) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); !drop(name) {
			out = append(out, kv)
		}
	}
	return out
}

// CleanEnv is this process's environment without RANGEKV_* variables, so
// that the caller's settings cannot change what a store or placement
// member runs (both read RANGEKV_*).
func CleanEnv() []string {
	return FilterEnv(os.Environ(), func(name string) bool { return strings.HasPrefix(name, "RANGEKV_") })
}

// FreeLoopbackAddrs returns n distinct 127.0.0.1 addresses, all free when
// it returns; another process could take one before a child binds it.
func FreeLoopbackAddrs(n int) ([]string, error) {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	out := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// LastLines returns the last n non-blank lines of the file at path (fewer
// if it has fewer), without trailing space, for error messages and test
// logs.
func LastLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), " \t\r")
		if l == "" {
			continue
		}
		lines = append(lines, l)
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines, sc.Err()
}
