package validate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const composeFile = "compose/compose.yaml"

// loadCompose loads a compose file the way `docker compose config` does:
// schema validation, interpolation, normalization.
func loadCompose(t *testing.T, path string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		// Only the defaults the file states (${RANGEKV_IMAGE:-...}): the
		// result must not depend on the caller's environment.
		cli.WithEnv(nil),
		cli.WithConsistency(true))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func TestComposeFile(t *testing.T) {
	p, err := loadCompose(t, deployPath(t, composeFile))
	if err != nil {
		t.Fatalf("compose file does not load: %v", err)
	}
	want := []string{"placement1", "placement2", "placement3", "store1", "store2", "store3"}
	if got := p.ServiceNames(); strings.Join(sortedCopy(got), ",") != strings.Join(want, ",") {
		t.Fatalf("services %v, want %v", got, want)
	}

	var members map[string]string // placement ID -> ADDR, from placement1
	ids := map[string]string{}
	usedVolumes := map[string]string{}
	for _, name := range want {
		svc := p.Services[name]
		where := "compose service " + name
		if len(svc.Command) == 0 {
			t.Fatalf("%s: no command", where)
		}
		bin := filepath.Base(svc.Command[0])
		isStore := strings.HasPrefix(name, "store")
		wantBin := map[bool]string{true: "rangekv-store", false: "rangekv-placement"}[isStore]
		if bin != wantBin {
			t.Errorf("%s: runs %s, want %s", where, svc.Command[0], wantBin)
		}
		env := map[string]string{}
		for k, v := range svc.Environment {
			if v == nil {
				t.Errorf("%s: %s has no value", where, k)
				continue
			}
			env[k] = *v
		}
		checkEnv(t, where, bin, env)
		args := checkArgs(t, where, bin, svc.Command[1:])
		setting := func(flag string) string {
			if v, ok := args[flag]; ok {
				return v
			}
			return env[envName(flag)]
		}

		// One named volume per service, at its data directory.
		dataDir := setting("data-dir")
		if dataDir == "" {
			t.Errorf("%s: no --data-dir", where)
		}
		var vol *types.ServiceVolumeConfig
		for i := range svc.Volumes {
			if svc.Volumes[i].Target == dataDir {
				vol = &svc.Volumes[i]
			}
		}
		switch {
		case vol == nil:
			t.Errorf("%s: no volume mounted at its data dir %q", where, dataDir)
		case vol.Type != types.VolumeTypeVolume:
			t.Errorf("%s: data volume is a %s, want a named volume", where, vol.Type)
		default:
			if _, ok := p.Volumes[vol.Source]; !ok {
				t.Errorf("%s: volume %q is not declared under volumes:", where, vol.Source)
			}
			if other, dup := usedVolumes[vol.Source]; dup {
				t.Errorf("%s: volume %q is also used by %s", where, vol.Source, other)
			}
			usedVolumes[vol.Source] = name
		}

		// The health check runs the image's own CLI against /readyz on
		// the service's HTTP port.
		hc := svc.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
			t.Fatalf("%s: health check %+v, want an exec-form [CMD, ...] test", where, hc)
		}
		if filepath.Base(hc.Test[1]) != "rangekv" || len(hc.Test) < 3 || hc.Test[2] != "health" {
			t.Errorf("%s: health check %v, want rangekv health (there is no curl in the image)", where, hc.Test)
		}
		hargs := checkArgs(t, where+" health check", "rangekv", hc.Test[3:], "health")
		if p := hargs["path"]; p != "" && p != "/readyz" {
			t.Errorf("%s: health check probes %s, want /readyz", where, p)
		}
		httpAddr := setting("http-addr")
		if httpAddr == "" || hargs["http"] == "" || port(t, where, hargs["http"]) != port(t, where, httpAddr) {
			t.Errorf("%s: health check --http %q does not match --http-addr %q", where, hargs["http"], httpAddr)
		}
		if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
			t.Errorf("%s: health check needs interval, timeout and retries", where)
		}
		if hc.Timeout != nil && hc.Interval != nil && *hc.Timeout >= *hc.Interval {
			t.Errorf("%s: health check timeout %v >= interval %v", where, *hc.Timeout, *hc.Interval)
		}
		if svc.StopGracePeriod == nil {
			t.Errorf("%s: no stop_grace_period (a store drains its leaderships on SIGTERM)", where)
		}

		grpcPort := port(t, where, setting("addr"))
		if !isStore {
			id := setting("id")
			if prev, dup := ids[id]; dup || id == "" {
				t.Errorf("%s: --id %q (also %s)", where, id, prev)
			}
			ids[id] = name
			m := parseMembers(t, where, setting("initial-cluster"))
			if members == nil {
				members = m
			} else if strings.Join(mapPairs(m), ",") != strings.Join(mapPairs(members), ",") {
				t.Errorf("%s: --initial-cluster %v differs from placement1's %v", where, m, members)
			}
			if members[id] != name+":"+grpcPort {
				t.Errorf("%s: --initial-cluster has %s=%q for it, want %s:%s", where, id, members[id], name, grpcPort)
			}
			continue
		}
		if adv := setting("advertise-addr"); adv != name+":"+grpcPort {
			t.Errorf("%s: --advertise-addr %q, want %s:%s (its name on the compose network)", where, adv, name, grpcPort)
		}
		var pds []string
		for _, a := range members {
			pds = append(pds, a)
		}
		if got := strings.Split(setting("placement"), ","); strings.Join(sortedCopy(got), ",") != strings.Join(sortedCopy(pds), ",") {
			t.Errorf("%s: --placement %v, want every placement member %v", where, got, pds)
		}
		for _, pd := range []string{"placement1", "placement2", "placement3"} {
			if dep, ok := svc.DependsOn[pd]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: does not wait for %s to be healthy (depends_on %v)", where, pd, svc.DependsOn)
			}
		}
	}
	if len(members) != 3 || len(ids) != 3 {
		t.Errorf("placement members %v, IDs %v: want 3", members, ids)
	}
}

// The loader rejects what it must: the schema check is on.
func TestComposeLoaderRejectsUnknownKeys(t *testing.T) {
	src := string(readFile(t, deployPath(t, composeFile)))
	bad := strings.Replace(src, "    hostname: store1\n", "    hostname: store1\n    helthcheck: {}\n", 1)
	if bad == src {
		t.Fatal("could not plant the bad key")
	}
	path := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCompose(t, path); err == nil || !strings.Contains(err.Error(), "helthcheck") {
		t.Fatalf("a service with an unknown key loaded (err %v)", err)
	}
}

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }

func mapPairs(m map[string]string) []string {
	var out []string
	for _, k := range keysOf(m) {
		out = append(out, k+"="+m[k])
	}
	return out
}
