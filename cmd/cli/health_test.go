package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthExitCodes(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			w.Write([]byte("ok\n"))
		case r.URL.Path == "/readyz" && ready.Load():
			w.Write([]byte("ready\n"))
		case r.URL.Path == "/readyz":
			http.Error(w, "not ready: store not started or stopping", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// An address nothing listens on: take a port and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	cases := []struct {
		name       string
		notReady   bool
		args       []string
		code       int
		out, errIn string
	}{
		{name: "ready", args: []string{"health", "--http", addr}, code: 0, out: "ready"},
		{name: "url form", args: []string{"health", "--http", srv.URL}, code: 0, out: "ready"},
		{name: "healthz", notReady: true, args: []string{"health", "--http", addr, "--path", "/healthz"}, code: 0, out: "ok"},
		{name: "not ready", notReady: true, args: []string{"health", "--http", addr}, code: 1, errIn: "503 Service Unavailable: not ready: store not started"},
		{name: "unknown path", args: []string{"health", "--http", addr, "--path", "/nope"}, code: 1, errIn: "404"},
		{name: "nothing listening", args: []string{"--timeout", "2s", "health", "--http", dead}, code: 1, errIn: dead},
		{name: "no address", args: []string{"health"}, code: 2, errIn: "http: required"},
		{name: "bad path", args: []string{"health", "--http", addr, "--path", "readyz"}, code: 2, errIn: "path: \"readyz\" must start with /"},
		{name: "bad scheme", args: []string{"health", "--http", "ftp://x:1"}, code: 2, errIn: "http: \"ftp://x:1\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ready.Store(!tc.notReady)
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tc.code, out.String(), errb.String())
			}
			if strings.TrimSpace(out.String()) != tc.out {
				t.Errorf("stdout %q, want %q", out.String(), tc.out)
			}
			if !strings.Contains(errb.String(), tc.errIn) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tc.errIn)
			}
		})
	}
}
