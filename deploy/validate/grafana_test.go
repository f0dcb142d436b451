package validate

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// goSources is the text of the main module's non-test Go files.
func goSources(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	var sb strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (p == filepath.Join(root, "deploy") || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sb.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

var (
	metricRE = regexp.MustCompile(`\brangekv_[a-z0-9_]+`)
	byRE     = regexp.MustCompile(`\b(?:by|without|on)\s*\(([^)]*)\)`)
)

func TestGrafanaDashboard(t *testing.T) {
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(readFile(t, deployPath(t, "grafana/rangekv.json")))))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("dashboard needs a title and a uid")
	}
	src := goSources(t)
	var exprs []string
	ids := map[int]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panel %q reuses id %d of %q", p.Title, p.ID, prev)
			}
			ids[p.ID] = p.Title
			if p.GridPos.X < 0 || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v is outside the 24 columns", p.Title, p.GridPos)
			}
			if p.Type != "row" {
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: datasource must be the ${datasource} variable", p.Title)
				}
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q: empty query", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}

	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricRE.FindAllString(e, -1) {
			used[name] = true
		}
		if strings.Contains(e, "histogram_quantile") && !strings.Contains(e, "_bucket") {
			t.Errorf("histogram_quantile over no _bucket series: %s", e)
		}
		for _, m := range byRE.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(m[1], ",") {
				l = strings.TrimSpace(l)
				if l == "" || l == "le" || l == "instance" || l == "job" {
					continue
				}
				if !strings.Contains(src, `"`+l+`"`) {
					t.Errorf("label %q (in %s) is no label in the Go sources", l, e)
				}
			}
		}
	}
	// Every metric the dashboard queries is registered by name in the code
	// (histogram series by their base name).
	for name := range used {
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && strings.Contains(src, `"`+b+`"`) {
				base = b
			}
		}
		if !strings.Contains(src, `"`+base+`"`) {
			t.Errorf("dashboard queries %s, which no Go source registers", name)
		}
	}
	// What operators must see (issue 6): each has a panel.
	for _, name := range []string{
		"rangekv_kv_requests_total", "rangekv_kv_request_duration_seconds_bucket",
		"rangekv_raft_proposals_total", "rangekv_raft_entries_applied_total", "rangekv_raft_log_syncs_total",
		"rangekv_raft_leader_changes_total", "rangekv_raft_elections_total", "rangekv_raft_log_entries",
		"rangekv_store_replicas", "rangekv_store_leaders", "rangekv_store_quiescent_replicas",
		"rangekv_transport_batches_sent_total", "rangekv_transport_queue_depth",
		"rangekv_snapshots_sent_total", "rangekv_snapshots_applied_total",
		"rangekv_placement_operators_total", "rangekv_placement_stores", "rangekv_placement_under_replicated_ranges",
	} {
		if !used[name] {
			t.Errorf("no panel queries %s", name)
		}
	}
	t.Logf("%d panels, %d queries, %d metric names checked against the code", len(ids), len(exprs), len(used))
}
