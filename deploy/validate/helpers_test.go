package validate

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the main module's directory (deploy/validate is two below).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "store", "main.go")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

// deployPath is a file under deploy/.
func deployPath(t *testing.T, rel string) string {
	return filepath.Join(repoRoot(t), "deploy", filepath.FromSlash(rel))
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries returns the directory of the built binaries: RANGEKV_BIN (set by
// `make deploy-check`), else ../../bin when it holds all three, else a
// fresh CGO_ENABLED=0 build into a temporary directory.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		names := []string{"rangekv", "rangekv-store", "rangekv-placement"}
		have := func(dir string) bool {
			for _, n := range names {
				if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
					return false
				}
			}
			return true
		}
		if d := os.Getenv("RANGEKV_BIN"); d != "" {
			if !have(d) {
				binErr = fmt.Errorf("RANGEKV_BIN=%s does not hold %v", d, names)
				return
			}
			binDir = d
			return
		}
		root, _ := filepath.Abs(filepath.Join("..", ".."))
		if d := filepath.Join(root, "bin"); have(d) {
			binDir = d
			return
		}
		d, err := os.MkdirTemp("", "rangekv-validate-bin")
		if err != nil {
			binErr = err
			return
		}
		for _, p := range [][2]string{{"rangekv", "./cmd/cli"}, {"rangekv-store", "./cmd/store"}, {"rangekv-placement", "./cmd/placement"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(d, p[0]), p[1])
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("go build %s: %v\n%s", p[1], err, out)
				return
			}
		}
		binDir = d
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

var (
	flagsMu    sync.Mutex
	flagsCache = map[string]map[string]bool{}
	flagRE     = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9.\-]*)`)
)

// flagsOf returns the long flags `BIN [SUBCOMMAND...] --help` lists (its own
// and the global ones), read from the real binary.
func flagsOf(t *testing.T, bin string, sub ...string) map[string]bool {
	t.Helper()
	key := strings.Join(append([]string{bin}, sub...), " ")
	flagsMu.Lock()
	defer flagsMu.Unlock()
	if f, ok := flagsCache[key]; ok {
		return f
	}
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(binaries(t), bin), append(sub, "--help")...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s --help: %v\n%s", key, err, out.String())
	}
	_, flagsText, ok := strings.Cut(out.String(), "\nFlags:\n")
	if !ok {
		t.Fatalf("%s --help has no Flags: section:\n%s", key, out.String())
	}
	f := map[string]bool{}
	for _, m := range flagRE.FindAllStringSubmatch(flagsText, -1) {
		f[m[1]] = true
	}
	if len(f) < 3 {
		t.Fatalf("%s --help: found only %v", key, keysOf(f))
	}
	flagsCache[key] = f
	return f
}

// envName is the RANGEKV_* variable of a flag (internal/cliconfig.EnvName).
func envName(flag string) string {
	return "RANGEKV_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(flag))
}

// checkEnv fails for a RANGEKV_* variable that is no flag of bin.
func checkEnv(t *testing.T, where, bin string, env map[string]string) {
	t.Helper()
	flags := flagsOf(t, bin)
	byEnv := map[string]bool{}
	for f := range flags {
		byEnv[envName(f)] = true
	}
	for k := range env {
		if strings.HasPrefix(k, "RANGEKV_") && !byEnv[k] {
			t.Errorf("%s: %s is no flag of %s (flags: %v)", where, k, bin, keysOf(flags))
		}
	}
}

// argFlags parses a command line's flags: --name=value and --name value
// (a value is any word that does not start with --).
func argFlags(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			continue
		}
		if n, v, eq := strings.Cut(name, "="); eq {
			out[n] = v
			continue
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			out[name] = args[i+1]
			i++
			continue
		}
		out[name] = ""
	}
	return out
}

// checkArgs fails for a flag in args that bin (with sub) does not have.
func checkArgs(t *testing.T, where, bin string, args []string, sub ...string) map[string]string {
	t.Helper()
	flags := flagsOf(t, bin, sub...)
	got := argFlags(args)
	for f := range got {
		if !flags[f] {
			t.Errorf("%s: --%s is no flag of %s (flags: %v)", where, f, strings.Join(append([]string{bin}, sub...), " "), keysOf(flags))
		}
	}
	return got
}

// parseMembers parses ID=ADDR,... .
func parseMembers(t *testing.T, where, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			t.Fatalf("%s: %q is not ID=ADDR", where, part)
		}
		out[id] = addr
	}
	return out
}

// port returns the port of HOST:PORT.
func port(t *testing.T, where, hostport string) string {
	t.Helper()
	i := strings.LastIndex(hostport, ":")
	if i < 0 || i == len(hostport)-1 {
		t.Fatalf("%s: %q is not HOST:PORT", where, hostport)
	}
	return hostport[i+1:]
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
