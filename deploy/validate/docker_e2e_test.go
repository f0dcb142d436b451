package validate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDockerComposeCluster builds the image and runs the compose cluster,
// where a Docker engine and the compose plugin are available: all six
// services become healthy, and a key written through one store is read
// back. Without an engine it does not run (and says why): it is not a pass.
func TestDockerComposeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("NOT RUN: -short")
	}
	ctx := os.Getenv("RANGEKV_IMAGE_CONTEXT")
	if ctx == "" {
		t.Skip("NOT RUN: RANGEKV_IMAGE_CONTEXT is unset (make deploy-check builds the context)")
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("NOT RUN: no docker client")
	}
	if out, err := run(docker, 20*time.Second, "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("NOT RUN: no Docker engine (docker info: %v: %s)", err, firstLine(out))
	}
	if out, err := run(docker, 20*time.Second, "compose", "version"); err != nil {
		t.Skipf("NOT RUN: no docker compose plugin (%v: %s)", err, firstLine(out))
	}

	image := fmt.Sprintf("rangekv:e2e-%d", os.Getpid())
	project := fmt.Sprintf("rangekv-e2e-%d", os.Getpid())
	if out, err := run(docker, 5*time.Minute, "build", "-t", image, ctx); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { run(docker, time.Minute, "image", "rm", "-f", image) })

	compose := func(timeout time.Duration, args ...string) (string, error) {
		cmd := exec.Command(docker, append([]string{"compose", "-p", project, "-f", deployPath(t, composeFile)}, args...)...)
		cmd.Env = append(os.Environ(), "RANGEKV_IMAGE="+image)
		return runCmd(cmd, timeout)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := compose(time.Minute, "logs", "--no-color", "--tail", "50")
			t.Logf("compose logs:\n%s", out)
		}
		compose(2*time.Minute, "down", "-v", "--timeout", "70")
	})
	// --wait returns once every service is healthy (or fails).
	if out, err := compose(5*time.Minute, "up", "-d", "--wait", "--wait-timeout", "240"); err != nil {
		t.Fatalf("compose up --wait: %v\n%s", err, out)
	}
	pd := "--placement=placement1:7401,placement2:7401,placement3:7401"
	if out, err := compose(time.Minute, "exec", "-T", "store1", "/usr/local/bin/rangekv", pd, "put", "e2e-key", "e2e-value"); err != nil {
		t.Fatalf("put through store1's CLI: %v\n%s", err, out)
	}
	out, err := compose(time.Minute, "exec", "-T", "store3", "/usr/local/bin/rangekv", pd, "get", "e2e-key")
	if err != nil || !strings.Contains(out, "e2e-value") {
		t.Fatalf("get from store3's CLI: %v: %q, want e2e-value", err, out)
	}
}

func run(bin string, timeout time.Duration, args ...string) (string, error) {
	return runCmd(exec.Command(bin, args...), timeout)
}

// runCmd runs cmd with a deadline and returns its combined output.
func runCmd(cmd *exec.Cmd, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env, c.Dir = cmd.Env, cmd.Dir
	out, err := c.CombinedOutput()
	return string(out), err
}
