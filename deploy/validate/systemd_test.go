package validate

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unit is a parsed systemd unit: section -> key -> values (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, "\\") {
				t.Fatalf("%s:%d: %q is not KEY=VALUE in a section", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

// parseEnvFile reads KEY=VALUE lines (systemd EnvironmentFile).
func parseEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			t.Fatalf("%s:%d: %q is not KEY=VALUE", path, n, line)
		}
		env[k] = v
	}
	return env
}

func TestSystemdUnits(t *testing.T) {
	for _, name := range []string{"rangekv-store", "rangekv-placement"} {
		t.Run(name, func(t *testing.T) {
			path := deployPath(t, "systemd/"+name+".service")
			u := parseUnit(t, path)
			svc := u["Service"]
			if svc == nil || u["Unit"] == nil || u["Install"] == nil {
				t.Fatalf("%s: want [Unit], [Service] and [Install]", path)
			}
			one := func(k string) string {
				if len(svc[k]) != 1 {
					t.Errorf("%s: %s set %d times, want once", name, k, len(svc[k]))
					return ""
				}
				return svc[k][0]
			}
			exec := strings.Fields(one("ExecStart"))
			if len(exec) == 0 || filepath.Base(exec[0]) != name {
				t.Fatalf("%s: ExecStart %v does not run %s", name, exec, name)
			}
			args := checkArgs(t, name+" ExecStart", name, exec[1:])
			dataDir := args["data-dir"]
			if dataDir == "" {
				t.Fatalf("%s: ExecStart has no --data-dir", name)
			}
			if rw := one("ReadWritePaths"); rw != dataDir {
				t.Errorf("%s: ReadWritePaths=%q, want exactly the data dir %q", name, rw, dataDir)
			}
			if sd := one("StateDirectory"); "/var/lib/"+sd != dataDir {
				t.Errorf("%s: StateDirectory=%q does not make the data dir %q", name, sd, dataDir)
			}
			for k, want := range map[string]string{
				"ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes",
				"PrivateDevices": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes",
				"KillSignal": "SIGTERM", "Restart": "on-failure",
			} {
				if got := one(k); got != want {
					t.Errorf("%s: %s=%q, want %q", name, k, got, want)
				}
			}
			if u := one("User"); u == "" || u == "root" {
				t.Errorf("%s: User=%q, want an unprivileged user", name, u)
			}

			// The environment file it reads: every RANGEKV_* is a flag.
			envFile := one("EnvironmentFile")
			local := deployPath(t, "systemd/"+name+".env")
			if filepath.Base(envFile) != strings.TrimPrefix(name, "rangekv-")+".env" {
				t.Errorf("%s: EnvironmentFile=%s, want /etc/rangekv/%s.env (installed from %s)", name, envFile, strings.TrimPrefix(name, "rangekv-"), local)
			}
			env := parseEnvFile(t, local)
			checkEnv(t, local, name, env)
			if _, ok := env[envName("data-dir")]; ok {
				t.Errorf("%s: sets the data dir, which ExecStart and ReadWritePaths fix", local)
			}
			if name == "rangekv-placement" {
				if env[envName("id")] == "" || env[envName("initial-cluster")] == "" {
					t.Errorf("%s: want RANGEKV_ID and RANGEKV_INITIAL_CLUSTER", local)
				}
			} else if env[envName("placement")] == "" || env[envName("advertise-addr")] == "" {
				t.Errorf("%s: want RANGEKV_PLACEMENT and RANGEKV_ADVERTISE_ADDR", local)
			}

			systemdAnalyze(t, path, name)
		})
	}
}

// systemdAnalyze runs `systemd-analyze verify` (any warning fails) and the
// offline security score on a copy of the unit that points at the built
// binary and the local environment file, where systemd-analyze exists.
func systemdAnalyze(t *testing.T, path, name string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("NOT RUN: systemd-analyze verify/security: systemd-analyze is not installed")
		return
	}
	src := string(readFile(t, path))
	src = strings.ReplaceAll(src, "/usr/local/bin/"+name, filepath.Join(binaries(t), name))
	src = strings.ReplaceAll(src, "/etc/rangekv/"+strings.TrimPrefix(name, "rangekv-")+".env", deployPath(t, "systemd/"+name+".env"))
	tmp := filepath.Join(t.TempDir(), name+".service")
	if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", tmp).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
	}
	// Exposure above 2.0 ("OK" ends at 3.9) means a hardening option went missing.
	out, err = exec.Command(sa, "security", "--offline=true", "--threshold=20", "--no-pager", tmp).CombinedOutput()
	last := strings.TrimSpace(string(out))
	if i := strings.LastIndex(last, "\n"); i >= 0 {
		last = last[i+1:]
	}
	if err != nil {
		t.Errorf("systemd-analyze security %s: %v: %s", name, err, last)
	} else {
		t.Log(last)
	}
}
