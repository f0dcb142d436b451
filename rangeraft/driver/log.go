// The log storage a group is driven over, named here so that a user of the
// driver reaches rangeraft/logstore through it.

package driver

import (
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft/logstore"
)

// Log is a group's Raft log storage in the shared Pebble engine.
type Log = logstore.RangeLog

// AppendUpdate is what a pass staged into a group's log and has not yet
// made visible (see Group.StageApply).
type AppendUpdate = logstore.AppendUpdate

// LoadLog reads the persisted log of group rangeID (logstore.Load):
// confState and applied come from the group's state machine.
func LoadLog(db logstore.Reader, rangeID uint64, confState *pb.ConfState, applied *rangekvpb.AppliedState) (*Log, error) {
	return logstore.Load(db, rangeID, confState, applied)
}
