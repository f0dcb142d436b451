package main

import (
	"bytes"
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/router"
)

// fakeClient is the in-memory twin of router.Client for tests that need no
// cluster: a sorted map with the store's semantics, and an error to return
// from every call instead.
type fakeClient struct {
	mu    sync.Mutex
	data  map[string][]byte
	err   error // returned by every call when set
	scans []int // limits passed to Scan, for paging tests
}

func newFake(pairs ...string) *fakeClient {
	f := &fakeClient{data: map[string][]byte{}}
	for i := 0; i+1 < len(pairs); i += 2 {
		f.data[pairs[i]] = []byte(pairs[i+1])
	}
	return f
}

func (f *fakeClient) Get(_ context.Context, key []byte) ([]byte, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, false, f.err
	}
	v, ok := f.data[string(key)]
	return v, ok, nil
}

func (f *fakeClient) Put(_ context.Context, key, value []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.data[string(key)] = append([]byte(nil), value...)
	return nil
}

func (f *fakeClient) Delete(_ context.Context, key []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	delete(f.data, string(key))
	return nil
}

func (f *fakeClient) CAS(_ context.Context, key, expected []byte, expectAbsent bool, newValue []byte) (router.CASResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return router.CASResult{}, f.err
	}
	cur, found := f.data[string(key)]
	if (expectAbsent && !found) || (!expectAbsent && found && bytes.Equal(cur, expected)) {
		f.data[string(key)] = append([]byte(nil), newValue...)
		return router.CASResult{Swapped: true, Found: true, Value: newValue}, nil
	}
	return router.CASResult{Found: found, Value: cur}, nil
}

func (f *fakeClient) Incr(_ context.Context, key []byte, delta int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	var n int64
	if cur, ok := f.data[string(key)]; ok {
		v, err := strconv.ParseInt(string(cur), 10, 64)
		if err != nil {
			return 0, status.Errorf(codes.FailedPrecondition, "incr: key %q holds %q, which is not a signed 64-bit decimal integer", key, cur)
		}
		n = v
	}
	n += delta
	f.data[string(key)] = []byte(strconv.FormatInt(n, 10))
	return n, nil
}

func (f *fakeClient) Scan(_ context.Context, start, end []byte, limit int) ([]router.KeyValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.scans = append(f.scans, limit)
	if len(end) > 0 && bytes.Compare(start, end) > 0 {
		return nil, status.Errorf(codes.InvalidArgument, "end_key: %q sorts before start_key %q; a scan needs start_key <= end_key", end, start)
	}
	keys := make([]string, 0, len(f.data))
	for k := range f.data {
		if k >= string(start) && (len(end) == 0 || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []router.KeyValue
	for _, k := range keys {
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, router.KeyValue{Key: []byte(k), Value: f.data[k]})
	}
	return out, nil
}

func (f *fakeClient) Close() error { return nil }

// runFake runs the CLI with args against fake and returns stdout, stderr
// and the exit code.
func runFake(t *testing.T, fake *fakeClient, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(&out, &errb)
	a.newClient = func(clusterAddrs, router.Options) (kvClient, error) { return fake, nil }
	code = a.execute(context.Background(), append([]string{"--placement", "127.0.0.1:1"}, args...))
	if strings.Count(errb.String(), "\n") > 1 {
		t.Errorf("rangekv %s: stderr has more than one line:\n%s", strings.Join(args, " "), errb.String())
	}
	return out.String(), errb.String(), code
}
