// Tests of the page limits and tokens: round trips, and the errors a
// caller sees for a bad limit or token.

package paging

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		in   uint32
		want int
	}{{0, DefaultLimit}, {1, 1}, {MaxLimit, MaxLimit}} {
		got, err := Limit(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Limit(%d) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	_, err := Limit(MaxLimit + 1)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "limit: 10001 is above the maximum of 10000") {
		t.Errorf("Limit(10001): %v, want InvalidArgument naming limit and the maximum", err)
	}
}

func TestTokens(t *testing.T) {
	for _, id := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
		got, err := ParseRangeIDToken(RangeIDToken(id))
		if err != nil || got != id {
			t.Errorf("range ID %d: round trip gave %d, %v", id, got, err)
		}
	}
	if id, err := ParseRangeIDToken(""); id != 0 || err != nil {
		t.Errorf(`ParseRangeIDToken(""): %d, %v; want 0, nil`, id, err)
	}
	for _, k := range []string{"a", "r000001", "\x00\xff"} {
		got, err := ParseKeyToken(KeyToken([]byte(k)))
		if err != nil || string(got) != k {
			t.Errorf("key %q: round trip gave %q, %v", k, got, err)
		}
	}
	for _, bad := range []string{"x", "!!!", KeyToken([]byte("k")), RangeIDToken(7)[:5]} {
		if _, err := ParseRangeIDToken(bad); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token:") {
			t.Errorf("ParseRangeIDToken(%q): %v, want InvalidArgument naming page_token", bad, err)
		}
	}
	for _, bad := range []string{"", "x", RangeIDToken(7)} {
		if _, err := ParseKeyToken(bad); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token:") {
			t.Errorf("ParseKeyToken(%q): %v, want InvalidArgument naming page_token", bad, err)
		}
	}
}
