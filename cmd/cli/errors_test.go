package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/router"
)

func TestExitCodeFor(t *testing.T) {
	amb := &router.AmbiguousError{Op: "put", Reason: "rpc error: code = Unavailable desc = connection reset"}
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"usage", usageErrorf("bad"), 2},
		{"not found", &exitError{code: exitNotFound, err: errors.New("not found")}, 1},
		{"wrapped exit error", fmt.Errorf("x: %w", &exitError{code: exitNotFound, err: errors.New("y")}), 1},
		{"ambiguous", amb, 3},
		{"wrapped ambiguous", fmt.Errorf("put \"k\": %w", amb), 3},
		{"invalid argument", status.Error(codes.InvalidArgument, "key: must not be empty"), 2},
		{"wrapped invalid argument", fmt.Errorf("put: %w", status.Error(codes.InvalidArgument, "key too long")), 2},
		{"failed precondition", status.Error(codes.FailedPrecondition, "not a number"), 4},
		{"out of range", status.Error(codes.OutOfRange, "overflow"), 4},
		{"unavailable read", status.Error(codes.Unavailable, "down"), 4},
		{"internal", status.Error(codes.Internal, "boom"), 4},
		{"deadline", context.DeadlineExceeded, 4},
		{"wrapped deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), 4},
		{"plain", errors.New("something"), 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCodeFor(tc.err); got != tc.want {
				t.Errorf("exitCodeFor(%v) = %d, want %d", tc.err, got, tc.want)
			}
			if tc.err != nil {
				if got := exitCodeFor(classify(tc.err)); got != tc.want {
					t.Errorf("after classify: %d, want %d", got, tc.want)
				}
			}
		})
	}
}

func TestErrorLine(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("put %q: %w", "k", status.Error(codes.InvalidArgument, "key: 5000 bytes exceeds the limit")),
			`put "k": invalid argument: key: 5000 bytes exceeds the limit`},
		{status.Error(codes.FailedPrecondition, "incr: not a number"), "failed precondition: incr: not a number"},
		{errors.New("two\nlines\tand  spaces"), "two lines and spaces"},
		{fmt.Errorf("put: %w", &router.AmbiguousError{Op: "put", Reason: "rpc error: code = Unavailable desc = gone"}),
			"put: put: outcome unknown (it may or may not have been applied): rpc error: code = Unavailable desc = gone"},
	}
	for _, tc := range cases {
		if got := errorLine(tc.err); got != tc.want {
			t.Errorf("errorLine(%v)\n got %q\nwant %q", tc.err, got, tc.want)
		}
	}
}

// TestExitCodes runs commands against the in-memory client, with errors
// injected, and checks the exit code and the one-line message.
func TestExitCodes(t *testing.T) {
	amb := &router.AmbiguousError{Op: "put", Reason: "request ended before the write completed"}
	cases := []struct {
		name     string
		err      error // injected into the fake client
		env      map[string]string
		args     []string
		code     int
		inStderr string
	}{
		{name: "ok", args: []string{"put", "k", "v"}, code: 0},
		{name: "get missing", args: []string{"get", "missing"}, code: 1, inStderr: "not found"},
		{name: "cas compare failed", args: []string{"cas", "k", "x", "y"}, code: 1, inStderr: "compare failed"},
		{name: "no args", args: []string{"put", "k"}, code: 2, inStderr: "KEY and VALUE"},
		{name: "too many args", args: []string{"get", "a", "b"}, code: 2},
		{name: "cas absent with expected", args: []string{"cas", "--absent", "k", "x", "y"}, code: 2},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, inStderr: "unknown command"},
		{name: "unknown flag", args: []string{"get", "--nope", "k"}, code: 2, inStderr: "unknown flag"},
		{name: "bad output", args: []string{"-o", "yaml", "get", "k"}, code: 2, inStderr: "table or json"},
		{name: "bad hex", args: []string{"--hex", "get", "xyz"}, code: 2, inStderr: "KEY"},
		{name: "odd hex", args: []string{"--hex", "get", "abc"}, code: 2, inStderr: "KEY"},
		{name: "empty key", args: []string{"get", ""}, code: 2, inStderr: "KEY: must not be empty"},
		{name: "bad delta", args: []string{"incr", "k", "ten"}, code: 2, inStderr: `DELTA: "ten" must be a signed 64-bit decimal integer`},
		{name: "delta overflow", args: []string{"incr", "k", "99999999999999999999"}, code: 2, inStderr: "DELTA"},
		{name: "negative limit", args: []string{"scan", "--limit", "-1"}, code: 2, inStderr: "limit"},
		{name: "bad consistency", args: []string{"get", "k", "--consistency", "eventual"}, code: 2, inStderr: "consistency"},
		{name: "placement and stores flags", args: []string{"--stores", "127.0.0.1:7501", "get", "k"}, code: 2, inStderr: "not both"},
		{name: "stores env under the placement flag", env: map[string]string{"RANGEKV_STORES": "127.0.0.1:7501"}, args: []string{"get", "k"}, code: 0},
		{name: "cluster command in static mode", args: []string{"--placement=", "--stores", "127.0.0.1:7501", "cluster", "status"}, code: 2, inStderr: "instead of --stores"},
		{name: "bad timeout env", env: map[string]string{"RANGEKV_TIMEOUT": "soon"}, args: []string{"get", "k"}, code: 2, inStderr: "RANGEKV_TIMEOUT"},
		{name: "bad hex env", env: map[string]string{"RANGEKV_HEX": "maybe"}, args: []string{"get", "k"}, code: 2, inStderr: "RANGEKV_HEX"},
		{name: "ambiguous put", err: amb, args: []string{"put", "k", "v"}, code: 3, inStderr: "outcome unknown"},
		{name: "ambiguous incr", err: &router.AmbiguousError{Op: "incr", Reason: "timeout"}, args: []string{"incr", "k"}, code: 3},
		{name: "ambiguous cas", err: &router.AmbiguousError{Op: "cas", Reason: "timeout"}, args: []string{"cas", "k", "v", "w"}, code: 3},
		{name: "ambiguous delete", err: &router.AmbiguousError{Op: "delete", Reason: "timeout"}, args: []string{"delete", "k"}, code: 3},
		{name: "server invalid argument", err: status.Error(codes.InvalidArgument, "value: too big"), args: []string{"put", "k", "v"}, code: 2, inStderr: "invalid argument: value: too big"},
		{name: "failed precondition", err: status.Error(codes.FailedPrecondition, "not a counter"), args: []string{"incr", "k"}, code: 4},
		{name: "timeout", err: context.DeadlineExceeded, args: []string{"get", "k"}, code: 4, inStderr: "--timeout"},
		{name: "internal", err: status.Error(codes.Internal, "boom"), args: []string{"scan"}, code: 4, inStderr: "internal error: boom"},
		{name: "disk full", err: &router.DiskFullError{Op: "put", StoreID: 2, Dir: "/var/lib/rangekv/s2", FreeBytes: 4096, MinFreeBytes: 1 << 30},
			args: []string{"put", "k", "v"}, code: 4, inStderr: `put "k": disk full: store 2 refused the put, nothing was written: its data dir /var/lib/rangekv/s2 has 4096 bytes free`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fake := newFake("k", "v")
			fake.err = tc.err
			_, stderr, code := runFake(t, fake, tc.args...)
			if code != tc.code {
				t.Errorf("rangekv %s: exit %d, want %d (stderr %q)", strings.Join(tc.args, " "), code, tc.code, stderr)
			}
			if tc.code != 0 && !strings.HasPrefix(stderr, "rangekv: ") {
				t.Errorf("stderr %q does not start with \"rangekv: \"", stderr)
			}
			if !strings.Contains(stderr, tc.inStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.inStderr)
			}
		})
	}
}

func TestNoCluster(t *testing.T) {
	t.Setenv("RANGEKV_STORES", "")
	t.Setenv("RANGEKV_PLACEMENT", "")
	for _, args := range [][]string{{"get", "k"}, {"cluster", "status"}, {"bench", "--ops", "1"}} {
		var out, errb strings.Builder
		code := run(context.Background(), args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "--placement") {
			t.Errorf("rangekv %s: exit %d, stderr %q; want 2 and a hint about --placement", strings.Join(args, " "), code, errb.String())
		}
	}
	t.Setenv("RANGEKV_STORES", "127.0.0.1:1")
	t.Setenv("RANGEKV_PLACEMENT", "127.0.0.1:2")
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"get", "k"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unset one") {
		t.Errorf("both variables set: exit %d, stderr %q", code, errb.String())
	}
}

// TestEnvironment: RANGEKV_* set the global flags; flags win.
func TestEnvironment(t *testing.T) {
	t.Setenv("RANGEKV_OUTPUT", "json")
	t.Setenv("RANGEKV_HEX", "true")
	fake := newFake("k", "v")
	stdout, _, code := runFake(t, fake, "get", "6b")
	if code != 0 || stdout != `{"key":"6b","found":true,"value":"76"}`+"\n" {
		t.Errorf("env: exit %d stdout %q", code, stdout)
	}
	stdout, _, code = runFake(t, fake, "-o", "table", "--hex=false", "get", "k")
	if code != 0 || stdout != "v\n" {
		t.Errorf("flags over env: exit %d stdout %q", code, stdout)
	}
}

func TestHelpHasExamples(t *testing.T) {
	a := newApp(&strings.Builder{}, &strings.Builder{})
	root := a.rootCmd()
	for _, c := range root.Commands() {
		if c.Example == "" {
			t.Errorf("%s --help has no examples", c.Name())
		}
	}
	var out strings.Builder
	if code := run(context.Background(), []string{"playground", "--help"}, &out, &out); code != 0 ||
		!strings.Contains(out.String(), "--placement-count") {
		t.Errorf("playground --help: exit %d, does not mention the placement members:\n%s", code, out.String())
	}
	var walk func(c interface {
		Commands() []*cobra.Command
	})
	walk = func(c interface{ Commands() []*cobra.Command }) {
		for _, sub := range c.Commands() {
			if sub.Runnable() && sub.Example == "" && sub.Name() != "help" && sub.Name() != "completion" {
				t.Errorf("%s --help has no examples", sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(root)
}
