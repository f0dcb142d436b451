package router

// Datadriven range cache scenarios (testdata/range_cache). Commands:
//
//	insert id=N [start=K] [end=K] [ver=N] [conf=N] [next=N] stores=a,b,c [leader=S]
//	                  caches a descriptor; prints "refused" or the cache
//	set-leader id=N store=S [replica=R]
//	                  with replica: a NotLeader hint naming replica R
//	drop id=N
//	lookup key=K      prints the range holding K, or "miss"
//
// Regenerate the expected output with -rewrite.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

func TestRangeCacheDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var c rangeCache
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(name, def string) string {
				for _, a := range d.CmdArgs {
					if a.Key == name {
						return strings.Join(a.Vals, ",")
					}
				}
				return def
			}
			num := func(name, def string) uint64 {
				n, err := strconv.ParseUint(arg(name, def), 10, 64)
				if err != nil {
					d.Fatalf(t, "%s: %v", name, err)
				}
				return n
			}
			switch d.Cmd {
			case "insert":
				desc := &rangekvpb.RangeDescriptor{RangeId: num("id", "0"), StartKey: []byte(arg("start", "")), EndKey: []byte(arg("end", "")),
					Epoch: &rangekvpb.RangeEpoch{Version: num("ver", "1"), ConfVer: num("conf", "1")}, NextReplicaId: num("next", "0")}
				for i, s := range strings.Split(arg("stores", "1"), ",") {
					id, err := strconv.ParseUint(s, 10, 64)
					if err != nil {
						d.Fatalf(t, "stores: %v", err)
					}
					desc.Replicas = append(desc.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: uint64(i + 1), StoreId: id})
				}
				if !c.insert(desc, leader{storeID: num("leader", "0")}) {
					return "refused\n" + c.describe()
				}
				return c.describe()
			case "set-leader":
				set := c.setLeader
				if r := num("replica", "0"); r != 0 {
					set = func(id uint64, l leader) bool { return c.setNewerLeader(id, r, l) }
				}
				if !set(num("id", "0"), leader{storeID: num("store", "0")}) {
					return "refused\n" + c.describe()
				}
				return c.describe()
			case "drop":
				c.drop(num("id", "0"))
				return c.describe()
			case "lookup":
				e, ok := c.lookup([]byte(arg("key", "")))
				if !ok {
					return "miss\n"
				}
				return fmt.Sprintf("%s leader=%s\n", describeDesc(e.desc), e.leader)
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}
