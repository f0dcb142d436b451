package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rangekv/rangekv/router"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

// checkGolden compares got with testdata/<name>.golden (or rewrites it
// with -update).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got); rerun with -update if the change is intended:\n%s", path, diff)
	}
}

// shellJoin renders args as a shell would need them typed.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "" || strings.ContainsAny(a, " \t\n'\"<>&|;$\\") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// TestGoldenKV runs every key-value command, in table and JSON output,
// against the in-memory client and compares stdout, stderr and the exit
// code with testdata/<case>.golden.
func TestGoldenKV(t *testing.T) {
	seed := []string{"a", "1", "b", "two words", "c/x", "3", "n", "41", "user/1", "ann", "user/2", "bob", "z", "<tag>&"}
	cases := []struct {
		name string
		args []string
	}{
		{"put_table", []string{"put", "k", "v"}},
		{"put_json", []string{"-o", "json", "put", "k", "v"}},
		{"put_hex_json", []string{"--hex", "-o", "json", "put", "00ff", "6869"}},
		{"get_table", []string{"get", "b"}},
		{"get_json", []string{"-o", "json", "get", "b"}},
		{"get_html_chars_json", []string{"-o", "json", "get", "z"}},
		{"get_hex_table", []string{"--hex", "get", "61"}},
		{"get_hex_json", []string{"--hex", "-o", "json", "get", "61"}},
		{"get_missing_table", []string{"get", "nope"}},
		{"get_missing_json", []string{"-o", "json", "get", "nope"}},
		{"delete_table", []string{"delete", "a"}},
		{"delete_json", []string{"-o", "json", "delete", "a"}},
		{"cas_swapped_table", []string{"cas", "a", "1", "2"}},
		{"cas_swapped_json", []string{"-o", "json", "cas", "a", "1", "2"}},
		{"cas_failed_table", []string{"cas", "a", "9", "2"}},
		{"cas_failed_json", []string{"-o", "json", "cas", "a", "9", "2"}},
		{"cas_failed_missing_table", []string{"cas", "nope", "9", "2"}},
		{"cas_failed_missing_json", []string{"-o", "json", "cas", "nope", "9", "2"}},
		{"cas_absent_table", []string{"cas", "--absent", "nope", "first"}},
		{"cas_absent_json", []string{"-o", "json", "cas", "--absent", "nope", "first"}},
		{"cas_absent_exists_json", []string{"-o", "json", "cas", "--absent", "a", "first"}},
		{"incr_table", []string{"incr", "n"}},
		{"incr_delta_table", []string{"incr", "n", "-50"}},
		{"incr_json", []string{"-o", "json", "incr", "n", "10"}},
		{"incr_new_json", []string{"-o", "json", "incr", "fresh"}},
		{"incr_bad_delta", []string{"incr", "n", "1.5"}},
		{"incr_overflowing_delta", []string{"incr", "n", "9223372036854775808"}},
		{"incr_not_a_number", []string{"incr", "b"}},
		{"scan_table", []string{"scan"}},
		{"scan_json", []string{"-o", "json", "scan"}},
		{"scan_prefix_table", []string{"scan", "user/", "user0"}},
		{"scan_limit_json", []string{"-o", "json", "scan", "b", "--limit", "2"}},
		{"scan_empty_json", []string{"-o", "json", "scan", "x", "y"}},
		{"scan_hex_table", []string{"--hex", "scan", "", "63"}},
		{"scan_backwards", []string{"scan", "b", "a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runFake(t, newFake(seed...), tc.args...)
			got := fmt.Sprintf("$ rangekv %s\n-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", shellJoin(tc.args), stdout, stderr, code)
			checkGolden(t, tc.name, got)
			if strings.Contains(strings.Join(tc.args, " "), "-o json") && stdout != "" {
				var v map[string]any
				if err := json.Unmarshal([]byte(stdout), &v); err != nil {
					t.Errorf("stdout is not one JSON document: %v\n%s", err, stdout)
				}
			}
		})
	}
}

// TestJSONShapes pins the key order and types of INTERFACES.md's
// documents independently of the golden files.
func TestJSONShapes(t *testing.T) {
	var b bytes.Buffer
	p := &printer{w: &b, json: true}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.printGet([]byte("k"), []byte(""), true))
	must(p.printGet([]byte("k"), nil, false))
	must(p.printOK([]byte("k")))
	must(p.printCAS([]byte("k"), router.CASResult{Swapped: true, Found: true, Value: []byte("v")}))
	must(p.printCAS([]byte("k"), router.CASResult{}))
	must(p.printIncr([]byte("k"), -9223372036854775808))
	must(p.printScan(nil))
	must(p.printScan([]router.KeyValue{{Key: []byte("a"), Value: []byte("1")}}))
	want := `{"key":"k","found":true,"value":""}
{"key":"k","found":false}
{"key":"k","ok":true}
{"key":"k","swapped":true,"found":true,"value":"v"}
{"key":"k","swapped":false,"found":false}
{"key":"k","value":-9223372036854775808}
{"pairs":[]}
{"pairs":[{"key":"a","value":"1"}]}
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("JSON documents (-want +got):\n%s", diff)
	}
}

// TestNonUTF8Warning: JSON cannot carry bytes that are not UTF-8; the CLI
// says so once and points at --hex.
func TestNonUTF8Warning(t *testing.T) {
	fake := newFake("bin", "\xff\xfe")
	stdout, stderr, code := runFake(t, fake, "-o", "json", "get", "bin")
	checkGolden(t, "get_non_utf8_json", fmt.Sprintf("-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", stdout, stderr, code))
	stdout, stderr, code = runFake(t, fake, "--hex", "-o", "json", "get", "62696e")
	if code != 0 || stderr != "" || stdout != `{"key":"62696e","found":true,"value":"fffe"}`+"\n" {
		t.Errorf("--hex get: code %d stdout %q stderr %q", code, stdout, stderr)
	}
}

func TestBenchOutput(t *testing.T) {
	r := benchResult{Workload: "write", Clients: 16, Ops: 1000, Errors: 2, DurationS: 2, OpsPerS: 500,
		P50Ms: 1.5, P95Ms: 3.25, P99Ms: 7, P999Ms: 12.125}
	var b bytes.Buffer
	if err := printBench(&b, r, true); err != nil {
		t.Fatal(err)
	}
	if err := printBench(&b, r, false); err != nil {
		t.Fatal(err)
	}
	r.Workload, r.casSwapped = "cas", 600
	if err := printBench(&b, r, false); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "bench_output", b.String())
}
