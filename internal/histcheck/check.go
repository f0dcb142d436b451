package histcheck

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is the result of checking a history.
type Verdict struct {
	// Ops counts every recorded operation; OK, Failed and Unknown by
	// outcome.
	Ops     int `json:"ops"`
	OK      int `json:"ok"`
	Failed  int `json:"failed"`
	Unknown int `json:"unknown"`
	// Keys is the number of per-key checks run.
	Keys int `json:"keys_checked"`
	// Violations are the keys whose history is not linearizable.
	Violations []string `json:"violations"`
	// TimedOut are the keys whose check ran out of time: not a pass.
	TimedOut []string `json:"timed_out"`
	// LostWrites are keys whose last acknowledged write (one that
	// completed before every other write to the key started, with no
	// write of unknown outcome) is not what a later read returned.
	LostWrites []string `json:"lost_writes"`
	// FinalChecked counts the keys the lost-write check applied to.
	FinalChecked int `json:"final_reads_checked"`
}

// Linearizable is true when every key passed its check in time and no
// acknowledged write was lost.
func (v Verdict) Linearizable() bool {
	return len(v.Violations) == 0 && len(v.TimedOut) == 0 && len(v.LostWrites) == 0
}

// Violated is true when some key's history is definitely wrong (a
// violation or a lost write), as opposed to inconclusive (timeouts).
func (v Verdict) Violated() bool { return len(v.Violations) > 0 || len(v.LostWrites) > 0 }

func (v Verdict) String() string {
	return fmt.Sprintf("%d ops (%d ok, %d failed, %d unknown), %d keys checked: %d violations, %d timed out, %d lost writes (%d keys with a final read checked)",
		v.Ops, v.OK, v.Failed, v.Unknown, v.Keys, len(v.Violations), len(v.TimedOut), len(v.LostWrites), v.FinalChecked)
}

// byKey groups ops by key, keys sorted.
func byKey(ops []Op) ([]string, map[string][]Op) {
	m := map[string][]Op{}
	for _, op := range ops {
		m[op.Key] = append(m[op.Key], op)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, m
}

// Check checks h per key, each key within timeout (0: no limit).
func Check(h History, timeout time.Duration) Verdict {
	v := Verdict{Ops: len(h.Ops), Violations: []string{}, TimedOut: []string{}, LostWrites: []string{}}
	for _, op := range h.Ops {
		switch op.Outcome {
		case OutcomeOK:
			v.OK++
		case OutcomeFailed:
			v.Failed++
		case OutcomeUnknown:
			v.Unknown++
		}
	}
	end := endOf(h.Ops)
	keys, m := byKey(h.Ops)
	md := model()
	md.Partition = nil
	for _, k := range keys {
		ops := operations(m[k], end)
		if len(ops) == 0 {
			continue
		}
		v.Keys++
		switch porcupine.CheckOperationsTimeout(md, ops, timeout) {
		case porcupine.Illegal:
			v.Violations = append(v.Violations, k)
		case porcupine.Unknown:
			v.TimedOut = append(v.TimedOut, k)
		}
		if checked, lost := lostWrite(m[k]); checked {
			v.FinalChecked++
			if lost {
				v.LostWrites = append(v.LostWrites, k)
			}
		}
	}
	return v
}

// lostWrite looks at one key's ops for a write that was definitely the
// last one (every other write completed before it was called, none has an
// unknown outcome) followed by a read called after it returned: that read
// must see it, unless it is stale. checked is false when the key has no such pair.
func lostWrite(ops []Op) (checked, lost bool) {
	var writes []*Op
	for i := range ops {
		op := &ops[i]
		switch {
		case op.In.Kind == Get || op.Outcome == OutcomeFailed:
		case op.Outcome == OutcomeUnknown:
			return false, false
		case op.In.Kind == CAS && !op.Out.Swapped: // wrote nothing
		default:
			writes = append(writes, op)
		}
	}
	var last *Op
	for _, w := range writes {
		if last == nil || w.Call > last.Call {
			last = w
		}
	}
	for _, w := range writes {
		if w != last && w.Return >= last.Call {
			return false, false // concurrent with it: no single last write
		}
	}
	if last == nil {
		return false, false
	}
	for _, op := range ops {
		if op.In.Kind != Get || op.In.Stale || op.Outcome != OutcomeOK || op.Call <= last.Return {
			continue
		}
		checked = true
		want := state{found: true}
		switch last.In.Kind {
		case Put, CAS:
			want.value = last.In.Value
		case Delete:
			want = state{}
		case Incr:
			want.value = fmt.Sprint(last.Out.N)
		}
		if op.Out.Found != want.found || (want.found && op.Out.Value != want.value) {
			return true, true
		}
	}
	return checked, false
}

// Visualize writes porcupine's HTML visualization of the given keys'
// histories to path, with h's faults on the timeline.
func Visualize(h History, keys []string, path string, timeout time.Duration) error {
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	var ops []Op
	for _, op := range h.Ops {
		if want[op.Key] {
			ops = append(ops, op)
		}
	}
	md := model()
	_, info := porcupine.CheckOperationsVerbose(md, operations(ops, endOf(h.Ops)), timeout)
	ann := make([]porcupine.Annotation, 0, len(h.Faults))
	for _, f := range h.Faults {
		ann = append(ann, porcupine.Annotation{Tag: "nemesis", Start: f.Start, End: f.End,
			Description: f.Name, Details: f.Detail, BackgroundColor: "#fbd5d5"})
	}
	info.AddAnnotations(ann)
	if err := porcupine.VisualizePath(md, info, path); err != nil {
		return fmt.Errorf("write visualization %s: %w", path, err)
	}
	return nil
}
