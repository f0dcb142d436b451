// The root command, the global flags (with RANGEKV_* environment through
// viper) and the client the commands share.

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/rangekv/rangekv/internal/cliconfig"
	"github.com/rangekv/rangekv/internal/tlsconfig"
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
	// cluster is where the client connects: placement (the normal mode)
	// or stores (static mode).
	cluster clusterAddrs
	output  string
	hex     bool
	timeout time.Duration
	// tls is the client TLS configuration (nil: plaintext).
	tls *tls.Config
}

// clusterAddrs names the cluster: the placement members, or (static mode)
// the stores. At most one of them is set.
type clusterAddrs struct {
	placement []string
	stores    []string
}

func (c clusterAddrs) empty() bool { return len(c.placement) == 0 && len(c.stores) == 0 }

// app is one invocation of the CLI.
type app struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	v              *viper.Viper
	g              globals
	// newClient opens a key-value client (router.New over placement, or
	// router.NewStatic over stores, unless a test substitutes it).
	newClient func(addrs clusterAddrs, opts router.Options) (kvClient, error)
	// newAdmin opens the placement admin client (router.New(...).Admin()
	// unless a test substitutes it).
	newAdmin func(placement []string, opts router.Options) (adminClient, error)
	// now is the clock of progress and age output (time.Now).
	now func() time.Time
	// pollInterval is how often waiting commands poll an operator.
	pollInterval time.Duration
	// shellDepth > 0 while running a line of the interactive shell.
	shellDepth int
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{
		stdout:       stdout,
		stderr:       stderr,
		stdin:        strings.NewReader(""),
		newClient:    openClient,
		newAdmin:     openAdmin,
		now:          time.Now,
		pollInterval: 250 * time.Millisecond,
	}
}

// openClient opens the router client of the mode addrs names.
func openClient(addrs clusterAddrs, opts router.Options) (kvClient, error) {
	if len(addrs.placement) > 0 {
		return router.New(addrs.placement, opts)
	}
	return router.NewStatic(addrs.stores, opts)
}

// openAdmin opens a placement client for admin calls.
func openAdmin(placement []string, opts router.Options) (adminClient, error) {
	c, err := router.New(placement, opts)
	if err != nil {
		return nil, err
	}
	adm, err := c.Admin()
	if err != nil {
		c.Close()
		return nil, err
	}
	return routerAdmin{Admin: adm, c: c}, nil
}

// routerAdmin is *router.Admin with the Close of its client.
type routerAdmin struct {
	*router.Admin
	c *router.Client
}

func (r routerAdmin) Close() error { return r.c.Close() }

// globalFlags are bound to RANGEKV_<NAME>.
var globalFlags = []string{"stores", "placement", "output", "hex", "timeout", "tls-cert", "tls-key", "tls-ca"}

const rootLong = `rangekv is the command-line client of rangekv, a sharded replicated
key-value store.

Give the placement driver's member addresses with --placement (or
RANGEKV_PLACEMENT): the client learns from placement which range holds a
key, which store leads it and where that store is, and sends each request
straight there. Any subset of the members works; the client follows the
placement leader.

Static mode: without a placement driver (a cluster bootstrapped with
--initial-stores, or placement down), give every store's gRPC address with
--stores (or RANGEKV_STORES) instead; the stores route each key and the
client follows leader hints. The key-value commands and bench work in both
modes; cluster, store, range and rebalance need --placement. Give one of
--placement and --stores, not both.

Cluster commands (need --placement) and the shell:
  cluster status              members, stores, ranges, unhealthy ranges
  store list                  every store with its replicas and leaders
  range list | show | split   the ranges, one in detail, split one
  range move | transfer-leader  move a replica or the leadership (waits)
  range snapshot --id ID      force a log truncation; laggards catch up by snapshot
  rebalance [--dry-run]       run the scheduler now (waits)
  shell                       an interactive prompt for all commands

Keys and values are UTF-8 strings as typed; with --hex they are given and
printed as hex (for binary data). Use -- before a positional argument that
starts with a dash (rangekv put -- -key value); negative numbers work as is
(rangekv incr counter -5).

Every global flag also reads from RANGEKV_<FLAG> (upper case, dashes as
underscores): RANGEKV_PLACEMENT, RANGEKV_STORES, RANGEKV_OUTPUT, RANGEKV_HEX,
RANGEKV_TIMEOUT, RANGEKV_TLS_CERT, RANGEKV_TLS_KEY, RANGEKV_TLS_CA. Flags win
over the environment.

TLS: against a cluster whose servers run with --tls-*, give the client
certificate with --tls-cert, --tls-key and --tls-ca (all three or none);
'rangekv certs' writes development ones.

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
		Example: `  rangekv playground                      # a local cluster in ./data
  export RANGEKV_PLACEMENT=127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403
  rangekv put greeting hello
  rangekv get greeting
  rangekv -o json scan --limit 10
  rangekv cluster status
  rangekv range split user/5
  rangekv --stores 127.0.0.1:7501,127.0.0.1:7502 get greeting   # static mode`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.resolveGlobals(cmd.Root())
		},
	}
	pf := root.PersistentFlags()
	pf.String("placement", "", "comma-separated gRPC addresses of the placement members, e.g. 127.0.0.1:7401,127.0.0.1:7402 (env RANGEKV_PLACEMENT)")
	pf.String("stores", "", "static mode, instead of --placement: comma-separated gRPC addresses of the stores (env RANGEKV_STORES)")
	pf.StringP("output", "o", formatTable, "output format: table or json (env RANGEKV_OUTPUT)")
	pf.Bool("hex", false, "keys and values are given and printed as hex (env RANGEKV_HEX)")
	pf.Duration("timeout", 10*time.Second, "deadline of each request, retries included (env RANGEKV_TIMEOUT)")
	pf.String("tls-cert", "", "client certificate (PEM) for a TLS cluster; with --tls-key and --tls-ca, all three or none (env RANGEKV_TLS_CERT)")
	pf.String("tls-key", "", "private key (PEM) of --tls-cert (env RANGEKV_TLS_KEY)")
	pf.String("tls-ca", "", "CA certificate (PEM) that signs the cluster's certificates (env RANGEKV_TLS_CA)")

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
	root.AddGroup(&cobra.Group{ID: groupKV, Title: "Key-value commands:"},
		&cobra.Group{ID: groupCluster, Title: "Cluster commands (need --placement):"},
		&cobra.Group{ID: groupTools, Title: "Tools:"})
	for _, c := range []*cobra.Command{a.putCmd(), a.getCmd(), a.deleteCmd(), a.casCmd(), a.incrCmd(), a.scanCmd()} {
		c.GroupID = groupKV
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.clusterCmd(), a.storeCmd(), a.rangeCmd(), a.rebalanceCmd()} {
		c.GroupID = groupCluster
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.benchCmd(), a.checkCmd(), a.playgroundCmd(), a.shellCmd(), a.healthCmd(), a.certsCmd()} {
		c.GroupID = groupTools
		root.AddCommand(c)
	}
	root.SetHelpCommandGroupID(groupTools)
	root.SetCompletionCommandGroupID(groupTools)
	return root
}

// Command groups of the help output.
const (
	groupKV      = "kv"
	groupCluster = "cluster"
	groupTools   = "tools"
)

// resolveGlobals reads the global flags (flag > environment > default) and
// checks them. It needs no store: every command runs it.
func (a *app) resolveGlobals(root *cobra.Command) error {
	cluster, err := a.resolveCluster(root)
	if err != nil {
		return err
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
	tlsCfg, err := a.resolveTLS()
	if err != nil {
		return err
	}
	a.g = globals{cluster: cluster, output: out, hex: hexMode, timeout: timeout, tls: tlsCfg}
	return nil
}

// resolveTLS loads the client certificate of --tls-cert, --tls-key and
// --tls-ca (nil without them; a partial set is bad usage).
func (a *app) resolveTLS() (*tls.Config, error) {
	files := tlsconfig.Files{
		Cert: strings.TrimSpace(a.v.GetString("tls-cert")),
		Key:  strings.TrimSpace(a.v.GetString("tls-key")),
		CA:   strings.TrimSpace(a.v.GetString("tls-ca")),
	}
	if !files.Enabled() {
		return nil, nil
	}
	src, err := tlsconfig.Load(files, tlsconfig.Options{Logger: slog.New(slog.NewTextHandler(a.stderr, nil))})
	if err != nil {
		return nil, usageErrorf("%v (--tls-cert, --tls-key, --tls-ca / RANGEKV_TLS_CERT, RANGEKV_TLS_KEY, RANGEKV_TLS_CA)", err)
	}
	return src.ClientConfig(), nil
}

// splitAddrs splits a comma-separated address list.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// resolveCluster picks the mode: --placement or --stores. A flag wins over
// the other's environment variable; both given at the same level is an
// error. An empty flag (--placement=) counts as not given.
func (a *app) resolveCluster(root *cobra.Command) (clusterAddrs, error) {
	pf := root.PersistentFlags()
	placement, stores := splitAddrs(a.v.GetString("placement")), splitAddrs(a.v.GetString("stores"))
	pFlag := pf.Changed("placement") && len(placement) > 0
	sFlag := pf.Changed("stores") && len(stores) > 0
	switch {
	case pFlag && sFlag:
		return clusterAddrs{}, usageErrorf("give --placement or --stores, not both")
	case pFlag:
		return clusterAddrs{placement: placement}, nil
	case sFlag:
		return clusterAddrs{stores: stores}, nil
	case len(placement) > 0 && len(stores) > 0:
		return clusterAddrs{}, usageErrorf("both %s and %s are set; unset one (or give --placement or --stores)", cliconfig.EnvName("placement"), cliconfig.EnvName("stores"))
	}
	return clusterAddrs{placement: placement, stores: stores}, nil
}

// printer returns the output printer of this invocation.
func (a *app) printer() *printer {
	return &printer{w: a.stdout, warn: a.stderr, json: a.g.output == formatJSON, hex: a.g.hex}
}

// client opens a key-value client over --placement or --stores.
func (a *app) client(opts router.Options) (kvClient, error) {
	if a.g.cluster.empty() {
		return nil, errNoCluster()
	}
	opts.TLS = a.g.tls
	c, err := a.newClient(a.g.cluster, opts)
	if err != nil {
		if len(a.g.cluster.placement) > 0 {
			return nil, usageErrorf("placement: %v", err)
		}
		return nil, usageErrorf("stores: %v", err)
	}
	return c, nil
}

func errNoCluster() error {
	return usageErrorf("placement: no cluster address; give --placement ADDR,ADDR,... (or RANGEKV_PLACEMENT), e.g. the addresses 'rangekv playground' prints (or, in static mode, --stores)")
}

// admin opens the placement admin client; cmd names the command for the
// error without --placement.
func (a *app) admin(cmd string) (adminClient, error) {
	if len(a.g.cluster.placement) == 0 {
		if len(a.g.cluster.stores) > 0 {
			return nil, usageErrorf("%s needs the placement driver: give --placement ADDR,ADDR,... (or RANGEKV_PLACEMENT) instead of --stores", cmd)
		}
		return nil, usageErrorf("%s needs the placement driver: give --placement ADDR,ADDR,... (or RANGEKV_PLACEMENT), e.g. the addresses 'rangekv playground' prints", cmd)
	}
	c, err := a.newAdmin(a.g.cluster.placement, router.Options{TLS: a.g.tls})
	if err != nil {
		return nil, usageErrorf("placement: %v", err)
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
	return runIO(ctx, args, strings.NewReader(""), stdout, stderr)
}

// runIO is run with an input (the shell reads it).
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := newApp(stdout, stderr)
	a.stdin = stdin
	return a.execute(ctx, args)
}

func (a *app) execute(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(protectNegativeArgs(args, arityOf(root)))
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetIn(a.stdin)
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
