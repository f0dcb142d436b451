// Opening the store's single Pebble engine, its identity, static bootstrap
// of range 1, and loading the range descriptors at start.

package store

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"sort"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/internal/logadapt"
	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/rangeraft/driver"
)

// pebbleOptions are tuned for sustained synced writes: Pebble's defaults
// (4 MiB memtable, L0 stop at 12 files) stall under them (measured in
// ../shared/bench: sync-16 23k keys/s default vs 115k tuned). Like
// CockroachDB: stop writes only at a very high L0 file count, and let
// compactions use both cores.
//
// L0 compacts at 8 files, not CockroachDB's 2: with keys spread over the
// whole range, every L0 compaction rewrites most of Lbase, so waiting for
// 8 flushed memtables rewrites it a quarter as often. At 256 writers over
// 100,000 keys (30 s runs, 2 each) writes went from 17.4k to 19.9k ops/s;
// reads were unchanged (bloom filters keep the extra L0 files cheap).
//
// Memtables are 16 MiB (Config.MemTableBytes), not CockroachDB's 64 MiB. Every Get and every
// insert walks the skiplist of each memtable it touches (Pebble queues
// immutable ones until half a memtable's worth waits), and a walk is a
// chain of random reads across the arena: in the 2-core VM of
// docs/benchmarks.md, skiplist walks were 30% of a store's CPU at 256
// readers with 64 MiB. 16 MiB measured reads +23% and writes +12% at 256
// clients (4 runs each); 8 and 32 MiB were no better than 64.
func pebbleOptions(c *Config) *pebble.Options {
	o := &pebble.Options{
		MemTableSize:                uint64(c.MemTableBytes),
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       8,
		L0StopWritesThreshold:       1000,
		LBaseMaxBytes:               64 << 20,
		CompactionConcurrencyRange:  func() (int, int) { return 1, 2 },
		FormatMajorVersion:          pebble.FormatNewest,
	}
	// vfs.Default is left for Pebble to fill in: it wraps it with its
	// disk-health checks (Options.WithFSDefaults).
	if c.FS != nil && c.FS != vfs.Default {
		o.FS = c.FS
	}
	if c.CacheBytes > 0 {
		// The caller releases its reference once the engine holds one.
		o.Cache = pebble.NewCache(c.CacheBytes)
	}
	o.Logger = logadapt.Pebble{L: c.Logger}
	return o
}

// ClusterIDFromInitialStores derives the cluster ID of a statically
// bootstrapped cluster from its member list, so that every member agrees.
func ClusterIDFromInitialStores(m map[uint64]string) uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	h := fnv.New64a()
	for _, id := range ids {
		h.Write([]byte(strconv.FormatUint(id, 10) + "=" + m[id] + ","))
	}
	return h.Sum64() | 1
}

// ErrIdentityMismatch: the data directory belongs to another store or
// cluster.
type ErrIdentityMismatch struct {
	Found, Want *rangekvpb.StoreIdent
}

func (e *ErrIdentityMismatch) Error() string {
	return fmt.Sprintf("data directory belongs to store %d of cluster %x, but this process was started as store %d of cluster %x; use the right --data-dir or an empty one",
		e.Found.GetStoreId(), e.Found.GetClusterId(), e.Want.GetStoreId(), e.Want.GetClusterId())
}

// checkIdent reads the store identity, writing want when the engine is new.
// It reports whether the engine was new.
func checkIdent(db *pebble.DB, want *rangekvpb.StoreIdent) (bool, error) {
	v, c, err := db.Get(keys.StoreIdentKey())
	if errors.Is(err, pebble.ErrNotFound) {
		b, err := proto.Marshal(want)
		if err != nil {
			return false, err
		}
		return true, db.Set(keys.StoreIdentKey(), b, pebble.Sync)
	}
	if err != nil {
		return false, err
	}
	defer c.Close()
	var got rangekvpb.StoreIdent
	if err := proto.Unmarshal(v, &got); err != nil {
		return false, fmt.Errorf("decode store identity: %w", err)
	}
	if got.StoreId != want.StoreId || (want.ClusterId != 0 && got.ClusterId != want.ClusterId) {
		return false, &ErrIdentityMismatch{Found: &got, Want: want}
	}
	return false, nil
}

// bootstrapRange1 writes range 1 = the whole key space with one voter per
// initial store (replica ID = store ID), in one synced batch.
func bootstrapRange1(db *pebble.DB, stores []uint64) error {
	desc := &rangekvpb.RangeDescriptor{RangeId: 1, Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}}
	ids := slices.Clone(stores)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		desc.Replicas = append(desc.Replicas, &rangekvpb.ReplicaDescriptor{ReplicaId: id, StoreId: id})
		desc.NextReplicaId = id + 1
	}
	b := db.NewBatch()
	defer b.Close()
	if err := driver.WriteInitialState(b, desc, driver.InitialHardState()); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// loadDescriptors returns every range descriptor stored in the engine,
// seeking from one range's local keys to the next (no scan of log entries).
func loadDescriptors(db *pebble.DB) ([]*rangekvpb.RangeDescriptor, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: keys.RangeLocalPrefix(0), UpperBound: keys.RangeLocalEnd(^uint64(0))})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*rangekvpb.RangeDescriptor
	for valid := it.First(); valid; {
		id, _, err := keys.DecodeRangeLocalKey(it.Key())
		if err != nil {
			return nil, err
		}
		if it.SeekGE(keys.DescriptorKey(id)) && string(it.Key()) == string(keys.DescriptorKey(id)) {
			d := &rangekvpb.RangeDescriptor{}
			if err := proto.Unmarshal(it.Value(), d); err != nil {
				return nil, fmt.Errorf("decode descriptor of range %d: %w", id, err)
			}
			// Every descriptor the store writes has an epoch and its own
			// range ID; one without would crash the apply loop later.
			if d.Epoch == nil || d.RangeId != id {
				return nil, fmt.Errorf("descriptor stored for range %d is corrupt: range_id %d, epoch %v", id, d.RangeId, d.Epoch)
			}
			out = append(out, d)
		}
		if id == ^uint64(0) {
			break
		}
		valid = it.SeekGE(keys.RangeLocalPrefix(id + 1))
	}
	return out, it.Error()
}

func getProto(r interface {
	Get([]byte) ([]byte, io.Closer, error)
}, key []byte, m proto.Message) (bool, error) {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer c.Close()
	return true, proto.Unmarshal(v, m)
}

// confStateOf derives raft's configuration from a descriptor.
func confStateOf(d *rangekvpb.RangeDescriptor) *pb.ConfState {
	cs := &pb.ConfState{}
	// In a joint configuration the outgoing half is the whole old voter
	// set (the voters that stay and the ones being demoted), not only the
	// demoted ones: with VOTER_INCOMING alone it would otherwise be empty,
	// and a replica restarted mid-change would panic re-applying the
	// leave-joint entry ("can't leave a non-joint config").
	joint := isJoint(d)
	for _, r := range d.Replicas {
		switch r.Role {
		case rangekvpb.ReplicaRole_VOTER:
			cs.Voters = append(cs.Voters, r.ReplicaId)
			if joint {
				cs.VotersOutgoing = append(cs.VotersOutgoing, r.ReplicaId)
			}
		case rangekvpb.ReplicaRole_LEARNER:
			cs.Learners = append(cs.Learners, r.ReplicaId)
		case rangekvpb.ReplicaRole_VOTER_INCOMING:
			cs.Voters = append(cs.Voters, r.ReplicaId)
		case rangekvpb.ReplicaRole_VOTER_DEMOTING:
			cs.VotersOutgoing = append(cs.VotersOutgoing, r.ReplicaId)
			cs.LearnersNext = append(cs.LearnersNext, r.ReplicaId)
		}
	}
	return cs
}

func (s *Store) initStatic() error {
	want := &rangekvpb.StoreIdent{StoreId: s.cfg.StoreID}
	if len(s.cfg.InitialStores) > 0 {
		want.ClusterId = ClusterIDFromInitialStores(s.cfg.InitialStores)
	}
	// An empty data directory: before writing anything, make sure no peer
	// knew an earlier (wiped) incarnation of this store (store_incarnation.go).
	var ident rangekvpb.StoreIdent
	has, err := getProto(s.db, keys.StoreIdentKey(), &ident)
	if err != nil {
		return err
	}
	if !has && !s.cfg.NewCluster {
		if err := s.probePeers(); err != nil {
			return err
		}
	}
	fresh, err := checkIdent(s.db, want)
	if err != nil {
		return err
	}
	if fresh && len(s.cfg.InitialStores) > 0 {
		if _, member := s.cfg.InitialStores[s.cfg.StoreID]; !member {
			return fmt.Errorf("initial-stores: this store (%d) is not in the initial store list", s.cfg.StoreID)
		}
		voters := s.cfg.BootstrapStoreIDs
		if len(voters) == 0 {
			for id := range s.cfg.InitialStores {
				voters = append(voters, id)
			}
		}
		if slices.Contains(voters, s.cfg.StoreID) {
			if err := bootstrapRange1(s.db, voters); err != nil {
				return fmt.Errorf("bootstrap range 1: %w", err)
			}
			s.log.Info("bootstrapped range 1 (static bootstrap)", "replicas", len(voters))
		}
	}
	return nil
}
