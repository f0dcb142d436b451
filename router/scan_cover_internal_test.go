// Scope: a fanned-out scan covers its whole span even when placement's
// routes leave gaps (a split half-recorded).

package router

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func TestCoverSpanFillsGaps(t *testing.T) {
	route := func(start, end string) *rangekvpb.RouteInfo {
		return &rangekvpb.RouteInfo{Descriptor_: &rangekvpb.RangeDescriptor{StartKey: []byte(start), EndKey: []byte(end)}}
	}
	show := func(ps [][2][]byte) []string {
		var out []string
		for _, p := range ps {
			out = append(out, fmt.Sprintf("[%s,%s)", p[0], p[1]))
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		start, end string
		routes     []*rangekvpb.RouteInfo
		want       []string
	}{
		{"contiguous", "", "", []*rangekvpb.RouteInfo{route("", "k"), route("k", "")}, []string{"[,k)", "[k,)"}},
		// Seed 11804 of the simulation: placement had recorded the later
		// split of range 1 at k004 (ranges [,k004) and [k004,k0121)) but
		// not yet the earlier one at k0121, so no route covered
		// [k0121, end); the scan returned nothing past k0121.
		{"routes stop short of an open end", "k", "", []*rangekvpb.RouteInfo{route("", "k004"), route("k004", "k0121")}, []string{"[k,k004)", "[k004,k0121)", "[k0121,)"}},
		{"gap in the middle", "a", "z", []*rangekvpb.RouteInfo{route("", "c"), route("m", "")}, []string{"[a,c)", "[c,m)", "[m,z)"}},
		{"gap before the first", "a", "z", []*rangekvpb.RouteInfo{route("c", "")}, []string{"[a,c)", "[c,z)"}},
		{"routes beyond end", "a", "d", []*rangekvpb.RouteInfo{route("", "b"), route("b", "f"), route("f", "")}, []string{"[a,b)", "[b,d)"}},
		{"gap reaching past end", "a", "d", []*rangekvpb.RouteInfo{route("", "b"), route("x", "")}, []string{"[a,b)", "[b,d)"}},
		{"no routes", "a", "d", nil, []string{"[a,d)"}},
	} {
		if diff := cmp.Diff(tc.want, show(coverSpan([]byte(tc.start), []byte(tc.end), tc.routes))); diff != "" {
			t.Errorf("%s: pieces (-want +got):\n%s", tc.name, diff)
		}
	}
}
