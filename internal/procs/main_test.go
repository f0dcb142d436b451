// The helper processes of the tests: the test binary itself, re-executed
// with PROCS_TEST_HELPER naming what to do.

package procs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv selects a helper mode in the re-executed test binary.
const helperEnv = "PROCS_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helper is a Spec that runs the test binary in mode with args.
func helper(t *testing.T, mode string, args ...string) Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Spec{
		Name:    "helper " + mode,
		Bin:     exe,
		Args:    args,
		Env:     append(os.Environ(), helperEnv+"="+mode),
		LogPath: t.TempDir() + "/" + mode + ".log",
	}
}

// runHelper is the helper process's main; it returns the exit code.
//
//	serve ADDR          serve /readyz (200) on ADDR; exit 0 on SIGTERM
//	unready ADDR        serve /readyz with 503 until killed
//	ignore-term         print "ignoring SIGTERM", then ignore it until killed
//	fail                print a fatal line to stderr, exit 3
//	env                 print the environment, exit 0
//	launch MODE ARGS..  start the helper MODE (its own child) with
//	                    ParentDeathSignal from PROCS_TEST_DEATHSIG, print
//	                    "child PID" once it handles SIGTERM, then exit 0
//	                    without stopping it
func runHelper(mode string, args []string) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	switch mode {
	case "serve", "unready":
		code := http.StatusOK
		if mode == "unready" {
			code = http.StatusServiceUnavailable
		}
		srv := &http.Server{Addr: args[0], Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
		})}
		go srv.ListenAndServe()
		fmt.Println("handling SIGTERM")
		<-sigs
		fmt.Println("got SIGTERM")
		return 0
	case "ignore-term":
		fmt.Println("ignoring SIGTERM; handling SIGTERM")
		for range sigs {
			fmt.Println("SIGTERM ignored")
		}
		return 0
	case "fail":
		fmt.Fprintln(os.Stderr, "fatal: the helper was told to fail")
		return 3
	case "env":
		fmt.Println(strings.Join(os.Environ(), "\n"))
		return 0
	case "launch":
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		var sig syscall.Signal
		if os.Getenv("PROCS_TEST_DEATHSIG") == "TERM" {
			sig = syscall.SIGTERM
		}
		p, err := Start(Spec{
			Name:              "grandchild",
			Bin:               exe,
			Args:              args[1:],
			Env:               append(os.Environ(), helperEnv+"="+args[0]),
			LogPath:           os.Getenv("PROCS_TEST_CHILD_LOG"),
			ParentDeathSignal: sig,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// The launcher dies only once the grandchild handles SIGTERM, or
		// the default action would end it before its log says so.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.WaitReady(ctx, func(context.Context) error {
			if b, _ := os.ReadFile(p.LogPath()); !strings.Contains(string(b), "handling SIGTERM") {
				return errors.New("not yet")
			}
			return nil
		}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("child %d\n", p.Pid())
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}
