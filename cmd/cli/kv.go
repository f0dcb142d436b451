// The key-value commands: put, get, delete, cas, incr, scan.

package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/router"
)

// withClient opens a client over --placement (or --stores) and runs fn
// under --timeout.
func (a *app) withClient(ctx context.Context, opts router.Options, fn func(ctx context.Context, c kvClient) error) error {
	c, err := a.client(opts)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, a.g.timeout)
	defer cancel()
	return fn(ctx, c)
}

// opError names the operation and key in a failed request's error, keeping
// the error's type (and so its exit code).
func (a *app) opError(op string, key []byte, err error) error {
	var amb *router.AmbiguousError
	switch {
	case errors.As(err, &amb):
		return &wrappedError{
			msg: fmt.Sprintf("%s %s: outcome unknown, the write may or may not have been applied (read the key to find out): %s", op, quoteKey(key, a.g.hex), amb.Reason),
			err: err,
		}
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s: not completed within --timeout %s (%s): %w", op, quoteKey(key, a.g.hex), a.g.timeout, a.upHint(), err)
	}
	return fmt.Errorf("%s %s: %w", op, quoteKey(key, a.g.hex), err)
}

// upHint says what to check when requests time out.
func (a *app) upHint() string {
	if len(a.g.cluster.placement) > 0 {
		return "are the --placement members and the stores up?"
	}
	return "are the --stores up?"
}

// consistencies maps --consistency values to the protocol's.
var consistencies = map[string]rangekvpb.ReadConsistency{
	"linearizable": rangekvpb.ReadConsistency_LINEARIZABLE,
	"lease":        rangekvpb.ReadConsistency_LEASE,
	"follower":     rangekvpb.ReadConsistency_FOLLOWER,
	"stale":        rangekvpb.ReadConsistency_STALE,
}

func parseConsistency(s string) (rangekvpb.ReadConsistency, error) {
	c, ok := consistencies[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return 0, usageErrorf("consistency: %q is not linearizable, lease, follower or stale", s)
	}
	return c, nil
}

const consistencyUsage = "read consistency: linearizable (ReadIndex on the leader), lease (the leader's lease, else ReadIndex), follower (any replica, linearizable: waits for the leader's read index), or stale (any replica; may lag)"

func (a *app) putCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Write KEY = VALUE",
		Long: `Write KEY = VALUE, replacing any previous value. Prints OK, or with -o json
{"key": K, "ok": true}.

If the request times out or the connection breaks after it was sent, the
write may or may not have been applied: rangekv exits 3 and you should read
the key to find out.`,
		Example: `  rangekv put greeting hello
  rangekv put config/limit 42
  rangekv --hex put 00ff 68656c6c6f
  rangekv -o json put greeting hello`,
		Args: argsBetween(2, 2, "KEY and VALUE"),
		RunE: wrapRun(func(cmd *cobra.Command, args []string) error {
			return a.runPut(cmd.Context(), args[0], args[1])
		}),
	}
}

func (a *app) runPut(ctx context.Context, keyArg, valueArg string) error {
	key, err := parseKey("KEY", keyArg, a.g.hex)
	if err != nil {
		return err
	}
	value, err := parseBytes("VALUE", valueArg, a.g.hex)
	if err != nil {
		return err
	}
	err = a.withClient(ctx, router.Options{}, func(ctx context.Context, c kvClient) error {
		return c.Put(ctx, key, value)
	})
	if err != nil {
		return a.opError("put", key, err)
	}
	return a.printer().printOK(key)
}

func (a *app) getCmd() *cobra.Command {
	var consistency string
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Read the value of KEY",
		Long: `Read the value of KEY and print it. A missing key prints "not found" on
stderr and exits 1; with -o json it prints {"key": K, "found": false} (and
{"key": K, "found": true, "value": V} for a key that exists).`,
		Example: `  rangekv get greeting
  rangekv -o json get greeting
  rangekv get greeting --consistency stale
  rangekv get greeting || echo "no greeting"`,
		Args: argsBetween(1, 1, "KEY"),
		RunE: wrapRun(func(cmd *cobra.Command, args []string) error {
			return a.runGet(cmd.Context(), args[0], consistency)
		}),
	}
	cmd.Flags().StringVar(&consistency, "consistency", "linearizable", consistencyUsage)
	return cmd
}

func (a *app) runGet(ctx context.Context, keyArg, consistency string) error {
	key, err := parseKey("KEY", keyArg, a.g.hex)
	if err != nil {
		return err
	}
	cons, err := parseConsistency(consistency)
	if err != nil {
		return err
	}
	var value []byte
	var found bool
	err = a.withClient(ctx, router.Options{Consistency: cons}, func(ctx context.Context, c kvClient) error {
		var err error
		value, found, err = c.Get(ctx, key)
		return err
	})
	if err != nil {
		return a.opError("get", key, err)
	}
	if err := a.printer().printGet(key, value, found); err != nil {
		return err
	}
	if !found {
		return &exitError{code: exitNotFound, err: fmt.Errorf("not found: %s", quoteKey(key, a.g.hex))}
	}
	return nil
}

func (a *app) deleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete KEY",
		Aliases: []string{"del", "rm"},
		Short:   "Delete KEY",
		Long: `Delete KEY. Deleting a key that does not exist succeeds. Prints OK, or with
-o json {"key": K, "ok": true}.`,
		Example: `  rangekv delete greeting
  rangekv --hex delete 00ff`,
		Args: argsBetween(1, 1, "KEY"),
		RunE: wrapRun(func(cmd *cobra.Command, args []string) error {
			return a.runDelete(cmd.Context(), args[0])
		}),
	}
}

func (a *app) runDelete(ctx context.Context, keyArg string) error {
	key, err := parseKey("KEY", keyArg, a.g.hex)
	if err != nil {
		return err
	}
	err = a.withClient(ctx, router.Options{}, func(ctx context.Context, c kvClient) error {
		return c.Delete(ctx, key)
	})
	if err != nil {
		return a.opError("delete", key, err)
	}
	return a.printer().printOK(key)
}

func (a *app) casCmd() *cobra.Command {
	var absent bool
	cmd := &cobra.Command{
		Use:   "cas KEY EXPECTED NEW | cas --absent KEY NEW",
		Short: "Compare-and-swap: set KEY to NEW if it holds EXPECTED (or, with --absent, if it does not exist)",
		Long: `Atomically set KEY to NEW if its current value is EXPECTED, or, with
--absent, if KEY does not exist. Prints whether it swapped and the key's
value after the operation:

  swapped: true
  value: NEW

With -o json: {"key": K, "swapped": B, "found": F, "value": CURRENT}, where
value is absent when the key does not exist. When the compare fails the
result is still printed and rangekv exits 1.`,
		Example: `  rangekv cas --absent lock owner-1       # take the lock if free
  rangekv cas lock owner-1 owner-2        # hand it over
  rangekv -o json cas counter 41 42`,
		Args: func(cmd *cobra.Command, args []string) error {
			if absent {
				return argsBetween(2, 2, "KEY and NEW with --absent")(cmd, args)
			}
			return argsBetween(3, 3, "KEY, EXPECTED and NEW (or --absent KEY NEW)")(cmd, args)
		},
		RunE: wrapRun(func(cmd *cobra.Command, args []string) error {
			if absent {
				return a.runCAS(cmd.Context(), args[0], "", true, args[1])
			}
			return a.runCAS(cmd.Context(), args[0], args[1], false, args[2])
		}),
	}
	cmd.Flags().BoolVar(&absent, "absent", false, "swap only if KEY does not exist (instead of EXPECTED)")
	return cmd
}

func (a *app) runCAS(ctx context.Context, keyArg, expectedArg string, absent bool, newArg string) error {
	key, err := parseKey("KEY", keyArg, a.g.hex)
	if err != nil {
		return err
	}
	var expected []byte
	if !absent {
		if expected, err = parseBytes("EXPECTED", expectedArg, a.g.hex); err != nil {
			return err
		}
	}
	newValue, err := parseBytes("NEW", newArg, a.g.hex)
	if err != nil {
		return err
	}
	var res router.CASResult
	err = a.withClient(ctx, router.Options{}, func(ctx context.Context, c kvClient) error {
		var err error
		res, err = c.CAS(ctx, key, expected, absent, newValue)
		return err
	})
	if err != nil {
		return a.opError("cas", key, err)
	}
	if err := a.printer().printCAS(key, res); err != nil {
		return err
	}
	if !res.Swapped {
		return &exitError{code: exitNotFound, err: fmt.Errorf("cas %s: compare failed, not swapped", quoteKey(key, a.g.hex))}
	}
	return nil
}

func (a *app) incrCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "incr KEY [DELTA]",
		Short: "Atomically add DELTA (default 1) to the counter at KEY",
		Long: `Atomically add DELTA (a signed 64-bit decimal integer, default 1) to the
counter at KEY and print the new value. A missing key counts as 0; a key
holding something other than a signed 64-bit decimal integer, or a sum that
would overflow, is an error and leaves the key unchanged. With -o json:
{"key": K, "value": N}.

If the request times out after it was sent, rangekv exits 3: the increment
may or may not have been applied, and it is never retried.`,
		Example: `  rangekv incr visits
  rangekv incr visits 10
  rangekv incr visits -3
  rangekv -o json incr visits`,
		Args: argsBetween(1, 2, "KEY and an optional DELTA"),
		RunE: wrapRun(func(cmd *cobra.Command, args []string) error {
			delta := "1"
			if len(args) == 2 {
				delta = args[1]
			}
			return a.runIncr(cmd.Context(), args[0], delta)
		}),
	}
}

// parseDelta parses incr's DELTA argument.
func parseDelta(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, usageErrorf("DELTA: %q must be a signed 64-bit decimal integer (from %d to %d, e.g. 5 or -3)", s, int64(-1<<63), int64(1<<63-1))
	}
	return n, nil
}

func (a *app) runIncr(ctx context.Context, keyArg, deltaArg string) error {
	key, err := parseKey("KEY", keyArg, a.g.hex)
	if err != nil {
		return err
	}
	delta, err := parseDelta(deltaArg)
	if err != nil {
		return err
	}
	var n int64
	err = a.withClient(ctx, router.Options{}, func(ctx context.Context, c kvClient) error {
		var err error
		n, err = c.Incr(ctx, key, delta)
		return err
	})
	if err != nil {
		return a.opError("incr", key, err)
	}
	return a.printer().printIncr(key, n)
}

func (a *app) scanCmd() *cobra.Command {
	var limit int
	var consistency string
	cmd := &cobra.Command{
		Use:   "scan [START [END]]",
		Short: "List pairs with START <= key < END in key order",
		Long: `List the pairs with START <= key < END in key order, across ranges. No START
starts at the first key; no END (or an empty one) goes to the last key.
Prints KEY<TAB>VALUE lines, or with -o json {"pairs": [{"key": K, "value": V}, ...]}.

--limit 0 (the default) lists every pair; the client pages through the
stores so a large scan does not become one huge request.`,
		Example: `  rangekv scan                        # everything
  rangekv scan user/ user0            # keys with the prefix "user/"
  rangekv scan a --limit 10           # the first 10 keys from "a"
  rangekv --hex scan 00 ff
  rangekv -o json scan`,
		Args: argsBetween(0, 2, "an optional START and END"),
		RunE: wrapRun(func(cmd *cobra.Command, args []string) error {
			var start, end string
			if len(args) > 0 {
				start = args[0]
			}
			if len(args) > 1 {
				end = args[1]
			}
			return a.runScan(cmd.Context(), start, end, limit, consistency)
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most N pairs (0: all)")
	cmd.Flags().StringVar(&consistency, "consistency", "linearizable", consistencyUsage)
	return cmd
}

func (a *app) runScan(ctx context.Context, startArg, endArg string, limit int, consistency string) error {
	start, err := parseBytes("START", startArg, a.g.hex)
	if err != nil {
		return err
	}
	end, err := parseBytes("END", endArg, a.g.hex)
	if err != nil {
		return err
	}
	if limit < 0 {
		return usageErrorf("limit: %d is negative (0 lists every pair)", limit)
	}
	cons, err := parseConsistency(consistency)
	if err != nil {
		return err
	}
	var pairs []router.KeyValue
	err = a.withClient(ctx, router.Options{Consistency: cons}, func(ctx context.Context, c kvClient) error {
		var err error
		pairs, err = scanPaged(ctx, c, start, end, limit, scanPageSize)
		return err
	})
	if err != nil {
		return a.opError("scan from", start, err)
	}
	return a.printer().printScan(pairs)
}

// scanPageSize is the most pairs asked of router.Client.Scan at once: the
// router passes its limit to the store unchanged, and a store refuses a
// limit above its limits.max-scan-limit (default 10000) with
// InvalidArgument, so the CLI pages itself.
const scanPageSize = 1000

// scanPaged returns up to limit (0: all) pairs of [start, end), asking
// for at most page pairs per call.
func scanPaged(ctx context.Context, c kvClient, start, end []byte, limit, page int) ([]router.KeyValue, error) {
	var out []router.KeyValue
	cur := start
	for {
		want := page
		if limit > 0 && limit-len(out) < want {
			want = limit - len(out)
		}
		got, err := c.Scan(ctx, cur, end, want)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		if len(got) < want || (limit > 0 && len(out) >= limit) {
			return out, nil
		}
		// The next key after the last one returned.
		last := got[len(got)-1].Key
		cur = append(append(make([]byte, 0, len(last)+1), last...), 0)
		if len(end) > 0 && string(cur) >= string(end) {
			return out, nil
		}
	}
}
