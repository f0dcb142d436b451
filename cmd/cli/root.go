// The root command, the global flags (with RANGEKV_* environment through
// viper) and the client the commands share.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/rangekv/rangekv/internal/cliconfig"
	"github.com/rangekv/rangekv/router"
)

// kvClient is what the commands need of router.Client; tests substitute an
// in-memory twin (fakeClient in kv_test.go).
type kvClient interface {
	Get(ctx context.Context, key []byte) ([]byte, bool, error)
	Put(ctx context.Context, key, value []byte) error
	Delete(ctx context.Context, key []byte) error
	CAS(ctx context.Context, key, expected []byte, expectAbsent bool, newValue []byte) (router.CASResult, error)
	Incr(ctx context.Context, key []byte, delta int64) (int64, error)
	Scan(ctx context.Context, start, end []byte, limit int) ([]router.KeyValue, error)
	Close() error
}

// globals are the resolved global flags.
type globals struct {
	stores  []string
	output  string
	hex     bool
	timeout time.Duration
}

// app is one invocation of the CLI.
type app struct {
	stdout, stderr io.Writer
	v              *viper.Viper
	g              globals
	// newClient opens a client over the given stores (router.NewStatic
	// unless a test substitutes it).
	newClient func(addrs []string, opts router.Options) (kvClient, error)
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{
		stdout: stdout,
		stderr: stderr,
		newClient: func(addrs []string, opts router.Options) (kvClient, error) {
			return router.NewStatic(addrs, opts)
		},
	}
}

// globalFlags are bound to RANGEKV_<NAME>.
var globalFlags = []string{"stores", "placement", "output", "hex", "timeout"}

const rootLong = `rangekv is the command-line client of rangekv, a sharded replicated
key-value store.

Until the placement driver exists, the client talks to the stores directly:
give every store's gRPC address with --stores (or RANGEKV_STORES); the stores
route each key to its range and the client follows leader hints.

Keys and values are UTF-8 strings as typed; with --hex they are given and
printed as hex (for binary data). Use -- before a positional argument that
starts with a dash (rangekv put -- -key value); negative numbers work as is
(rangekv incr counter -5).

Every global flag also reads from RANGEKV_<FLAG> (upper case, dashes as
underscores): RANGEKV_STORES, RANGEKV_OUTPUT, RANGEKV_HEX, RANGEKV_TIMEOUT.
Flags win over the environment.

Exit codes:
  0  success
  1  key not found (get), or compare failed (cas; its result is still printed)
  2  bad usage or invalid input (including input the store refuses)
  3  the outcome of a write is unknown (timed out or connection lost after
     sending): read the key to find out
  4  any other error
Errors go to stderr as one line.`

// rootCmd builds the command tree.
func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "rangekv",
		Short:         "Command-line client of the rangekv key-value store",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		Example: `  rangekv playground                      # a local 3-store cluster in ./data
  export RANGEKV_STORES=127.0.0.1:7501,127.0.0.1:7502,127.0.0.1:7503
  rangekv put greeting hello
  rangekv get greeting
  rangekv -o json scan --limit 10`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.resolveGlobals()
		},
	}
	pf := root.PersistentFlags()
	pf.String("stores", "", "comma-separated gRPC addresses of the stores, e.g. 127.0.0.1:7501,127.0.0.1:7502 (env RANGEKV_STORES)")
	pf.String("placement", "", "placement driver addresses (not available yet: use --stores) (env RANGEKV_PLACEMENT)")
	pf.StringP("output", "o", formatTable, "output format: table or json (env RANGEKV_OUTPUT)")
	pf.Bool("hex", false, "keys and values are given and printed as hex (env RANGEKV_HEX)")
	pf.Duration("timeout", 10*time.Second, "deadline of each request, retries included (env RANGEKV_TIMEOUT)")

	a.v = viper.New()
	a.v.SetEnvPrefix("RANGEKV")
	a.v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	for _, name := range globalFlags {
		// Both only fail on an empty name or a nil flag: programming errors.
		if err := a.v.BindPFlag(name, pf.Lookup(name)); err != nil {
			panic(err)
		}
		if err := a.v.BindEnv(name); err != nil {
			panic(err)
		}
	}

	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see '%s --help')", err, c.CommandPath())
	})
	root.AddCommand(a.putCmd(), a.getCmd(), a.deleteCmd(), a.casCmd(), a.incrCmd(), a.scanCmd(),
		a.benchCmd(), a.playgroundCmd())
	return root
}

// resolveGlobals reads the global flags (flag > environment > default) and
// checks them. It needs no store: every command runs it.
func (a *app) resolveGlobals() error {
	if p := strings.TrimSpace(a.v.GetString("placement")); p != "" {
		return usageErrorf("placement: the placement driver is not available yet; give the store addresses with --stores ADDR,ADDR,... (or RANGEKV_STORES)")
	}
	out := strings.ToLower(strings.TrimSpace(a.v.GetString("output")))
	if out != formatTable && out != formatJSON {
		return usageErrorf("output: %q is not table or json (-o / %s)", a.v.GetString("output"), cliconfig.EnvName("output"))
	}
	hexMode, err := strconv.ParseBool(strings.TrimSpace(a.v.GetString("hex")))
	if err != nil {
		return usageErrorf("hex: %q is not true or false (%s)", a.v.GetString("hex"), cliconfig.EnvName("hex"))
	}
	timeout, err := time.ParseDuration(strings.TrimSpace(a.v.GetString("timeout")))
	if err != nil || timeout <= 0 {
		return usageErrorf("timeout: %q is not a positive duration such as 10s or 500ms (--timeout / %s)", a.v.GetString("timeout"), cliconfig.EnvName("timeout"))
	}
	var stores []string
	for _, s := range strings.Split(a.v.GetString("stores"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			stores = append(stores, s)
		}
	}
	a.g = globals{stores: stores, output: out, hex: hexMode, timeout: timeout}
	return nil
}

// printer returns the output printer of this invocation.
func (a *app) printer() *printer {
	return &printer{w: a.stdout, warn: a.stderr, json: a.g.output == formatJSON, hex: a.g.hex}
}

// client opens a client over --stores.
func (a *app) client(opts router.Options) (kvClient, error) {
	if len(a.g.stores) == 0 {
		return nil, usageErrorf("stores: no store address; give --stores ADDR,ADDR,... (or RANGEKV_STORES), e.g. the addresses 'rangekv playground' prints")
	}
	c, err := a.newClient(a.g.stores, opts)
	if err != nil {
		return nil, usageErrorf("stores: %v", err)
	}
	return c, nil
}

// wrapRun adapts a command body: its errors get their exit codes.
func wrapRun(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return classify(fn(cmd, args)) }
}

// argsBetween checks the number of positional arguments, naming them.
func argsBetween(min, max int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usageErrorf("%s takes %s, got %d argument(s) (see '%s --help')", cmd.Name(), names, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// arityOf collects, over the whole command tree, which flags take a value.
func arityOf(root *cobra.Command) flagArity {
	ar := flagArity{long: map[string]bool{}, short: map[byte]bool{}}
	add := func(f *pflag.Flag) {
		takes := f.NoOptDefVal == ""
		ar.long[f.Name] = ar.long[f.Name] || takes
		if len(f.Shorthand) == 1 {
			ar.short[f.Shorthand[0]] = ar.short[f.Shorthand[0]] || takes
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.PersistentFlags().VisitAll(add)
		c.LocalFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return ar
}

// run executes the CLI with args (without the program name) and returns
// the exit code. Errors are printed to stderr as one line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := newApp(stdout, stderr)
	return a.execute(ctx, args)
}

func (a *app) execute(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(protectNegativeArgs(args, arityOf(root)))
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetIn(strings.NewReader(""))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	code := exitUsage
	if errors.As(err, &ee) {
		code = ee.code
	} else if !strings.Contains(err.Error(), "--help") {
		// An error cobra raised itself: unknown command, bad flag.
		err = fmt.Errorf("%w (see 'rangekv --help')", err)
	}
	fmt.Fprintln(a.stderr, "rangekv: "+errorLine(err))
	return code
}
