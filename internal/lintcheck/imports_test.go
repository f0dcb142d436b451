// The import-direction check: DESIGN.md's arrows as a table of rules,
// enforced over the package graph that `go list -deps` reports for the
// whole module. Only the packages' own (non-test) imports count: tests may
// link whatever they need.

package lintcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/rangekv/rangekv"

// importRule constrains the dependencies of a set of packages.
//
// Patterns name packages relative to the module ("router", "proto/...")
// unless their first element contains a dot, in which case they are full
// import paths ("github.com/cockroachdb/pebble/..."). A trailing "/..."
// matches the package and everything below it. In directOnly, "std" matches
// any standard-library package.
type importRule struct {
	// name says which arrow of DESIGN.md this is.
	name string
	// pkgs are the packages the rule constrains; except exempts some.
	pkgs, except []string
	// onlyModule: every package of this module that pkgs depend on,
	// directly or not, must match one of these (or pkgs themselves).
	onlyModule []string
	// directOnly: every direct import of pkgs must match one of these.
	directOnly []string
	// never: no dependency of pkgs, direct or not, may match one of these.
	never []string
	// neverDirect: no direct import of pkgs may match one of these.
	neverDirect []string
	// mustImport: every package of pkgs imports each of these directly
	// (exact package paths, no patterns).
	mustImport []string
	// required: fail when no package matches pkgs, so that a rename cannot
	// turn a rule into one that silently checks nothing. Rules about
	// packages that do not exist yet (placement) are not required.
	required bool
}

// designRules are DESIGN.md's "Imports point one way" section.
var designRules = []importRule{
	{
		name:       "proto imports nothing of this module",
		pkgs:       []string{"proto/..."},
		onlyModule: []string{"proto/..."},
		required:   true,
	},
	{
		name:       "router imports only proto (a client must not link the server)",
		pkgs:       []string{"router/..."},
		onlyModule: []string{"proto/...", "router/..."},
		required:   true,
	},
	{
		name:     "rangeraft knows nothing of stores, placement, KV or Pebble",
		pkgs:     []string{"rangeraft"},
		never:    []string{"store/...", "router/...", "placement/...", "internal/harness/...", "github.com/cockroachdb/pebble/..."},
		required: true,
	},
	{
		name:     "rangeraft's subpackages (logstore serves store and placement) import neither; Pebble is allowed",
		pkgs:     []string{"rangeraft/..."},
		except:   []string{"rangeraft"},
		never:    []string{"store/...", "router/...", "placement/...", "internal/harness/..."},
		required: true,
	},
	{
		name:     "store never imports placement (they speak gRPC)",
		pkgs:     []string{"store/..."},
		never:    []string{"placement/..."},
		required: true,
	},
	{
		name:  "placement never imports store (they speak gRPC)",
		pkgs:  []string{"placement/..."},
		never: []string{"store/..."},
	},
	{
		name:       "rangeraft/driver, shared by store and placement, imports only rangeraft, its log store, internal/keys and proto of this module",
		pkgs:       []string{"rangeraft/driver"},
		onlyModule: []string{"rangeraft", "rangeraft/logstore", "internal/keys", "proto/..."},
		required:   true,
	},
	{
		name:       "placement drives its Raft group through rangeraft/driver",
		pkgs:       []string{"placement"},
		mustImport: []string{"rangeraft/driver"},
		required:   true,
	},
	{
		name:       "store runs its worker passes through rangeraft/driver",
		pkgs:       []string{"store"},
		mustImport: []string{"rangeraft/driver"},
		required:   true,
	},
	{
		name:        "placement reaches rangeraft/logstore only through rangeraft/driver",
		pkgs:        []string{"placement/..."},
		neverDirect: []string{"rangeraft/logstore"},
	},
	{
		name:       "placement/schedule is pure: it imports only proto and the standard library",
		pkgs:       []string{"placement/schedule/..."},
		directOnly: []string{"std", "proto/...", "placement/schedule/..."},
		onlyModule: []string{"proto/...", "placement/schedule/..."},
	},
	{
		name:        "placement/schedule is imported by placement only",
		pkgs:        []string{"..."},
		except:      []string{"placement/..."},
		neverDirect: []string{"placement/schedule/..."},
	},
	{
		name:       "internal/procs is a leaf launcher: it imports nothing of this module (no store, placement, router)",
		pkgs:       []string{"internal/procs/..."},
		onlyModule: []string{"internal/procs/..."},
		required:   true,
	},
	{
		// Go's internal rule lets every package of the module import
		// internal/harness; this rule is what keeps production code off
		// it. Only non-test imports are in the graph, so _test.go files
		// (and e2e, which is all tests) may import harnesses freely. One
		// direct import is enough to report: every chain into a harness
		// starts with one.
		name:        "test harnesses (internal/harness/...) are imported only by tests and other harnesses",
		pkgs:        []string{"..."},
		except:      []string{"internal/harness/..."},
		neverDirect: []string{"internal/harness/..."},
		required:    true,
	},
}

// pkg is the part of `go list -json` output the check reads.
type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
	Error      *struct{ Err string }
}

type graph map[string]*pkg

func (g graph) inModule(path string) bool {
	return path == module || strings.HasPrefix(path, module+"/")
}

// match reports whether import path path matches pattern (see importRule).
func match(pattern, path string, g graph) bool {
	if pattern == "std" {
		p, ok := g[path]
		return ok && p.Standard
	}
	full := pattern
	if first, _, _ := strings.Cut(pattern, "/"); pattern == "..." {
		full = module + "/..."
	} else if !strings.Contains(first, ".") {
		full = module + "/" + pattern
	}
	if base, ok := strings.CutSuffix(full, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == full
}

func matchAny(patterns []string, path string, g graph) bool {
	for _, p := range patterns {
		if match(p, path, g) {
			return true
		}
	}
	return false
}

// short trims the module path for readable messages.
func short(path string) string {
	if rest, ok := strings.CutPrefix(path, module+"/"); ok {
		return rest
	}
	return path
}

// offense is a dependency that breaks a rule and how it is reached.
type offense struct {
	dep, chain string
}

// offenses walks root's dependencies breadth first and returns those bad
// reports, each with the shortest import chain that reaches it
// ("a -> b -> c"). It does not walk past an offending package, so one bad
// import is reported once, not once per package behind it.
func offenses(g graph, root string, bad func(string) bool) []offense {
	prev := map[string]string{root: ""}
	queue := []string{root}
	var out []offense
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur != root && bad(cur) {
			var path []string
			for p := cur; p != ""; p = prev[p] {
				path = append(path, short(p))
			}
			slices.Reverse(path)
			out = append(out, offense{dep: cur, chain: strings.Join(path, " -> ")})
			continue
		}
		p, ok := g[cur]
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := prev[imp]; !seen {
				prev[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	slices.SortFunc(out, func(a, b offense) int { return strings.Compare(a.dep, b.dep) })
	return out
}

// check applies rules to g and returns one message per violation, and an
// error for a required rule that matched no package.
func check(g graph, rules []importRule) (violations []string, err error) {
	var roots []string
	for path := range g {
		if g.inModule(path) {
			roots = append(roots, path)
		}
	}
	slices.Sort(roots)
	var missing []string
	for _, r := range rules {
		matched := 0
		for _, root := range roots {
			if !matchAny(r.pkgs, root, g) || matchAny(r.except, root, g) {
				continue
			}
			matched++
			if r.directOnly != nil {
				for _, imp := range g[root].Imports {
					if !matchAny(r.directOnly, imp, g) {
						violations = append(violations, fmt.Sprintf("%s: %s imports %s (allowed: %s)\n\tchain: %s -> %s",
							r.name, short(root), short(imp), strings.Join(r.directOnly, ", "), short(root), short(imp)))
					}
				}
			}
			for _, want := range r.mustImport {
				if full := module + "/" + want; !slices.Contains(g[root].Imports, full) {
					violations = append(violations, fmt.Sprintf("%s: %s does not import %s", r.name, short(root), want))
				}
			}
			for _, imp := range g[root].Imports {
				if matchAny(r.neverDirect, imp, g) {
					violations = append(violations, fmt.Sprintf("%s: %s imports %s\n\tchain: %s -> %s",
						r.name, short(root), short(imp), short(root), short(imp)))
				}
			}
			if r.never != nil {
				for _, o := range offenses(g, root, func(d string) bool { return matchAny(r.never, d, g) }) {
					violations = append(violations, fmt.Sprintf("%s: %s depends on %s\n\tchain: %s",
						r.name, short(root), short(o.dep), o.chain))
				}
			}
			if r.onlyModule != nil {
				notAllowed := func(d string) bool {
					return g.inModule(d) && !matchAny(r.onlyModule, d, g) && !matchAny(r.pkgs, d, g)
				}
				for _, o := range offenses(g, root, notAllowed) {
					violations = append(violations, fmt.Sprintf("%s: %s depends on %s (allowed in this module: %s)\n\tchain: %s",
						r.name, short(root), short(o.dep), strings.Join(r.onlyModule, ", "), o.chain))
				}
			}
		}
		if matched == 0 && r.required {
			missing = append(missing, fmt.Sprintf("%q (packages %s)", r.name, strings.Join(r.pkgs, ", ")))
		}
	}
	if len(missing) > 0 {
		err = fmt.Errorf("rules that match no package of %s (renamed or moved? update the table): %s", module, strings.Join(missing, "; "))
	}
	return violations, err
}

// loadGraph runs `go list -e -deps -json` over the whole module.
func loadGraph(t *testing.T) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Imports,Standard,Error", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps failed: %v\n%s", err, stderr.String())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil && g.inModule(p.ImportPath) {
			// Build errors are go vet's and the compiler's to report; the
			// imports go list could read are still checked.
			t.Logf("note: go list reports an error in %s: %s", p.ImportPath, p.Error.Err)
		}
		g[p.ImportPath] = &p
	}
	return g
}

func TestImportDirections(t *testing.T) {
	g := loadGraph(t)
	n := 0
	for path := range g {
		if g.inModule(path) {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("go list found no package of %s", module)
	}
	violations, err := check(g, designRules)
	if err != nil {
		t.Error(err)
	}
	for _, v := range violations {
		t.Errorf("import rule broken: %s", v)
	}
	if len(violations) > 0 {
		t.Log(`the rules are DESIGN.md's "Imports point one way"; see designRules in internal/lintcheck/imports_test.go`)
	}
}

// TestCheckCatchesViolations proves the checker can fail: a made-up graph
// that breaks each kind of rule must be reported, with the chain.
func TestCheckCatchesViolations(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	g := graph{
		"fmt":                              {ImportPath: "fmt", Standard: true},
		"google.golang.org/grpc":           {ImportPath: "google.golang.org/grpc"},
		"github.com/cockroachdb/pebble/v2": {ImportPath: "github.com/cockroachdb/pebble/v2"},
		m("proto/rangekvpb"):               {ImportPath: m("proto/rangekvpb"), Imports: []string{"fmt"}},
		m("internal/keys"):                 {ImportPath: m("internal/keys"), Imports: []string{m("store")}},
		m("router"):                        {ImportPath: m("router"), Imports: []string{m("proto/rangekvpb"), m("internal/keys"), "google.golang.org/grpc"}},
		m("rangeraft/logstore"):            {ImportPath: m("rangeraft/logstore"), Imports: []string{"github.com/cockroachdb/pebble/v2", m("internal/keys")}},
		m("rangeraft"):                     {ImportPath: m("rangeraft"), Imports: []string{m("rangeraft/logstore")}},
		m("store"):                         {ImportPath: m("store"), Imports: []string{m("rangeraft"), m("placement")}},
		m("placement"):                     {ImportPath: m("placement"), Imports: []string{m("placement/schedule"), m("rangeraft/logstore")}},
		m("rangeraft/driver"):              {ImportPath: m("rangeraft/driver"), Imports: []string{m("rangeraft/logstore"), m("router")}},
		m("placement/schedule"):            {ImportPath: m("placement/schedule"), Imports: []string{"fmt", "google.golang.org/grpc", m("proto/rangekvpb")}},
		m("cmd/cli"):                       {ImportPath: m("cmd/cli"), Imports: []string{m("placement/schedule"), m("router")}},
		m("cmd/placement"):                 {ImportPath: m("cmd/placement"), Imports: []string{m("placement")}},
		m("cmd/store"):                     {ImportPath: m("cmd/store"), Imports: []string{m("internal/harness/testcluster")}},
		m("internal/harness/testcluster"):  {ImportPath: m("internal/harness/testcluster"), Imports: []string{m("store")}},
		m("internal/harness/nemesis"):      {ImportPath: m("internal/harness/nemesis"), Imports: []string{m("internal/harness/testcluster")}},
		m("internal/procs"):                {ImportPath: m("internal/procs"), Imports: []string{"fmt", m("router")}},
	}
	violations, err := check(g, designRules)
	if err != nil {
		t.Fatalf("unexpected missing-rule error: %v", err)
	}
	got := strings.Join(violations, "\n")
	for _, want := range []string{
		// the first disallowed package on the way is named, once
		"router depends on internal/keys (allowed in this module: proto/..., router/...)\n\tchain: router -> internal/keys",
		// transitive, through a package that is itself allowed
		"rangeraft/logstore depends on store\n\tchain: rangeraft/logstore -> internal/keys -> store",
		// rangeraft may not reach Pebble, even through logstore
		"rangeraft depends on github.com/cockroachdb/pebble/v2\n\tchain: rangeraft -> rangeraft/logstore -> github.com/cockroachdb/pebble/v2",
		"store depends on placement\n\tchain: store -> placement",
		"placement/schedule imports google.golang.org/grpc (allowed: std, proto/..., placement/schedule/...)\n\tchain: placement/schedule -> google.golang.org/grpc",
		"cmd/cli imports placement/schedule\n\tchain: cmd/cli -> placement/schedule",
		"placement drives its Raft group through rangeraft/driver: placement does not import rangeraft/driver",
		"placement reaches rangeraft/logstore only through rangeraft/driver: placement imports rangeraft/logstore",
		"rangeraft/driver depends on router (allowed in this module: rangeraft, rangeraft/logstore, internal/keys, proto/...)\n\tchain: rangeraft/driver -> router",
		// production code reaching a test harness
		"cmd/store imports internal/harness/testcluster\n\tchain: cmd/store -> internal/harness/testcluster",
		"internal/procs depends on router (allowed in this module: internal/procs/...)\n\tchain: internal/procs -> router",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violation not reported: %q\nreported:\n%s", want, got)
		}
	}
	for _, bad := range []string{
		"rangeraft/logstore depends on github.com/cockroachdb/pebble", // logstore may use Pebble
		"proto/rangekvpb depends on",                                  // proto imports only std here
		"cmd/placement imports",                                       // through placement is fine
		"store imports placement/schedule",                            // only direct imports count
		"internal/harness/nemesis imports",                            // a harness may use another
	} {
		if strings.Contains(got, bad) {
			t.Errorf("false positive %q in:\n%s", bad, got)
		}
	}

	// A required rule that matches nothing is an error, not a pass.
	if _, err := check(graph{"fmt": {ImportPath: "fmt", Standard: true}}, designRules); err == nil {
		t.Error("rules matching no package were not reported")
	}
}

func TestMatch(t *testing.T) {
	g := graph{"fmt": {ImportPath: "fmt", Standard: true}}
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"router", module + "/router", true},
		{"router", module + "/router/cache", false},
		{"router/...", module + "/router/cache", true},
		{"router/...", module + "/routerx", false},
		{"...", module + "/cmd/cli", true},
		{"...", "fmt", false},
		{"github.com/cockroachdb/pebble/...", "github.com/cockroachdb/pebble/v2/vfs", true},
		{"github.com/cockroachdb/pebble/...", "github.com/cockroachdb/pebble", true},
		{"github.com/cockroachdb/pebble/...", "github.com/cockroachdb/pebblex", false},
		{"std", "fmt", true},
		{"std", "google.golang.org/grpc", false},
	} {
		if got := match(tc.pattern, tc.path, g); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}
