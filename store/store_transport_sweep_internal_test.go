package store

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// peerGoroutines counts the goroutines running a peer stream
// (transport.run).
func peerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("store.(*transport).run("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

func peerCount(tr *transport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.mu.peers)
}

// When no local replica names a store any more (its replicas were moved
// away or it was removed from the cluster), the peer stream to it, its
// goroutine and its connection are closed after two sweeps (the grace for
// a peer made just before a replica names its store); while a replica
// names it, it stays. A later message to it makes a new peer. On main
// peers were never removed.
func TestTransportClosesPeerOfStoreThatLeft(t *testing.T) {
	addr, fake := startFakeRaftServer(t)
	s := newTransportTestStore(t, 1)
	s.cfg.HeartbeatInterval = 40 * time.Millisecond
	s.storeAddrs.Store(uint64(2), addr) // learned from placement
	tr := newTransport(s)
	s.trans = tr
	defer tr.close()
	r := addTestReplica(s, 3, 1)
	r.desc.Store(&rangekvpb.RangeDescriptor{RangeId: 3, Epoch: &rangekvpb.RangeEpoch{ConfVer: 2, Version: 1},
		Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: 1}, {ReplicaId: 2, StoreId: 2}}})
	before := peerGoroutines()

	app := &rangekvpb.RaftMessage{RangeId: 3, FromStore: 1, ToStore: 2, Message: &pb.Message{
		Type: pb.MsgApp.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(1), Index: proto.Uint64(1), LogTerm: proto.Uint64(1)}}
	if !tr.send(2, app) {
		t.Fatal("send to store 2 refused")
	}
	select {
	case <-fake.batches:
	case <-time.After(10 * time.Second):
		t.Fatal("no batch reached store 2 within 10s")
	}
	tr.mu.Lock()
	p := tr.mu.peers[2]
	tr.mu.Unlock()
	if p == nil || peerCount(tr) != 1 || peerGoroutines() != before+1 {
		t.Fatalf("after a send: %d peers, %d peer goroutines; want 1 and %d", peerCount(tr), peerGoroutines(), before+1)
	}

	// Named by range 3: kept, however many sweeps.
	for range 3 {
		if gone := tr.sweepPeers(s.referencedStores()); len(gone) != 0 {
			t.Fatalf("swept %v while range 3 has a replica on store 2", gone)
		}
	}

	// Store 2 leaves range 3 (its last shared range).
	r.desc.Store(&rangekvpb.RangeDescriptor{RangeId: 3, Epoch: &rangekvpb.RangeEpoch{ConfVer: 3, Version: 1},
		Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: 1}, {ReplicaId: 3, StoreId: 4}}})
	if gone := tr.sweepPeers(s.referencedStores()); len(gone) != 0 {
		t.Fatalf("first sweep after store 2 left closed %v; want it kept one more sweep (grace)", gone)
	}
	if gone := tr.sweepPeers(s.referencedStores()); len(gone) != 1 || gone[0] != 2 {
		t.Fatalf("second sweep closed %v, want store 2's peer", gone)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("store 2's peer goroutine still runs 10s after its peer was closed")
	}
	if n, g := peerCount(tr), peerGoroutines(); n != 0 || g != before {
		t.Fatalf("after store 2 left: %d peers, %d peer goroutines; want 0 and %d", n, g, before)
	}
	if st := p.conn.(*grpc.ClientConn).GetState(); st != connectivity.Shutdown {
		t.Fatalf("store 2's connection is %v, want Shutdown", st)
	}

	// Store 2 comes back into a range: a new peer carries its messages.
	if !tr.send(2, app) {
		t.Fatal("send to store 2 after its peer was closed refused")
	}
	select {
	case <-fake.batches:
	case <-time.After(10 * time.Second):
		t.Fatal("no batch reached store 2 through a new peer within 10s")
	}
	if n := peerCount(tr); n != 1 {
		t.Fatalf("%d peers after sending to store 2 again, want 1", n)
	}
}

// A peer store that restarted at another address (placement learns it at
// its Join): once this store learns the new address, its messages go
// there. On main the peer kept dialling the old address until this store
// restarted.
func TestTransportFollowsPeerAddressChange(t *testing.T) {
	oldAddr, oldFake := startFakeRaftServer(t)
	newAddr, newFake := startFakeRaftServer(t)
	s := newTransportTestStore(t, 1)
	s.cfg.HeartbeatInterval = 40 * time.Millisecond
	withMemEngine(t, s)
	tr := newTransport(s)
	s.trans = tr
	defer tr.close()
	s.learnStoreAddr(2, oldAddr)
	app := func() *rangekvpb.RaftMessage {
		return &rangekvpb.RaftMessage{RangeId: 3, FromStore: 1, ToStore: 2, Message: &pb.Message{
			Type: pb.MsgApp.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(1), Index: proto.Uint64(1), LogTerm: proto.Uint64(1)}}
	}
	if !tr.send(2, app()) {
		t.Fatal("send to store 2 refused")
	}
	select {
	case <-oldFake.batches:
	case <-time.After(10 * time.Second):
		t.Fatal("no batch reached store 2 at its first address within 10s")
	}
	s.learnStoreAddr(2, newAddr) // store 2 restarted elsewhere
	deadline := time.After(10 * time.Second)
	for {
		if !tr.send(2, app()) {
			t.Fatal("send to store 2 refused")
		}
		select {
		case b := <-newFake.batches:
			if b.ToStore != 2 {
				t.Fatalf("batch at the new address addressed to store %d", b.ToStore)
			}
			return
		case <-oldFake.batches: // still the old peer (or its last flushes)
		case <-deadline:
			t.Fatal("no batch reached store 2 at its new address within 10s")
		}
	}
}
