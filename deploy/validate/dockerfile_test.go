package validate

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
	line int
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	return out
}

// copySources returns the sources of a COPY (flags such as --chown skipped).
func copySources(args string) []string {
	var words []string
	for _, w := range strings.Fields(args) {
		if !strings.HasPrefix(w, "--") {
			words = append(words, w)
		}
	}
	if len(words) < 2 {
		return nil
	}
	return words[:len(words)-1]
}

func TestDockerfile(t *testing.T) {
	path := deployPath(t, "docker/Dockerfile")
	ins := parseDockerfile(t, path)
	var froms, copies []instruction
	var user string
	var cmd []string
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in)
		case "COPY":
			copies = append(copies, in)
			if strings.Contains(in.args, "--from") {
				t.Errorf("line %d: COPY --from: the image must build from the context alone", in.line)
			}
		case "ADD":
			t.Errorf("line %d: ADD (may fetch URLs); use COPY", in.line)
		case "RUN":
			t.Errorf("line %d: RUN: there is no shell in a scratch image", in.line)
		case "USER":
			user = in.args
		case "CMD", "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &cmd); err != nil && in.cmd == "CMD" {
				t.Errorf("line %d: %s is not exec form (no shell in the image): %v", in.line, in.cmd, err)
			}
		}
	}
	if len(froms) != 1 || froms[0].args != "scratch" {
		t.Fatalf("FROM %v: want exactly one stage, FROM scratch (no base image pull)", froms)
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("USER %q: want a numeric non-root user", user)
	}

	// The context `make image-context` assembled (RANGEKV_IMAGE_CONTEXT):
	// every COPY source exists, the binaries are static, the CA bundle parses.
	ctx := os.Getenv("RANGEKV_IMAGE_CONTEXT")
	if ctx == "" {
		t.Log("NOT RUN: the image context checks: RANGEKV_IMAGE_CONTEXT is unset (make deploy-check sets it to bin/image)")
		return
	}
	if got := readFile(t, filepath.Join(ctx, "Dockerfile")); !bytes.Equal(got, readFile(t, path)) {
		t.Errorf("%s/Dockerfile differs from deploy/docker/Dockerfile: rerun make image-context", ctx)
	}
	for _, c := range copies {
		for _, src := range copySources(c.args) {
			if _, err := os.Stat(filepath.Join(ctx, src)); err != nil {
				t.Errorf("line %d: COPY source %s is not in the context: %v", c.line, src, err)
			}
		}
	}
	rootfs := filepath.Join(ctx, "rootfs")
	for _, b := range []string{"rangekv", "rangekv-store", "rangekv-placement"} {
		p := filepath.Join(rootfs, "usr/local/bin", b)
		f, err := elf.Open(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked (build with CGO_ENABLED=0): it cannot run FROM scratch", p)
				break
			}
		}
		f.Close()
	}
	if len(cmd) > 0 {
		if _, err := os.Stat(filepath.Join(rootfs, cmd[0])); err != nil {
			t.Errorf("CMD %v: %v", cmd, err)
		}
	}
	pem := readFile(t, filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt"))
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		t.Error("etc/ssl/certs/ca-certificates.crt holds no PEM certificate")
	}
}
