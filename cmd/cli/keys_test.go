package main

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKeyHex(t *testing.T) {
	cases := []struct {
		in      string
		want    []byte
		wantErr string
	}{
		{in: "6b6579", want: []byte("key")},
		{in: "6B6579", want: []byte("key")},
		{in: "0x6b6579", want: []byte("key")},
		{in: "0X00ff", want: []byte{0, 0xff}},
		{in: "00", want: []byte{0}},
		{in: "", wantErr: "KEY: must not be empty"},
		{in: "0x", wantErr: "KEY: must not be empty"},
		{in: "abc", wantErr: "odd length"},
		{in: "zz", wantErr: "invalid byte"},
		{in: "6b 65", wantErr: "not hex"},
		{in: "0x0x00", wantErr: "not hex"},
	}
	for _, tc := range cases {
		got, err := parseKey("KEY", tc.in, true)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseKey(%q): err %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			if exitCodeFor(err) != exitUsage {
				t.Errorf("parseKey(%q): exit code %d, want 2", tc.in, exitCodeFor(err))
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("parseKey(%q) = %x, %v; want %x", tc.in, got, err, tc.want)
		}
	}
}

func TestParseKeyText(t *testing.T) {
	for _, s := range []string{"k", "user/1", "héllo", "\xff\x00", " spaced ", "-dash"} {
		got, err := parseKey("KEY", s, false)
		if err != nil || string(got) != s {
			t.Errorf("parseKey(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := parseKey("KEY", "", false); err == nil {
		t.Error("empty key accepted")
	}
	// Values and scan bounds may be empty.
	if b, err := parseBytes("VALUE", "", true); err != nil || len(b) != 0 {
		t.Errorf("empty hex value: %q %v", b, err)
	}
}

func TestQuoteKeyShortens(t *testing.T) {
	long := bytes.Repeat([]byte("k"), 5000)
	got := quoteKey(long, false)
	if len(got) > 100 || !strings.HasSuffix(got, "... (5000 bytes)") {
		t.Errorf("quoteKey of a 5000-byte key: %q", got)
	}
	if got := quoteKey([]byte{0, 1}, true); got != "0001" {
		t.Errorf("hex quoteKey: %q", got)
	}
}

// FuzzParseKey: parsing never panics; text mode keeps the argument as is;
// a hex key round-trips through formatBytes; errors are usage errors.
func FuzzParseKey(f *testing.F) {
	// Seeds beyond testdata/fuzz/FuzzParseKey.
	f.Add("key", false)
	f.Add("6b6579", true)
	f.Fuzz(func(t *testing.T, s string, hexMode bool) {
		k, err := parseKey("KEY", s, hexMode)
		if err != nil {
			if code := exitCodeFor(err); code != exitUsage {
				t.Fatalf("parseKey(%q, %v): error %v has exit code %d, want 2", s, hexMode, err, code)
			}
			if strings.Contains(errorLine(err), "\n") {
				t.Fatalf("multi-line error for %q", s)
			}
			if !hexMode && s != "" {
				t.Fatalf("text key %q refused: %v", s, err)
			}
			return
		}
		if len(k) == 0 {
			t.Fatalf("parseKey(%q, %v) returned an empty key", s, hexMode)
		}
		if !hexMode {
			if string(k) != s {
				t.Fatalf("text key %q became %q", s, k)
			}
			return
		}
		out := formatBytes(k, true)
		if want := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")); out != want {
			t.Fatalf("hex %q parsed to %x, formats as %q, want %q", s, k, out, want)
		}
		again, err := parseKey("KEY", out, true)
		if err != nil || !bytes.Equal(again, k) {
			t.Fatalf("round trip of %q: %x, %v; want %x", out, again, err, k)
		}
		if _, err := hex.DecodeString(out); err != nil {
			t.Fatalf("formatBytes produced bad hex %q", out)
		}
	})
}

func TestProtectNegativeArgs(t *testing.T) {
	ar := arityOf(newApp(nil, nil).rootCmd())
	cases := []struct{ in, want string }{
		{"incr k 5", "incr k 5"},
		{"incr k -5", "incr k -- -5"},
		{"incr k -5 -o json", "incr k -o json -- -5"},
		{"-o json incr k -5", "-o json incr k -- -5"},
		{"cas k -1 x --timeout 3s", "cas k --timeout 3s -- -1 x"},
		{"cas k -1 -2", "cas k -- -1 -2"},
		{"put k -0.5", "put k -- -0.5"},
		{"scan --limit 5 a", "scan --limit 5 a"},
		{"--timeout 5s incr k -3", "--timeout 5s incr k -- -3"},
		{"incr k -- -5", "incr k -- -5"},
		{"incr --stores a,b k -7 --hex", "incr --stores a,b k --hex -- -7"},
		{"put -5 -- x", "put -- -5 x"},
		{"get -k", "get -k"},
		{"", ""},
	}
	for _, tc := range cases {
		got := strings.Join(protectNegativeArgs(strings.Fields(tc.in), ar), " ")
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("protectNegativeArgs(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	if !ar.long["limit"] || ar.long["hex"] || !ar.short['o'] || ar.long["absent"] {
		t.Errorf("flag arity is wrong: %+v", ar)
	}
}

func TestNegativeDeltaEndToEnd(t *testing.T) {
	fake := newFake("n", "10")
	stdout, stderr, code := runFake(t, fake, "incr", "n", "-15")
	if code != 0 || stdout != "-5\n" {
		t.Errorf("incr n -15: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	stdout, _, code = runFake(t, fake, "put", "neg", "-1")
	if code != 0 || string(fake.data["neg"]) != "-1" {
		t.Errorf("put neg -1: exit %d stdout %q, stored %q", code, stdout, fake.data["neg"])
	}
}

func TestScanPaged(t *testing.T) {
	var pairs []string
	for i := range 25 {
		pairs = append(pairs, string(rune('a'+i)), "v")
	}
	fake := newFake(pairs...)
	got, err := scanPaged(t.Context(), fake, nil, nil, 0, 10)
	if err != nil || len(got) != 25 {
		t.Fatalf("scan all: %d pairs, %v", len(got), err)
	}
	if diff := cmp.Diff([]int{10, 10, 10}, fake.scans); diff != "" {
		t.Errorf("page limits (-want +got):\n%s", diff)
	}
	fake.scans = nil
	got, err = scanPaged(t.Context(), fake, []byte("c"), []byte("x"), 12, 5)
	if err != nil || len(got) != 12 || string(got[0].Key) != "c" || string(got[11].Key) != "n" {
		t.Fatalf("scan c..x limit 12: %v, %v", got, err)
	}
	if diff := cmp.Diff([]int{5, 5, 2}, fake.scans); diff != "" {
		t.Errorf("page limits (-want +got):\n%s", diff)
	}
	fake.scans = nil
	// a..j are the keys below END = "j\x00", and the page after "j"
	// starts at "j\x00": no third request.
	got, err = scanPaged(t.Context(), fake, nil, []byte("j\x00"), 0, 5)
	if err != nil || len(got) != 10 {
		t.Fatalf("scan ..j\\x00: %d pairs, %v", len(got), err)
	}
	if diff := cmp.Diff([]int{5, 5}, fake.scans); diff != "" {
		t.Errorf("an exactly full last page stops at END (-want +got):\n%s", diff)
	}
}
