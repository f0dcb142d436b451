// The seams check: store and placement reach the clock, randomness, the
// filesystem and the network only through the seams of their Config
// (docs/architecture.md, "Seams for the simulation"), so that the
// deterministic simulation can replace every one of them. Every non-test
// Go file under seamRoots is parsed and each use (a call or a function
// value) of a function those seams replace fails the test, naming
// file:line and the seam to use instead.
//
// What it cannot see: methods (a *rate.Limiter's Wait reads package time
// itself; store waits through clock.WaitN instead), and other packages
// called from store and placement (rangeraft, internal/debughttp), which
// take their clock from the caller or are not part of the simulation.

package lintcheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// seamRoots are the directories (and everything below them) checked.
var seamRoots = []string{"store", "placement", "rangeraft/driver"}

// seamRule forbids names of one package: names nil means every name.
type seamRule struct {
	pkg   string
	names []string
	use   string
}

var seamRules = []seamRule{
	{pkg: "time", names: []string{"Now", "Since", "Until", "NewTicker", "NewTimer", "After", "AfterFunc", "Tick", "Sleep"},
		use: "Config.Clock (internal/clock; clock.Sleep, clock.WaitN)"},
	{pkg: "crypto/rand", use: "Config.Rand"},
	{pkg: "math/rand", use: "Config.Rand"},
	{pkg: "math/rand/v2", use: "Config.Rand"},
	{pkg: "os", names: []string{"Create", "CreateTemp", "Open", "OpenFile", "ReadFile", "WriteFile", "ReadDir",
		"Remove", "RemoveAll", "Rename", "Mkdir", "MkdirAll", "MkdirTemp", "Stat", "Lstat", "Truncate", "Link", "Symlink"},
		use: "Config.FS (pebble's vfs.FS)"},
	{pkg: "syscall", use: "Config.FS (vfs.FS.GetDiskUsage for statfs)"},
	{pkg: "golang.org/x/sys/unix", use: "Config.FS (vfs.FS.GetDiskUsage for statfs)"},
	{pkg: "net", names: []string{"Listen", "ListenTCP", "ListenPacket", "ListenUnix", "Dial", "DialTimeout", "DialTCP", "DialUnix"},
		use: "Config.Network (internal/grpcnet)"},
	{pkg: "google.golang.org/grpc", names: []string{"Dial", "DialContext", "NewClient"},
		use: "Config.Network (internal/grpcnet)"},
	{pkg: "context", names: []string{"WithTimeout", "WithDeadline", "WithTimeoutCause", "WithDeadlineCause"},
		use: "clock.WithTimeout on Config.Clock (a deadline on package time never fires in the simulation)"},
}

// seamAllowed are the uses the check lets through, keyed "file: pkg.Name",
// each with the reason it is unavoidable.
var seamAllowed = map[string]string{
	// The production Rand: withSeams puts it where Config.Rand is nil.
	"store/config.go: crypto/rand.Reader":     "Config.Rand's production default",
	"placement/config.go: crypto/rand.Reader": "Config.Rand's production default",
}

// seamOffenses parses the non-test Go files under roots in fsys and
// returns one line per forbidden use, in path order, with the allowed
// ones left out.
func seamOffenses(fsys fs.FS, roots []string, allowed map[string]string) ([]string, error) {
	var out []string
	for _, root := range roots {
		err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != root && skipDir(d.Name()) {
					return fs.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			src, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			found, err := fileSeamOffenses(p, src, allowed)
			out = append(out, found...)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func fileSeamOffenses(p string, src []byte, allowed map[string]string) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, p, src, 0)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	rules := map[string]seamRule{}
	for _, r := range seamRules {
		rules[r.pkg] = r
	}
	// local names of the imports the rules are about
	local := map[string]seamRule{}
	var out []string
	for _, imp := range f.Imports {
		ip, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			return nil, err
		}
		r, ok := rules[ip]
		if !ok {
			continue
		}
		name := path.Base(ip)
		if ip == "math/rand/v2" {
			name = "rand"
		}
		if imp.Name != nil {
			name = imp.Name.Name
		}
		switch name {
		case "_":
			continue
		case ".":
			out = append(out, fmt.Sprintf("%s:%d: dot import of %q: import it by name (the seams check reads pkg.Name)",
				p, fset.Position(imp.Pos()).Line, ip))
			continue
		}
		local[name] = r
	}
	if len(local) == 0 {
		return out, nil
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		// Obj is set for a local declaration that shadows the import.
		if !ok || id.Obj != nil {
			return true
		}
		r, ok := local[id.Name]
		if !ok || (r.names != nil && !slices.Contains(r.names, sel.Sel.Name)) {
			return true
		}
		if _, ok := allowed[fmt.Sprintf("%s: %s.%s", p, r.pkg, sel.Sel.Name)]; ok {
			return true
		}
		out = append(out, fmt.Sprintf("%s:%d: %s.%s: go through %s",
			p, fset.Position(sel.Pos()).Line, r.pkg, sel.Sel.Name, r.use))
		return true
	})
	return out, nil
}

func TestStoreAndPlacementUseTheSeams(t *testing.T) {
	root := repoRoot(t)
	offenses, err := seamOffenses(os.DirFS(root), seamRoots, seamAllowed)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offenses {
		t.Error(o)
	}
	// An allowlist entry nothing needs any more goes.
	for key := range seamAllowed {
		file, use, _ := strings.Cut(key, ": ")
		src, err := os.ReadFile(root + "/" + file)
		if err != nil {
			t.Errorf("allowlist entry %q: %v", key, err)
			continue
		}
		found, err := fileSeamOffenses(file, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(found, func(o string) bool { return strings.Contains(o, " "+use+": ") }) {
			t.Errorf("allowlist entry %q: %s no longer uses %s; remove the entry", key, file, use)
		}
	}
}

// TestSeamsCheckCatchesOffenses proves the check can fail, and that it
// lets through what it must: allowed uses, test files, other packages'
// functions of the same name, shadowing locals and permitted names.
func TestSeamsCheckCatchesOffenses(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	fsys := fstest.MapFS{
		"store/a.go": file(`package store

import (
	"time"
	crand "crypto/rand"
	"math/rand/v2"
	"os"
	"syscall"
	"google.golang.org/grpc"
)

var now = time.Now

func f() {
	_ = time.Since(time.Time{})
	t := time.NewTicker(time.Second)
	_ = t
	_, _ = crand.Read(nil)
	_ = rand.N(3)
	_, _ = os.ReadFile("x")
	var st syscall.Statfs_t
	_ = st
	_, _ = grpc.NewClient("x")
	_ = time.Duration(1).Seconds()
	_ = os.Getpid()
}
`),
		"store/ok.go": file(`package store

import (
	crand "crypto/rand"
	"time"
)

var R = crand.Reader

func g(time fakeTime) { time.Now() }
`),
		"store/a_test.go":            file("package store\n\nimport \"time\"\n\nvar x = time.Now()\n"),
		"placement/schedule/sub.go":  file("package schedule\n\nimport \"time\"\n\nfunc h() { time.Sleep(1) }\n"),
		"rangeraft/driver/d.go":      file("package driver\n\nfunc d() {}\n"),
		"placement/testdata/skip.go": file("package skip\n\nimport \"time\"\n\nvar x = time.Now()\n"),
		"router/elsewhere.go":        file("package router\n\nimport \"time\"\n\nvar x = time.Now()\n"),
	}
	got, err := seamOffenses(fsys, seamRoots, map[string]string{"store/ok.go: crypto/rand.Reader": "test"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"store/a.go:12: time.Now: go through Config.Clock",
		"store/a.go:15: time.Since: go through Config.Clock",
		"store/a.go:16: time.NewTicker: go through Config.Clock",
		"store/a.go:18: crypto/rand.Read: go through Config.Rand",
		"store/a.go:19: math/rand/v2.N: go through Config.Rand",
		"store/a.go:20: os.ReadFile: go through Config.FS",
		"store/a.go:21: syscall.Statfs_t: go through Config.FS",
		"store/a.go:23: google.golang.org/grpc.NewClient: go through Config.Network",
		"placement/schedule/sub.go:5: time.Sleep: go through Config.Clock",
	}
	wantOffenses(t, got, want)
}
