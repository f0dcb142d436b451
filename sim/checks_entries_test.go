// Tests of the committed-entry check on hand-made applies.

package sim

import (
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func entry(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: &index, Term: &term, Data: []byte(data)}
}

func TestEntriesCheck(t *testing.T) {
	var failures []string
	es := newEntries(func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) })
	es.record(0, 1, entry(5, 2, "put a"))
	es.record(1, 1, entry(5, 2, "put a")) // another replica, the same entry
	es.record(0, 1, entry(5, 2, "put a")) // re-applied after a restart
	es.record(2, 2, entry(5, 3, "put b")) // another range
	if len(failures) != 0 {
		t.Fatalf("failures %q, want none", failures)
	}
	es.record(2, 1, entry(5, 3, "put b")) // another term
	es.record(1, 1, entry(5, 2, "put c")) // other data
	if len(failures) != 2 {
		t.Fatalf("failures %q, want 2", failures)
	}
	t.Log(failures)
}
