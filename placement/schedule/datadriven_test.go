// Datadriven scheduler scenarios (testdata/*): a cluster described in
// commands, Schedule's decisions rendered with Describe, and the sim as the
// applier. Regenerate the expected output with -rewrite.

package schedule_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/rangekv/rangekv/placement/schedule"
	"github.com/rangekv/rangekv/placement/schedule/sim"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// t0 is the simulated start time of every scenario.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// roundInterval is the simulated time of one round.
const roundInterval = 10 * time.Second

// TestDataDriven runs every file in testdata. Commands:
//
//	init [replicas=N] [labels=zone,host] [max-store-down=D] [max-ops=N]
//	     [max-snaps=N] [max-ops-round=N] [margin=N] [leader-tol=N] [timeout=D]
//	store id=N [labels=k:v,k:v] [state=up|down|removed] [down-for=D]
//	     [capacity=B] [used=B]
//	store-state id=N state=up|down|removed   (down: DownSince = now)
//	range id=N voters=a,b [learners=..] [incoming=..] [demoting=..]
//	     [leader=N] [size=B] [pending=..] [epoch=CONF.VER]
//	bulk-ranges first=N count=N voters=a,b,c [leader=N] [size=B]
//	split id=N                 (bumps the range's version, as a split would)
//	advance D                  (time passes)
//	schedule [keep]            (one Schedule call; keep: start the operators)
//	check-range id=N
//	round [n=N] [quiet]        (sim rounds: apply the next steps of the
//	                           operators in flight, then schedule, then start
//	                           the new operators' first steps)
//	run [max-rounds=N]         (rounds until no operators; then the stores)
//	stores | ranges | inflight
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var c *sim.Cluster
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "init" && c == nil {
				d.Fatalf(t, "init first")
			}
			switch d.Cmd {
			case "init":
				c = sim.New(parseConfig(t, d), t0, roundInterval)
				return ""
			case "store":
				c.AddStore(parseStore(t, d, c.Now()))
				return ""
			case "store-state":
				var id uint64
				d.ScanArgs(t, "id", &id)
				if err := c.SetStoreState(id, parseState(t, d, argStr(t, d, "state", ""))); err != nil {
					d.Fatalf(t, "%v", err)
				}
				return ""
			case "range":
				if err := c.SetRange(parseRange(t, d)); err != nil {
					d.Fatalf(t, "%v", err)
				}
				return ""
			case "bulk-ranges":
				var first, count int
				d.ScanArgs(t, "first", &first)
				d.ScanArgs(t, "count", &count)
				for i := 0; i < count; i++ {
					rv := parseRange(t, d)
					rv.Desc.RangeId = uint64(first + i)
					if err := c.SetRange(rv); err != nil {
						d.Fatalf(t, "%v", err)
					}
				}
				return ""
			case "split":
				var id uint64
				d.ScanArgs(t, "id", &id)
				if err := c.BumpVersion(id); err != nil {
					d.Fatalf(t, "%v", err)
				}
				rv, _ := c.Range(id)
				return describeRange(rv)
			case "advance":
				dur, err := time.ParseDuration(d.CmdArgs[0].Key)
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				c.Advance(dur)
				return ""
			case "schedule":
				v := view(t, c)
				ops := schedule.Schedule(v, c.Now())
				if d.HasArg("keep") {
					for _, op := range ops {
						c.SetInFlight(op)
					}
				}
				return schedule.DescribeAll(ops)
			case "check-range":
				var id uint64
				d.ScanArgs(t, "id", &id)
				op := schedule.CheckRange(view(t, c), id, c.Now())
				if op == nil {
					return "no operator\n"
				}
				return schedule.Describe(op) + "\n"
			case "round":
				n := 1
				d.MaybeScanArgs(t, "n", &n)
				var b strings.Builder
				for i := 0; i < n; i++ {
					rr, err := c.Round()
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					describeRound(&b, rr, d.HasArg("quiet"))
				}
				return b.String()
			case "run":
				maxRounds := 1000
				d.MaybeScanArgs(t, "max-rounds", &maxRounds)
				res, err := c.Run(maxRounds)
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				var b strings.Builder
				fmt.Fprintf(&b, "converged=%t rounds=%d created=%d finished=%d aborted=%d\n",
					res.Converged, res.Rounds, res.Created, res.Finished, res.Aborted)
				b.WriteString(describeStores(c))
				return b.String()
			case "stores":
				return describeStores(c)
			case "ranges":
				var b strings.Builder
				for _, rv := range view(t, c).Ranges() {
					b.WriteString(describeRange(rv))
				}
				return b.String()
			case "inflight":
				return schedule.DescribeAll(c.InFlight())
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

func view(t *testing.T, c *sim.Cluster) *schedule.ClusterView {
	t.Helper()
	v, err := c.View()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func parseConfig(t *testing.T, d *datadriven.TestData) schedule.Config {
	cfg := schedule.DefaultConfig()
	d.MaybeScanArgs(t, "replicas", &cfg.ReplicationFactor)
	if d.HasArg("labels") {
		cfg.LocationLabels = argList(t, d, "labels")
	}
	if s := argStr(t, d, "max-store-down", ""); s != "" {
		cfg.MaxStoreDownTime = parseDur(t, d, s)
	}
	if s := argStr(t, d, "timeout", ""); s != "" {
		cfg.OperatorTimeout = parseDur(t, d, s)
	}
	d.MaybeScanArgs(t, "max-ops", &cfg.MaxOperatorsPerStore)
	d.MaybeScanArgs(t, "max-snaps", &cfg.MaxSnapshotsPerStore)
	d.MaybeScanArgs(t, "max-ops-round", &cfg.MaxOperatorsPerRound)
	d.MaybeScanArgs(t, "margin", &cfg.ReplicaBalanceMargin)
	d.MaybeScanArgs(t, "leader-tol", &cfg.LeaderBalanceTolerance)
	if err := cfg.Validate(); err != nil {
		d.Fatalf(t, "%v", err)
	}
	return cfg
}

func parseStore(t *testing.T, d *datadriven.TestData, now time.Time) schedule.StoreView {
	var s schedule.StoreView
	d.ScanArgs(t, "id", &s.ID)
	s.Address = fmt.Sprintf("s%d", s.ID)
	if d.HasArg("labels") {
		s.Labels = map[string]string{}
		for _, kv := range argList(t, d, "labels") {
			k, v, ok := strings.Cut(kv, ":")
			if !ok {
				d.Fatalf(t, "label %q: want key:value", kv)
			}
			s.Labels[k] = v
		}
	}
	s.State = parseState(t, d, argStr(t, d, "state", "up"))
	if s.State == schedule.StoreDown {
		s.DownSince = now.Add(-parseDur(t, d, argStr(t, d, "down-for", "0s")))
	}
	s.Draining = d.HasArg("draining")
	d.MaybeScanArgs(t, "capacity", &s.CapacityBytes)
	d.MaybeScanArgs(t, "used", &s.UsedBytes)
	return s
}

func parseState(t *testing.T, d *datadriven.TestData, s string) schedule.StoreState {
	switch s {
	case "up":
		return schedule.StoreUp
	case "down":
		return schedule.StoreDown
	case "removed":
		return schedule.StoreRemoved
	}
	d.Fatalf(t, "unknown store state %q", s)
	return 0
}

func parseRange(t *testing.T, d *datadriven.TestData) schedule.RangeView {
	desc := &rangekvpb.RangeDescriptor{Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}}
	d.MaybeScanArgs(t, "id", &desc.RangeId)
	if s := argStr(t, d, "epoch", ""); s != "" {
		cv, ver, ok := strings.Cut(s, ".")
		a, err1 := strconv.ParseUint(cv, 10, 64)
		b, err2 := strconv.ParseUint(ver, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			d.Fatalf(t, "epoch %q: want CONF.VER", s)
		}
		desc.Epoch = &rangekvpb.RangeEpoch{ConfVer: a, Version: b}
	}
	nextID := uint64(1)
	for _, role := range []struct {
		arg  string
		role rangekvpb.ReplicaRole
	}{
		{"voters", rangekvpb.ReplicaRole_VOTER},
		{"learners", rangekvpb.ReplicaRole_LEARNER},
		{"incoming", rangekvpb.ReplicaRole_VOTER_INCOMING},
		{"demoting", rangekvpb.ReplicaRole_VOTER_DEMOTING},
	} {
		if !d.HasArg(role.arg) {
			continue
		}
		for _, s := range argList(t, d, role.arg) {
			id, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				d.Fatalf(t, "%s: %v", role.arg, err)
			}
			desc.Replicas = append(desc.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: nextID, StoreId: id, Role: role.role})
			nextID++
		}
	}
	desc.NextReplicaId = nextID
	rv := schedule.RangeView{Desc: desc, ApproximateSizeBytes: 1 << 20}
	if len(desc.Replicas) > 0 {
		rv.LeaderStoreID = desc.Replicas[0].StoreId
	}
	d.MaybeScanArgs(t, "leader", &rv.LeaderStoreID)
	d.MaybeScanArgs(t, "size", &rv.ApproximateSizeBytes)
	if d.HasArg("pending") {
		for _, s := range argList(t, d, "pending") {
			id, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				d.Fatalf(t, "pending: %v", err)
			}
			rv.PendingStoreIDs = append(rv.PendingStoreIDs, id)
		}
	}
	return rv
}

func argStr(t *testing.T, d *datadriven.TestData, key, def string) string {
	if !d.HasArg(key) {
		return def
	}
	var s string
	d.ScanArgs(t, key, &s)
	return s
}

// argList returns key's values: key=a,b,c or key=(a,b,c).
func argList(t *testing.T, d *datadriven.TestData, key string) []string {
	arg, _ := d.Arg(key)
	var out []string
	for _, v := range arg.Vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func parseDur(t *testing.T, d *datadriven.TestData, s string) time.Duration {
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.Fatalf(t, "%v", err)
	}
	return dur
}

var roleNames = map[rangekvpb.ReplicaRole]string{
	rangekvpb.ReplicaRole_VOTER:          "",
	rangekvpb.ReplicaRole_LEARNER:        "(learner)",
	rangekvpb.ReplicaRole_VOTER_INCOMING: "(incoming)",
	rangekvpb.ReplicaRole_VOTER_DEMOTING: "(demoting)",
}

// describeRange renders a range: "r1 epoch=c3,v1 leader=s1: s1 s2 s4(learner)".
func describeRange(rv schedule.RangeView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "r%d epoch=%s leader=s%d:", rv.ID(), rv.Epoch(), rv.LeaderStoreID)
	reps := slices.Clone(rv.Desc.GetReplicas())
	slices.SortFunc(reps, func(a, b *rangekvpb.ReplicaDescriptor) int { return int(a.GetStoreId()) - int(b.GetStoreId()) })
	for _, r := range reps {
		fmt.Fprintf(&b, " s%d%s", r.GetStoreId(), roleNames[r.GetRole()])
		if rv.IsPending(r.GetStoreId()) {
			b.WriteString("(pending)")
		}
	}
	b.WriteByte('\n')
	return b.String()
}

func describeStores(c *sim.Cluster) string {
	var b strings.Builder
	for _, sc := range c.Counts() {
		fmt.Fprintf(&b, "s%d %s: replicas=%d voters=%d leaders=%d\n", sc.ID, sc.State, sc.Replicas, sc.Voters, sc.Leaders)
	}
	return b.String()
}

func describeRound(b *strings.Builder, rr sim.RoundResult, quiet bool) {
	fmt.Fprintf(b, "round %d:", rr.Round)
	if quiet {
		fmt.Fprintf(b, " applied=%d finished=%d aborted=%d created=%d started=%d\n", len(rr.Applied), len(rr.Finished), len(rr.Aborted), len(rr.Created), len(rr.Started))
		return
	}
	b.WriteByte('\n')
	for _, s := range rr.Applied {
		fmt.Fprintf(b, "  applied  %s\n", s)
	}
	for _, op := range rr.Finished {
		fmt.Fprintf(b, "  finished %s\n", schedule.Describe(op))
	}
	for _, op := range rr.Aborted {
		fmt.Fprintf(b, "  aborted  %s\n", schedule.Describe(op))
	}
	for _, op := range rr.Created {
		fmt.Fprintf(b, "  created  %s\n", schedule.Describe(op))
	}
	for _, s := range rr.Started {
		fmt.Fprintf(b, "  started  %s\n", s)
	}
}
