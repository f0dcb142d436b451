// Output of the cluster commands (cluster status, store list, range list,
// range show, range split, operators): aligned tables for people and JSON
// documents for scripts. Pure formatting over an io.Writer, golden-tested
// in admin_test.go.
//
// The JSON documents (one per command; keys and values as strings, or hex
// with --hex; an empty "start" is the first key and an empty "end" the end
// of the key space; times are RFC 3339 UTC):
//
//	cluster status   {"cluster_id": "hex", "bootstrapped": B, "healthy": B,
//	                  "members": [member], "stores": [store], "stores_up": N,
//	                  "stores_down": N, "range_count": N,
//	                  "under_replicated": [ID], "leaderless": [ID],
//	                  "operators": [operator]}
//	store list       {"stores": [store]}
//	range list       {"ranges": [range]}
//	range show       {"range": range, "replicas": [replica status],
//	                  "operators": [operator]}
//	range split      {"left": range, "right": range}
//	range move, range transfer-leader
//	                 {"operator": operator}
//	rebalance        {"dry_run": B, "operators": [operator]}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// humanBytes renders a byte count with binary units: 0 B, 512 B, 1.5 KiB.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// displayKey renders a range boundary for a table: -inf / +inf for the
// ends of the key space, hex with --hex, quoted when it holds spaces or
// unprintable characters.
func (p *printer) displayKey(b []byte, isEnd bool) string {
	if len(b) == 0 {
		if isEnd {
			return "+inf"
		}
		return "-inf"
	}
	if p.hex {
		return formatBytes(b, true)
	}
	s := string(b)
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 ||
		s == "-inf" || s == "+inf" {
		return strconv.Quote(s)
	}
	return s
}

func roleName(r rangekvpb.ReplicaRole) string {
	switch r {
	case rangekvpb.ReplicaRole_VOTER:
		return "voter"
	case rangekvpb.ReplicaRole_LEARNER:
		return "learner"
	case rangekvpb.ReplicaRole_VOTER_INCOMING:
		return "voter-incoming"
	case rangekvpb.ReplicaRole_VOTER_DEMOTING:
		return "voter-demoting"
	}
	return strings.ToLower(r.String())
}

func storeStateName(s rangekvpb.StoreState) string {
	if s == rangekvpb.StoreState_STORE_DOWN {
		return "down"
	}
	return "up"
}

// raftStateName turns "StateLeader" into "leader".
func raftStateName(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ToLower(strings.TrimPrefix(s, "State"))
}

func epochCell(e *rangekvpb.RangeEpoch) string {
	return fmt.Sprintf("v%d/c%d", e.GetVersion(), e.GetConfVer())
}

// replicasCell renders "1*,2,3,4(learner)": store IDs, * on the leader's.
func replicasCell(d *rangekvpb.RangeDescriptor, leaderStore uint64) string {
	parts := make([]string, 0, len(d.Replicas))
	for _, r := range d.Replicas {
		s := strconv.FormatUint(r.StoreId, 10)
		if r.StoreId == leaderStore {
			s += "*"
		}
		if r.Role != rangekvpb.ReplicaRole_VOTER {
			s += "(" + roleName(r.Role) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

func timeString(unixMs int64) string {
	if unixMs <= 0 {
		return ""
	}
	return time.UnixMilli(unixMs).UTC().Format(time.RFC3339Nano)
}

func idList(ids []uint64) string {
	if len(ids) == 0 {
		return "none"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ", ")
}

func nonNil(ids []uint64) []uint64 {
	if ids == nil {
		return []uint64{}
	}
	return ids
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// JSON documents.

type epochJSON struct {
	ConfVer uint64 `json:"conf_ver"`
	Version uint64 `json:"version"`
}

type replicaJSON struct {
	ReplicaID uint64 `json:"replica_id"`
	StoreID   uint64 `json:"store_id"`
	Role      string `json:"role"`
	Leader    bool   `json:"leader"`
}

type rangeJSON struct {
	ID            uint64        `json:"id"`
	Start         string        `json:"start"`
	End           string        `json:"end"`
	Epoch         epochJSON     `json:"epoch"`
	Replicas      []replicaJSON `json:"replicas"`
	LeaderStoreID uint64        `json:"leader_store_id"`
	SizeBytes     *uint64       `json:"size_bytes,omitempty"`
}

func (p *printer) rangeDoc(d *rangekvpb.RangeDescriptor, leaderStore uint64, size *uint64) rangeJSON {
	doc := rangeJSON{ID: d.RangeId, Start: p.str(d.StartKey), End: p.str(d.EndKey),
		Epoch:    epochJSON{ConfVer: d.GetEpoch().GetConfVer(), Version: d.GetEpoch().GetVersion()},
		Replicas: []replicaJSON{}, LeaderStoreID: leaderStore, SizeBytes: size}
	for _, r := range d.Replicas {
		doc.Replicas = append(doc.Replicas, replicaJSON{ReplicaID: r.ReplicaId, StoreID: r.StoreId, Role: roleName(r.Role), Leader: leaderStore != 0 && r.StoreId == leaderStore})
	}
	return doc
}

type operatorJSON struct {
	ID          uint64   `json:"id"`
	RangeID     uint64   `json:"range_id"`
	Kind        string   `json:"kind"`
	Steps       []string `json:"steps"`
	CurrentStep uint32   `json:"current_step"`
	State       string   `json:"state"`
	Reason      string   `json:"reason,omitempty"`
	Created     string   `json:"created,omitempty"`
	Finished    string   `json:"finished,omitempty"`
}

func operatorDoc(o *rangekvpb.OperatorInfo) operatorJSON {
	steps := o.Steps
	if steps == nil {
		steps = []string{}
	}
	return operatorJSON{ID: o.Id, RangeID: o.RangeId, Kind: o.Kind, Steps: steps, CurrentStep: o.CurrentStep,
		State: o.State, Reason: o.Reason, Created: timeString(o.CreatedUnixMs), Finished: timeString(o.FinishedUnixMs)}
}

func operatorDocs(ops []*rangekvpb.OperatorInfo) []operatorJSON {
	out := make([]operatorJSON, 0, len(ops))
	for _, o := range ops {
		out = append(out, operatorDoc(o))
	}
	return out
}

type storeJSON struct {
	ID             uint64            `json:"id"`
	Address        string            `json:"address"`
	State          string            `json:"state"`
	Replicas       uint32            `json:"replicas"`
	Leaders        uint32            `json:"leaders"`
	UsedBytes      uint64            `json:"used_bytes"`
	CapacityBytes  uint64            `json:"capacity_bytes"`
	AvailableBytes uint64            `json:"available_bytes"`
	Labels         map[string]string `json:"labels"`
	LastHeartbeat  string            `json:"last_heartbeat,omitempty"`
	DownSince      string            `json:"down_since,omitempty"`
}

func storeDoc(s *rangekvpb.StoreInfo) storeJSON {
	labels := map[string]string{}
	for k, v := range s.GetStore().GetLabels() {
		labels[k] = v
	}
	st := s.GetStats()
	return storeJSON{ID: s.GetStore().GetStoreId(), Address: s.GetStore().GetAddress(), State: storeStateName(s.State),
		Replicas: st.GetReplicaCount(), Leaders: st.GetLeaderCount(), UsedBytes: st.GetUsed(), CapacityBytes: st.GetCapacity(),
		AvailableBytes: st.GetAvailable(), Labels: labels, LastHeartbeat: timeString(s.LastHeartbeatUnixMs), DownSince: timeString(s.DownSinceUnixMs)}
}

func labelsCell(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// cluster status

type memberJSON struct {
	ID        uint64 `json:"id"`
	Address   string `json:"address"`
	Leader    bool   `json:"leader"`
	Reachable bool   `json:"reachable"`
}

type clusterJSON struct {
	ClusterID       string         `json:"cluster_id"`
	Bootstrapped    bool           `json:"bootstrapped"`
	Healthy         bool           `json:"healthy"`
	Members         []memberJSON   `json:"members"`
	Stores          []storeJSON    `json:"stores"`
	StoresUp        int            `json:"stores_up"`
	StoresDown      int            `json:"stores_down"`
	RangeCount      uint32         `json:"range_count"`
	UnderReplicated []uint64       `json:"under_replicated"`
	Leaderless      []uint64       `json:"leaderless"`
	Operators       []operatorJSON `json:"operators"`
}

// clusterHealthy: bootstrapped, every member reachable, every store up,
// no unhealthy range.
func clusterHealthy(st *rangekvpb.ClusterStatusResponse) (bool, int, int) {
	up, down := 0, 0
	for _, s := range st.Stores {
		if s.State == rangekvpb.StoreState_STORE_DOWN {
			down++
		} else {
			up++
		}
	}
	ok := st.Bootstrapped && down == 0 && len(st.UnderReplicated) == 0 && len(st.Leaderless) == 0
	for _, m := range st.Members {
		ok = ok && m.Reachable
	}
	return ok, up, down
}

func (p *printer) printClusterStatus(st *rangekvpb.ClusterStatusResponse, now time.Time) error {
	healthy, up, down := clusterHealthy(st)
	if p.json {
		doc := clusterJSON{ClusterID: fmt.Sprintf("%016x", st.ClusterId), Bootstrapped: st.Bootstrapped, Healthy: healthy,
			Members: []memberJSON{}, Stores: []storeJSON{}, StoresUp: up, StoresDown: down, RangeCount: st.RangeCount,
			UnderReplicated: nonNil(st.UnderReplicated), Leaderless: nonNil(st.Leaderless), Operators: operatorDocs(st.Operators)}
		for _, m := range st.Members {
			doc.Members = append(doc.Members, memberJSON{ID: m.Id, Address: m.Address, Leader: m.Leader, Reachable: m.Reachable})
		}
		for _, s := range st.Stores {
			doc.Stores = append(doc.Stores, storeDoc(s))
		}
		return p.emitJSON(doc)
	}
	w := p.w
	health := "healthy"
	if !healthy {
		health = "DEGRADED"
	}
	boot := "bootstrapped"
	if !st.Bootstrapped {
		boot = "not bootstrapped: no store has joined yet"
	}
	fmt.Fprintf(w, "cluster %016x (%s): %s\n", st.ClusterId, boot, health)
	fmt.Fprintf(w, "\nplacement members: %d\n", len(st.Members))
	tw := newTable(w)
	fmt.Fprintln(tw, "  ID\tADDRESS\tROLE\tREACHABLE")
	for _, m := range st.Members {
		role, reach := "follower", "yes"
		if m.Leader {
			role = "leader"
		}
		if !m.Reachable {
			reach = "NO"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", m.Id, m.Address, role, reach)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nstores: %d up, %d down\n", up, down)
	if len(st.Stores) > 0 {
		tw = newTable(w)
		fmt.Fprintln(tw, "  ID\tADDRESS\tSTATE\tREPLICAS\tLEADERS")
		for _, s := range st.Stores {
			state := storeStateName(s.State)
			if s.State == rangekvpb.StoreState_STORE_DOWN {
				state = "DOWN"
				if s.DownSinceUnixMs > 0 {
					state += " for " + now.Sub(time.UnixMilli(s.DownSinceUnixMs)).Round(time.Second).String()
				}
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%d\n", s.GetStore().GetStoreId(), s.GetStore().GetAddress(), state,
				s.GetStats().GetReplicaCount(), s.GetStats().GetLeaderCount())
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nranges: %d\n", st.RangeCount)
	fmt.Fprintf(w, "  under-replicated: %s\n", idList(st.UnderReplicated))
	fmt.Fprintf(w, "  leaderless:       %s\n", idList(st.Leaderless))
	fmt.Fprintf(w, "\noperators running: %d\n", len(st.Operators))
	if len(st.Operators) > 0 {
		return p.operatorTable(st.Operators, now, "  ")
	}
	return nil
}

// store list

func (p *printer) printStores(stores []*rangekvpb.StoreInfo) error {
	if p.json {
		doc := struct {
			Stores []storeJSON `json:"stores"`
		}{Stores: []storeJSON{}}
		for _, s := range stores {
			doc.Stores = append(doc.Stores, storeDoc(s))
		}
		return p.emitJSON(doc)
	}
	tw := newTable(p.w)
	fmt.Fprintln(tw, "ID\tADDRESS\tSTATE\tREPLICAS\tLEADERS\tUSED\tLABELS")
	for _, s := range stores {
		st := s.GetStats()
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n", s.GetStore().GetStoreId(), s.GetStore().GetAddress(), storeStateName(s.State),
			st.GetReplicaCount(), st.GetLeaderCount(), humanBytes(st.GetUsed()), labelsCell(s.GetStore().GetLabels()))
	}
	return tw.Flush()
}

// range list

// rangeRow is a range with its size when known.
type rangeRow struct {
	route *rangekvpb.RouteInfo
	size  *uint64
}

// rangeStream prints range list output a page at a time: the table's
// header once, with columns as wide as the widest cell seen so far (one
// page prints as the other tables do), or one JSON document
// {"ranges": [...]} written element by element (the same bytes as
// encoding the whole list at once).
type rangeStream struct {
	p       *printer
	started bool
	n       int
	widths  []int
}

func (p *printer) rangeStream() *rangeStream { return &rangeStream{p: p} }

// rows prints one page.
func (s *rangeStream) rows(rows []rangeRow) error {
	p := s.p
	if p.json {
		var b bytes.Buffer
		if !s.started {
			b.WriteString(`{"ranges":[`)
		}
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		for _, r := range rows {
			if s.n > 0 {
				b.WriteByte(',')
			}
			if err := enc.Encode(p.rangeDoc(r.route.Descriptor_, r.route.LeaderStoreId, r.size)); err != nil {
				return err
			}
			b.Truncate(b.Len() - 1) // the encoder's newline
			s.n++
		}
		s.started = true
		_, err := p.w.Write(b.Bytes())
		return err
	}
	var lines [][]string
	if !s.started {
		lines = append(lines, []string{"ID", "START", "END", "EPOCH", "REPLICAS", "SIZE"})
		s.started = true
	}
	for _, r := range rows {
		d := r.route.Descriptor_
		size := "?"
		if r.size != nil {
			size = humanBytes(*r.size)
		}
		lines = append(lines, []string{strconv.FormatUint(d.RangeId, 10), p.displayKey(d.StartKey, false), p.displayKey(d.EndKey, true),
			epochCell(d.Epoch), replicasCell(d, r.route.LeaderStoreId), size})
		s.n++
	}
	for _, l := range lines {
		for i, c := range l {
			if i == len(s.widths) {
				s.widths = append(s.widths, 0)
			}
			s.widths[i] = max(s.widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, l := range lines {
		for i, c := range l {
			b.WriteString(c)
			if i < len(l)-1 {
				b.WriteString(strings.Repeat(" ", s.widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

// end finishes the output (the JSON document's closing, or the header of
// an empty table).
func (s *rangeStream) end() error {
	if s.p.json {
		if !s.started {
			_, err := io.WriteString(s.p.w, `{"ranges":[`)
			if err != nil {
				return err
			}
		}
		_, err := io.WriteString(s.p.w, "]}\n")
		return err
	}
	if !s.started {
		return s.rows(nil)
	}
	return nil
}

// range show

// replicaReport is one replica of range show: its descriptor entry, its
// store's address and status (or why it could not be read).
type replicaReport struct {
	desc   *rangekvpb.ReplicaDescriptor
	addr   string
	status *rangekvpb.ReplicaStatus
	err    error
}

type replicaStatusJSON struct {
	ReplicaID    uint64 `json:"replica_id"`
	StoreID      uint64 `json:"store_id"`
	Address      string `json:"address"`
	Role         string `json:"role"`
	Leader       bool   `json:"leader"`
	RaftState    string `json:"raft_state,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	FirstIndex   uint64 `json:"first_index,omitempty"`
	LastIndex    uint64 `json:"last_index,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	LogEntries   uint64 `json:"log_entries,omitempty"`
	Quiescent    bool   `json:"quiescent"`
	SizeBytes    uint64 `json:"size_bytes,omitempty"`
	Error        string `json:"error,omitempty"`
}

// logEntries is the number of entries in a replica's log.
func logEntries(s *rangekvpb.ReplicaStatus) uint64 {
	if s.LastIndex < s.FirstIndex {
		return 0
	}
	return s.LastIndex - s.FirstIndex + 1
}

func (p *printer) printRangeShow(ri *rangekvpb.RouteInfo, reps []replicaReport, ops []*rangekvpb.OperatorInfo, now time.Time) error {
	d := ri.Descriptor_
	if p.json {
		var size *uint64
		for _, r := range reps {
			if r.status != nil && r.desc.StoreId == ri.LeaderStoreId {
				s := r.status.ApproximateSize
				size = &s
			}
		}
		doc := struct {
			Range     rangeJSON           `json:"range"`
			Replicas  []replicaStatusJSON `json:"replicas"`
			Operators []operatorJSON      `json:"operators"`
		}{Range: p.rangeDoc(d, ri.LeaderStoreId, size), Replicas: []replicaStatusJSON{}, Operators: operatorDocs(ops)}
		for _, r := range reps {
			rj := replicaStatusJSON{ReplicaID: r.desc.ReplicaId, StoreID: r.desc.StoreId, Address: r.addr, Role: roleName(r.desc.Role),
				Leader: r.desc.StoreId == ri.LeaderStoreId}
			if s := r.status; s != nil {
				rj.RaftState, rj.Term = raftStateName(s.RaftState), s.Term
				rj.FirstIndex, rj.LastIndex, rj.CommitIndex, rj.AppliedIndex = s.FirstIndex, s.LastIndex, s.CommitIndex, s.AppliedIndex
				rj.LogEntries, rj.Quiescent, rj.SizeBytes = logEntries(s), s.Quiescent, s.ApproximateSize
			}
			if r.err != nil {
				rj.Error = errorLine(r.err)
			}
			doc.Replicas = append(doc.Replicas, rj)
		}
		return p.emitJSON(doc)
	}
	w := p.w
	fmt.Fprintf(w, "range %d  [%s, %s)  epoch %s (version %d, conf_ver %d)\n", d.RangeId, p.displayKey(d.StartKey, false),
		p.displayKey(d.EndKey, true), epochCell(d.Epoch), d.GetEpoch().GetVersion(), d.GetEpoch().GetConfVer())
	if ri.LeaderStoreId != 0 {
		fmt.Fprintf(w, "leader: store %d\n", ri.LeaderStoreId)
	} else {
		fmt.Fprintln(w, "leader: unknown to placement")
	}
	fmt.Fprintln(w, "\nreplicas:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  REPLICA\tSTORE\tADDRESS\tROLE\tRAFT\tTERM\tLAST\tCOMMIT\tAPPLIED\tLOG\tQUIESCENT\tSIZE")
	var errs []string
	for _, r := range reps {
		store := strconv.FormatUint(r.desc.StoreId, 10)
		if r.desc.StoreId == ri.LeaderStoreId {
			store += "*"
		}
		addr := r.addr
		if addr == "" {
			addr = "?"
		}
		if s := r.status; s != nil {
			q := "no"
			if s.Quiescent {
				q = "yes"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", r.desc.ReplicaId, store, addr, roleName(r.desc.Role),
				raftStateName(s.RaftState), s.Term, s.LastIndex, s.CommitIndex, s.AppliedIndex, logEntries(s), q, humanBytes(s.ApproximateSize))
			continue
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t?\t?\t?\t?\t?\t?\t?\t?\n", r.desc.ReplicaId, store, addr, roleName(r.desc.Role))
		if r.err != nil {
			errs = append(errs, fmt.Sprintf("  store %d: %s", r.desc.StoreId, errorLine(r.err)))
		}
	}
	tw.Flush()
	for _, e := range errs {
		fmt.Fprintln(w, e)
	}
	fmt.Fprintln(w, "\nrecent operators:")
	if len(ops) == 0 {
		fmt.Fprintln(w, "  none")
		return nil
	}
	return p.operatorTable(ops, now, "  ")
}

// range split

func (p *printer) printSplit(res splitResult) error {
	if p.json {
		return p.emitJSON(struct {
			Left  rangeJSON `json:"left"`
			Right rangeJSON `json:"right"`
		}{p.rangeDoc(res.left, res.leftLead, nil), p.rangeDoc(res.right, res.rightLead, nil)})
	}
	tw := newTable(p.w)
	fmt.Fprintln(tw, "\tID\tSTART\tEND\tEPOCH\tREPLICAS")
	for _, x := range []struct {
		name string
		d    *rangekvpb.RangeDescriptor
		lead uint64
	}{{"left", res.left, res.leftLead}, {"right", res.right, res.rightLead}} {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", x.name, x.d.RangeId, p.displayKey(x.d.StartKey, false), p.displayKey(x.d.EndKey, true),
			epochCell(x.d.Epoch), replicasCell(x.d, x.lead))
	}
	return tw.Flush()
}

// operators

// stepCell renders an operator's progress: "2/4 promote learner on store 4".
func stepCell(o *rangekvpb.OperatorInfo) string {
	n := len(o.Steps)
	if n == 0 {
		return "-"
	}
	if int(o.CurrentStep) >= n {
		return fmt.Sprintf("%d/%d done", n, n)
	}
	return fmt.Sprintf("%d/%d %s", o.CurrentStep+1, n, o.Steps[o.CurrentStep])
}

// ageCell: how long an operator ran (finished) or has been running.
func ageCell(o *rangekvpb.OperatorInfo, now time.Time) string {
	if o.CreatedUnixMs <= 0 {
		return "-"
	}
	end := now
	if o.FinishedUnixMs > 0 {
		end = time.UnixMilli(o.FinishedUnixMs)
	}
	d := end.Sub(time.UnixMilli(o.CreatedUnixMs))
	if d < 0 {
		d = 0
	}
	return d.Round(100 * time.Millisecond).String()
}

func (p *printer) operatorTable(ops []*rangekvpb.OperatorInfo, now time.Time, indent string) error {
	tw := newTable(p.w)
	fmt.Fprintf(tw, "%sID\tRANGE\tKIND\tSTATE\tSTEP\tTIME\tREASON\n", indent)
	for _, o := range ops {
		reason := o.Reason
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s%d\t%d\t%s\t%s\t%s\t%s\t%s\n", indent, o.Id, o.RangeId, o.Kind, o.State, stepCell(o), ageCell(o, now), reason)
	}
	return tw.Flush()
}

// printOperator prints one operator (range move, range transfer-leader).
func (p *printer) printOperator(o *rangekvpb.OperatorInfo, now time.Time) error {
	if p.json {
		return p.emitJSON(struct {
			Operator operatorJSON `json:"operator"`
		}{operatorDoc(o)})
	}
	return p.operatorTable([]*rangekvpb.OperatorInfo{o}, now, "")
}

// printRebalance prints the operators of a rebalance.
func (p *printer) printRebalance(ops []*rangekvpb.OperatorInfo, dryRun bool, now time.Time) error {
	if p.json {
		return p.emitJSON(struct {
			DryRun    bool           `json:"dry_run"`
			Operators []operatorJSON `json:"operators"`
		}{dryRun, operatorDocs(ops)})
	}
	if len(ops) == 0 {
		_, err := fmt.Fprintln(p.w, "nothing to do: the cluster is balanced")
		return err
	}
	if dryRun {
		fmt.Fprintf(p.w, "%d operator(s) the scheduler would start now (dry run: none started):\n", len(ops))
		tw := newTable(p.w)
		fmt.Fprintln(tw, "  RANGE\tKIND\tSTEPS")
		for _, o := range ops {
			fmt.Fprintf(tw, "  %d\t%s\t%s\n", o.RangeId, o.Kind, strings.Join(o.Steps, ", "))
		}
		return tw.Flush()
	}
	return p.operatorTable(ops, now, "")
}
