// The health command: probe a process's /readyz or /healthz, for container
// health checks where no curl exists (the image is FROM scratch).

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// exitUnhealthy is what health returns when the process answered "not
// ready" or did not answer: 1, which is what Docker and Kubernetes exec
// probes read as unhealthy.
const exitUnhealthy = exitNotFound

func (a *app) healthCmd() *cobra.Command {
	var httpAddr, path string
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check a store's or placement member's /readyz (for health checks)",
		Long: `Send GET /readyz (or --path) to the HTTP address of a rangekv-store or
rangekv-placement process and exit 0 when it answers 200, 1 otherwise (not
ready, an error status, or no answer within --timeout). The body of the
answer, or the error, is printed on one line.

It is meant for container health checks: the rangekv image has no shell and
no curl. It needs neither --placement nor --stores.`,
		Example: `  rangekv health --http 127.0.0.1:7511
  rangekv health --http 127.0.0.1:7411 --path /healthz --timeout 2s`,
		Args: argsBetween(0, 0, "no arguments"),
		RunE: wrapRun(func(cmd *cobra.Command, _ []string) error {
			u, err := healthURL(httpAddr, path)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), a.g.timeout)
			defer cancel()
			msg, err := probe(ctx, u)
			if err != nil {
				return &exitError{code: exitUnhealthy, err: err}
			}
			fmt.Fprintln(a.stdout, msg)
			return nil
		}),
	}
	cmd.Flags().StringVar(&httpAddr, "http", "", "HTTP address of the process (its --http-addr), HOST:PORT or a URL (required)")
	cmd.Flags().StringVar(&path, "path", "/readyz", "path to probe: /readyz (ready to serve) or /healthz (alive)")
	return cmd
}

// healthURL builds the URL to probe from --http and --path.
func healthURL(addr, path string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", usageErrorf("http: required: the process's HTTP address, e.g. --http 127.0.0.1:7511")
	}
	if !strings.HasPrefix(path, "/") {
		return "", usageErrorf("path: %q must start with /", path)
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", usageErrorf("http: %q is not HOST:PORT or an http(s) URL", addr)
	}
	u.Path = path
	return u.String(), nil
}

// probe GETs u and returns the first line of the body when the status is
// 200; any other status, or no answer, is an error naming it.
func probe(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	line := strings.TrimSpace(strings.SplitN(string(body), "\n", 2)[0])
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", u, resp.Status, line)
	}
	return line, nil
}
