// Tests of the log-growth check on hand-made logs.

package sim

import (
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func typed(index, term uint64, typ raftpb.EntryType, data []byte) *raftpb.Entry {
	return &raftpb.Entry{Index: &index, Term: &term, Type: &typ, Data: data}
}

func TestLogGrowthCheck(t *testing.T) {
	var failures []string
	es := newEntries(func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) })
	enter, err := proto.Marshal(&raftpb.ConfChangeV2{Transition: raftpb.ConfChangeTransitionJointExplicit.Enum(),
		Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(3)}}})
	if err != nil {
		t.Fatal(err)
	}
	leave, err := proto.Marshal(&raftpb.ConfChangeV2{})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(e *raftpb.Entry) { es.record(0, 1, e); es.record(1, 1, e) }
	// A promotion as the fixed store logs it: a new leader's empty entry,
	// enter joint, a write, leave joint, another leader's empty entry;
	// then maxChangeEmpties entries raft emptied (conf changes proposed
	// while the leave was pending).
	apply(typed(11, 6, raftpb.EntryNormal, nil))
	apply(typed(12, 6, raftpb.EntryConfChangeV2, enter))
	apply(typed(13, 6, raftpb.EntryNormal, []byte("put")))
	apply(typed(14, 6, raftpb.EntryConfChangeV2, leave))
	apply(typed(15, 7, raftpb.EntryNormal, nil))
	for i := range uint64(maxChangeEmpties) {
		apply(typed(16+i, 7, raftpb.EntryNormal, nil))
	}
	if len(failures) != 0 {
		t.Fatalf("failures %q, want none", failures)
	}
	// One more: leave-joint proposed on every pass (issue 15 item 4).
	apply(typed(16+maxChangeEmpties, 7, raftpb.EntryNormal, nil))
	apply(typed(17+maxChangeEmpties, 7, raftpb.EntryNormal, nil)) // reported once
	if len(failures) != 1 {
		t.Fatalf("failures %q, want 1", failures)
	}
	// A membership change starts a new count.
	apply(typed(18+maxChangeEmpties, 7, raftpb.EntryConfChangeV2, enter))
	apply(typed(19+maxChangeEmpties, 7, raftpb.EntryNormal, nil))
	if len(failures) != 1 {
		t.Fatalf("failures %q, want 1", failures)
	}
	t.Log(failures)
}
