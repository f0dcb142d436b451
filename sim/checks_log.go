// The log's growth per membership change: between two membership changes
// (conf change entries) a range's log holds at most maxChangeEmpties empty
// entries that are not the first entry of their term. raft turns a conf
// change proposed while an earlier one is unapplied into such an entry,
// so a leader that proposes leave-joint on every pass while joint (issue
// 15 item 4) appends one per pass until the leave applies: after the
// leave-joint entry, before the next membership change. A new leader's
// first entry (empty too) is not counted. Fed by entries.record with the
// first apply of each position of each range.

package sim

import (
	"fmt"

	raftpb "go.etcd.io/raft/v3/raftpb"
)

// maxChangeEmpties bounds the empty entries, other than a term's first,
// between two membership changes of a range. The store proposes
// leave-joint once per joint configuration and leader term, and again
// after two election timeouts still joint (store/replica_membership.go);
// raft also empties a membership change placement proposes while another
// is unapplied. The most the 200 CI seeds and the soaks recorded in
// docs/reliability.md saw between two changes is in the table there;
// the bound keeps a margin above it.
const maxChangeEmpties = 4

// logGrowth follows each range's log, as first applied. Its methods run
// under entries.mu.
type logGrowth struct {
	ranges map[uint64]*rangeLog
	// windows counts the stretches between two membership changes
	// closed, extra their counted empties, worst the most in one.
	windows, extra, worst int
}

// rangeLog is one range's position in its log.
type rangeLog struct {
	index, term uint64 // the last entry seen
	since       uint64 // the index of the last membership change (0: none yet)
	empties     int    // empty entries not first of their term since
}

// saw notes that e is the next entry of rangeID's log (every replica
// applies the entries in order, so their first applies come in order;
// a gap, from a log every replica got by snapshot, makes the next entry
// count as its term's first). It returns a violation, or "".
func (g *logGrowth) saw(rangeID uint64, e *raftpb.Entry) string {
	if g.ranges == nil {
		g.ranges = map[uint64]*rangeLog{}
	}
	rl := g.ranges[rangeID]
	if rl == nil {
		rl = &rangeLog{}
		g.ranges[rangeID] = rl
	}
	first := e.GetIndex() != rl.index+1 || e.GetTerm() != rl.term
	rl.index, rl.term = e.GetIndex(), e.GetTerm()
	switch e.GetType() {
	case raftpb.EntryNormal:
		if len(e.GetData()) > 0 || first {
			return ""
		}
		rl.empties++
		if rl.empties == maxChangeEmpties+1 {
			return fmt.Sprintf("log growth: range %d appended %d empty entries (not a term's first) since its membership change at index %d, the last at index %d term %d; at most %d expected",
				rangeID, rl.empties, rl.since, e.GetIndex(), e.GetTerm(), maxChangeEmpties)
		}
	case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
		g.close(rl)
		rl.since = e.GetIndex()
	}
	return ""
}

// close ends rl's stretch since its last membership change and counts it.
func (g *logGrowth) close(rl *rangeLog) {
	g.windows++
	g.extra += rl.empties
	g.worst = max(g.worst, rl.empties)
	rl.empties = 0
}

// countLogGrowth adds the run's stretches between membership changes to
// its counts: how many, their counted empties, and the run's worst (one
// count per run, under its number).
func (w *world) countLogGrowth() {
	es := w.entries
	es.mu.Lock()
	defer es.mu.Unlock()
	g := &es.log
	for _, rl := range g.ranges {
		g.close(rl)
	}
	w.counts["log stretches"] += g.windows
	w.counts["log stretch empties"] += g.extra
	w.counts[fmt.Sprintf("log worst stretch %d", g.worst)]++
	// The run's most steps at one simulated instant, rounded up to a
	// power of two (maxStepsAtInstant's margin).
	n := 1
	for n < w.mostAtInstant {
		n *= 2
	}
	w.counts[fmt.Sprintf("steps at one instant, most <=%d", n)]++
}
