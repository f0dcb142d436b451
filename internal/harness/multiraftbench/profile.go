package main

// CPU profiles of the stores, taken from /debug/pprof/profile on their HTTP
// addresses, saved, and summarized with `go tool pprof -top`.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// profileStores takes a CPU profile of every running store at once and
// returns, per store, the head of `go tool pprof -top` (flat and cum).
func profileStores(ctx context.Context, c *cluster, bin, outDir, tag string, d time.Duration) []string {
	out := make([]string, len(c.stores))
	var wg sync.WaitGroup
	for i, p := range c.stores {
		if !p.running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(outDir, fmt.Sprintf("%s_s%d.pprof", tag, p.id))
			if err := fetchProfile(ctx, p, d, path); err != nil {
				out[i] = fmt.Sprintf("store %d: profile failed: %v", p.id, err)
				return
			}
			flat := pprofTop(ctx, bin, path, false)
			cum := pprofTop(ctx, bin, path, true)
			out[i] = fmt.Sprintf("store %d (%s)\n%s\n-- by cumulative --\n%s", p.id, path, flat, cum)
		}()
	}
	wg.Wait()
	return out
}

func fetchProfile(ctx context.Context, p *storeProc, d time.Duration, path string) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.httpAddr, int(d.Seconds()))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pprofTop runs `go tool pprof -top` and keeps its header and first rows.
func pprofTop(ctx context.Context, bin, path string, cum bool) string {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	args := []string{"tool", "pprof", "-top", "-nodecount=18"}
	if cum {
		args = append(args, "-cum")
	}
	args = append(args, bin, path)
	b, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof: %v: %s", err, strings.TrimSpace(string(b)))
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") ||
			strings.HasPrefix(l, "Time:") || strings.HasPrefix(l, "Showing top") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}
