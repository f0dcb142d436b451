package store

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// newTransportTestStore is a Store with just what the transport's send
// and receive paths use: config, metrics, scheduler, liveness and the
// replica map. No engine, no goroutines until a peer is made.
func newTransportTestStore(t testing.TB, storeID uint64) *Store {
	t.Helper()
	cfg := Defaults()
	cfg.StoreID = storeID
	cfg.InboxSize = 1 << 16
	cfg = cfg.withSeams()
	s := &Store{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, reg: prometheus.NewRegistry()}
	s.metrics = newMetrics(s.reg)
	s.sched = newScheduler(64)
	s.liveness = newLiveness(storeID, time.Now, time.Second)
	s.mu.replicas = map[uint64]*Replica{}
	s.trans = newTransport(s) // no peers until a test makes one
	t.Cleanup(s.trans.close)
	return s
}

// withMemEngine gives s an in-memory Pebble engine, closed when the test
// ends, and returns it.
func withMemEngine(t testing.TB, s *Store) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("data", &pebble.Options{FS: vfs.NewMem(), Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s.db = db
	return db
}

// counterValue reads a counter of s's registry; with label (name=value)
// only the series carrying it.
func counterValue(t testing.TB, s *Store, name string, label ...string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := len(label) == 0
			for _, lp := range m.GetLabel() {
				if len(label) == 2 && lp.GetName() == label[0] && lp.GetValue() == label[1] {
					ok = true
				}
			}
			if ok {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// addTestReplica registers an (initialized) replica without raft state.
func addTestReplica(s *Store, rangeID, replicaID uint64) *Replica {
	r := &Replica{store: s, rangeID: rangeID, replicaID: replicaID}
	r.desc.Store(&rangekvpb.RangeDescriptor{RangeId: rangeID, Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 1}})
	s.setReplicaLocked(rangeID, r)
	return r
}

// takeInbox removes and returns the messages queued for r.
func takeInbox(r *Replica) []inMsg {
	r.inbox.Lock()
	defer r.inbox.Unlock()
	msgs := r.inbox.msgs
	r.inbox.msgs = nil
	return msgs
}

// fakeRaftStream feeds batches to raftServer.RaftStream.
type fakeRaftStream struct {
	grpc.ServerStream
	batches []*rangekvpb.RaftMessageBatch
	closed  bool
}

func (f *fakeRaftStream) Recv() (*rangekvpb.RaftMessageBatch, error) {
	if len(f.batches) == 0 {
		return nil, io.EOF
	}
	b := f.batches[0]
	f.batches = f.batches[1:]
	return b, nil
}

// Context: a stream without metadata (a sender without an incarnation).
func (f *fakeRaftStream) Context() context.Context { return context.Background() }

func (f *fakeRaftStream) SendAndClose(*rangekvpb.RaftStreamResponse) error {
	f.closed = true
	return nil
}

// overTheWire marshals and unmarshals a batch, as gRPC would.
func overTheWire(t testing.TB, b *rangekvpb.RaftMessageBatch) *rangekvpb.RaftMessageBatch {
	t.Helper()
	data, err := proto.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	out := &rangekvpb.RaftMessageBatch{}
	if err := proto.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// receive runs a batch through the receiving store's RaftStream handler.
func receive(t testing.TB, s *Store, b *rangekvpb.RaftMessageBatch) {
	t.Helper()
	st := &fakeRaftStream{batches: []*rangekvpb.RaftMessageBatch{overTheWire(t, b)}}
	if err := (&raftServer{s: s}).RaftStream(st); err != nil {
		t.Fatalf("RaftStream: %v", err)
	}
	if !st.closed {
		t.Fatal("RaftStream did not answer the end of the stream")
	}
}

// sameHeartbeat reports how a rebuilt heartbeat differs from the one raft
// produced, on every field raft reads from it ("" if none).
func sameHeartbeat(want, got *pb.Message) string {
	var diffs []string
	check := func(field string, w, g any) {
		if fmt.Sprint(w) != fmt.Sprint(g) {
			diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", field, g, w))
		}
	}
	check("type", want.GetType(), got.GetType())
	check("from", want.GetFrom(), got.GetFrom())
	check("to", want.GetTo(), got.GetTo())
	check("term", want.GetTerm(), got.GetTerm())
	check("commit", want.GetCommit(), got.GetCommit())
	check("context", fmt.Sprintf("%x", want.GetContext()), fmt.Sprintf("%x", got.GetContext()))
	check("index", want.GetIndex(), got.GetIndex())
	check("log_term", want.GetLogTerm(), got.GetLogTerm())
	check("reject", want.GetReject(), got.GetReject())
	check("entries", len(want.GetEntries()), len(got.GetEntries()))
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprint(diffs)
}

// Coalesced heartbeats and responses of several ranges travel in one batch
// and are rebuilt on the receiver into the exact raft messages (type,
// from, to, term, commit, context), each queued on its own range with the
// quiesce flag, and the ranges scheduled.
func TestTransportHeartbeatCoalescingRebuildsExactMessages(t *testing.T) {
	hb := func(typ pb.MessageType, from, to, term, commit uint64, ctx []byte) *pb.Message {
		m := &pb.Message{Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(term), Context: ctx}
		if typ == pb.MsgHeartbeat { // raft sets no commit on responses
			m.Commit = proto.Uint64(commit)
		}
		return m
	}
	cases := []struct {
		rangeID uint64
		m       *pb.Message
		quiesce bool
	}{
		{10, hb(pb.MsgHeartbeat, 1, 2, 7, 42, nil), false},
		{11, hb(pb.MsgHeartbeat, 3, 4, 9, 0, nil), false},        // a follower whose match is 0
		{12, hb(pb.MsgHeartbeatResp, 5, 6, 8, 0, nil), false},    // a response
		{13, hb(pb.MsgHeartbeat, 7, 8, 1<<40, 1<<41, nil), true}, // a quiesce beat, large numbers
		{14, hb(pb.MsgHeartbeat, 1, 2, 3, 4, []byte{1, 0, 0, 0, 0, 0, 0, 0}), false},
		{15, hb(pb.MsgHeartbeatResp, 9, 10, 3, 0, []byte{0xff, 0, 0, 0, 0, 0, 0, 1}), false},
	}
	p := &peer{storeID: 2}
	for _, c := range cases {
		p.addHeartbeat(c.rangeID, c.m, c.quiesce)
	}
	beats, resps := p.takeHeartbeats()
	if len(beats) != 4 || len(resps) != 2 {
		t.Fatalf("took %d beats and %d responses, want 4 and 2", len(beats), len(resps))
	}
	if b, r := p.takeHeartbeats(); len(b)+len(r) != 0 {
		t.Fatalf("a second take returned %d beats and %d responses; the first must empty the buffer", len(b), len(r))
	}

	s := newTransportTestStore(t, 2)
	replicas := map[uint64]*Replica{}
	for _, c := range cases {
		replicas[c.rangeID] = addTestReplica(s, c.rangeID, c.m.GetTo())
	}
	receive(t, s, &rangekvpb.RaftMessageBatch{FromStore: 1, ToStore: 2, Heartbeats: beats, HeartbeatResps: resps})
	for _, c := range cases {
		got := takeInbox(replicas[c.rangeID])
		if len(got) != 1 {
			t.Fatalf("range %d: %d messages queued, want 1", c.rangeID, len(got))
		}
		if d := sameHeartbeat(c.m, got[0].m); d != "" {
			t.Errorf("range %d: rebuilt %v differs from sent %v: %s", c.rangeID, got[0].m, c.m, d)
		}
		if got[0].quiesce != c.quiesce || got[0].fromStore != 1 {
			t.Errorf("range %d: quiesce %v from store %d, want quiesce %v from store 1", c.rangeID, got[0].quiesce, got[0].fromStore, c.quiesce)
		}
		if st, ok := replicas[c.rangeID].storeOfReplica(c.m.GetFrom()); !ok || st != 1 {
			t.Errorf("range %d: replica %d's store learned as %d (%v), want 1", c.rangeID, c.m.GetFrom(), st, ok)
		}
	}
	scheduled := map[uint64]bool{}
	for _, it := range s.sched.next(nil) {
		scheduled[it.rangeID] = true
	}
	for _, c := range cases {
		if !scheduled[c.rangeID] {
			t.Errorf("range %d not scheduled after its heartbeat arrived", c.rangeID)
		}
	}
	if !s.liveness.isLive(1) {
		t.Error("a batch from store 1 did not count as hearing from it")
	}
}

// transport.send coalesces only heartbeats and responses without a
// context; ReadIndex heartbeats (with a context) and every other message
// are queued to go at once; sendQuiesce marks the beat.
func TestTransportSendCoalescesOnlyContextFreeHeartbeats(t *testing.T) {
	s := newTransportTestStore(t, 1)
	tr := &transport{s: s}
	tr.mu.peers = map[uint64]*peer{}
	p := newPeer(2, "", nil, s.cfg.Clock)
	tr.mu.peers[2] = p
	msg := func(typ pb.MessageType, ctx []byte) *rangekvpb.RaftMessage {
		return &rangekvpb.RaftMessage{RangeId: 5, FromStore: 1, ToStore: 2, Message: &pb.Message{
			Type: typ.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(3), Commit: proto.Uint64(4), Context: ctx}}
	}
	coalesced := []*rangekvpb.RaftMessage{msg(pb.MsgHeartbeat, nil), msg(pb.MsgHeartbeatResp, nil)}
	immediate := []*rangekvpb.RaftMessage{
		msg(pb.MsgHeartbeat, []byte("read-ctx")), msg(pb.MsgHeartbeatResp, []byte("read-ctx")),
		msg(pb.MsgApp, nil), msg(pb.MsgAppResp, nil), msg(pb.MsgVote, nil), msg(pb.MsgPreVote, nil),
	}
	for _, m := range append(append([]*rangekvpb.RaftMessage(nil), coalesced...), immediate...) {
		if !tr.send(2, m) {
			t.Fatalf("send %v refused", m.Message.GetType())
		}
	}
	tr.sendQuiesce(2, 6, &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(3), Commit: proto.Uint64(4)})
	q := p.takeQueued(nil, peerQueueSize)
	if len(q) != len(immediate) {
		t.Fatalf("%d messages queued to go at once, want %d", len(q), len(immediate))
	}
	for i, want := range immediate {
		if got := q[i]; got != want {
			t.Fatalf("queued %v, want %v (in order)", got.Message, want.Message)
		}
	}
	beats, resps := p.takeHeartbeats()
	if len(beats) != 2 || len(resps) != 1 {
		t.Fatalf("coalesced %d beats and %d responses, want 2 and 1", len(beats), len(resps))
	}
	if beats[0].Quiesce || !beats[1].Quiesce || beats[1].RangeId != 6 || resps[0].Quiesce {
		t.Fatalf("quiesce flags: beats %v, responses %v; want only the sendQuiesce beat (range 6) marked", beats, resps)
	}
	if tr.send(3, msg(pb.MsgApp, nil)) {
		t.Fatal("send to an unknown store reported success")
	}
	if n := counterValue(t, s, "rangekv_raft_messages_dropped_total", "reason", "unknown_store"); n != 1 {
		t.Fatalf("unknown_store drops = %v, want 1", n)
	}
}

// fakeRaftServer records the batches a transport streams to it.
type fakeRaftServer struct {
	rangekvpb.UnimplementedRaftServer
	batches chan *rangekvpb.RaftMessageBatch
}

// startFakeRaftServer serves a fakeRaftServer on a loopback port until the
// test ends.
func startFakeRaftServer(t *testing.T) (addr string, fake *fakeRaftServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	fake = &fakeRaftServer{batches: make(chan *rangekvpb.RaftMessageBatch, 1024)}
	rangekvpb.RegisterRaftServer(srv, fake)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), fake
}

func (f *fakeRaftServer) RaftStream(stream rangekvpb.Raft_RaftStreamServer) error {
	for {
		b, err := stream.Recv()
		if err != nil {
			return nil
		}
		f.batches <- b
	}
}

// The peer stream over real gRPC: a message goes in a batch of its own
// kind at once; coalesced beats and responses go together in a flush
// batch that carries no messages; idle flushes still send (empty) batches:
// the liveness ping. Every batch names both stores and is counted.
func TestTransportPeerStreamFlushesBeatsAndPings(t *testing.T) {
	addr, fake := startFakeRaftServer(t)
	s := newTransportTestStore(t, 1)
	s.cfg.HeartbeatInterval = 40 * time.Millisecond // flush every 20ms
	s.cfg.InitialStores = map[uint64]string{1: "127.0.0.1:1", 2: addr}
	tr := newTransport(s)
	s.trans = tr
	defer tr.close()

	next := func(what string, ok func(*rangekvpb.RaftMessageBatch) bool) *rangekvpb.RaftMessageBatch {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case b := <-fake.batches:
				if b.FromStore != 1 || b.ToStore != 2 {
					t.Fatalf("batch from %d to %d, want 1 to 2", b.FromStore, b.ToStore)
				}
				if ok(b) {
					return b
				}
			case <-deadline:
				t.Fatalf("no batch with %s", what)
			}
		}
	}
	tr.startPeers()
	next("a liveness ping (empty batch)", func(b *rangekvpb.RaftMessageBatch) bool {
		return len(b.Messages)+len(b.Heartbeats)+len(b.HeartbeatResps) == 0
	})

	app := &rangekvpb.RaftMessage{RangeId: 3, FromStore: 1, ToStore: 2, Message: &pb.Message{
		Type: pb.MsgApp.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(4), Index: proto.Uint64(11), LogTerm: proto.Uint64(4),
		Commit: proto.Uint64(11), Entries: []*pb.Entry{{Term: proto.Uint64(4), Index: proto.Uint64(12), Data: []byte("x")}}}}
	readBeat := &rangekvpb.RaftMessage{RangeId: 3, FromStore: 1, ToStore: 2, Message: &pb.Message{
		Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(4), Commit: proto.Uint64(11), Context: []byte("ctx")}}
	beat := &rangekvpb.RaftMessage{RangeId: 3, FromStore: 1, ToStore: 2, Message: &pb.Message{
		Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(4), Commit: proto.Uint64(10)}}
	resp := &rangekvpb.RaftMessage{RangeId: 4, FromStore: 1, ToStore: 2, Message: &pb.Message{
		Type: pb.MsgHeartbeatResp.Enum(), From: proto.Uint64(5), To: proto.Uint64(6), Term: proto.Uint64(2)}}
	for _, m := range []*rangekvpb.RaftMessage{app, readBeat, beat, resp} {
		if !tr.send(2, m) {
			t.Fatalf("send %v refused", m.Message.GetType())
		}
	}
	msgs := next("the MsgApp", func(b *rangekvpb.RaftMessageBatch) bool { return len(b.Messages) > 0 })
	if len(msgs.Heartbeats)+len(msgs.HeartbeatResps) != 0 {
		t.Fatalf("a message batch also carries coalesced heartbeats: %v", msgs)
	}
	got := msgs.Messages
	if len(got) == 1 { // the two may leave in separate batches
		got = append(got, next("the ReadIndex heartbeat", func(b *rangekvpb.RaftMessageBatch) bool { return len(b.Messages) > 0 }).Messages...)
	}
	if len(got) != 2 || !proto.Equal(got[0], app) || !proto.Equal(got[1], readBeat) {
		t.Fatalf("messages sent %v, want the MsgApp then the ReadIndex heartbeat, verbatim", got)
	}
	hbs := next("coalesced heartbeats", func(b *rangekvpb.RaftMessageBatch) bool { return len(b.Heartbeats)+len(b.HeartbeatResps) > 0 })
	if len(hbs.Messages) != 0 || len(hbs.Heartbeats) != 1 || len(hbs.HeartbeatResps) != 1 {
		t.Fatalf("flush batch %v: want exactly one beat and one response, no messages", hbs)
	}
	want := &rangekvpb.RaftHeartbeat{RangeId: 3, FromReplicaId: 1, ToReplicaId: 2, Term: 4, Commit: 10}
	if !proto.Equal(hbs.Heartbeats[0], want) {
		t.Fatalf("coalesced beat %v, want %v", hbs.Heartbeats[0], want)
	}
	want = &rangekvpb.RaftHeartbeat{RangeId: 4, FromReplicaId: 5, ToReplicaId: 6, Term: 2}
	if !proto.Equal(hbs.HeartbeatResps[0], want) {
		t.Fatalf("coalesced response %v, want %v", hbs.HeartbeatResps[0], want)
	}
	next("a ping after the flush", func(b *rangekvpb.RaftMessageBatch) bool {
		return len(b.Messages)+len(b.Heartbeats)+len(b.HeartbeatResps) == 0
	})
	// The sender counts a batch after its Send returns, which may be after
	// the server already has it: wait (bounded) for the count.
	deadline := time.Now().Add(5 * time.Second)
	for n := counterValue(t, s, "rangekv_transport_batches_sent_total"); n < 4; n = counterValue(t, s, "rangekv_transport_batches_sent_total") {
		if time.Now().After(deadline) {
			t.Fatalf("batches_sent = %v after at least 4 batches", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// raftTestNode is one replica of a range in the raft-driven test: a real
// raft RawNode, a store (its receive path) and a transport (its send
// path, with peers whose queues the test drains instead of a stream).
type raftTestNode struct {
	id    uint64
	rn    *raft.RawNode
	st    *raft.MemoryStorage
	s     *Store
	r     *Replica
	tr    *transport
	reads [][]byte
}

const raftTestRange = 7

func newRaftTestNodes(t *testing.T, n int) map[uint64]*raftTestNode {
	t.Helper()
	var voters []uint64
	for id := uint64(1); id <= uint64(n); id++ {
		voters = append(voters, id)
	}
	nodes := map[uint64]*raftTestNode{}
	for _, id := range voters {
		st := raft.NewMemoryStorage()
		if err := st.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			ConfState: &pb.ConfState{Voters: voters}, Index: proto.Uint64(10), Term: proto.Uint64(5)}}); err != nil {
			t.Fatal(err)
		}
		rn, err := raft.NewRawNode(&raft.Config{
			ID: id, ElectionTick: 10, HeartbeatTick: 1, Storage: st, MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256,
			CheckQuorum: true, PreVote: true, ReadOnlyOption: raft.ReadOnlySafe,
			Logger: &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)},
		})
		if err != nil {
			t.Fatal(err)
		}
		s := newTransportTestStore(t, id) // store ID = replica ID
		tr := &transport{s: s}
		tr.mu.peers = map[uint64]*peer{}
		for _, other := range voters {
			if other != id {
				tr.mu.peers[other] = newPeer(other, "", nil, s.cfg.Clock)
			}
		}
		s.trans = tr
		nodes[id] = &raftTestNode{id: id, rn: rn, st: st, s: s, r: addTestReplica(s, raftTestRange, id), tr: tr}
	}
	return nodes
}

// pump runs the nodes until nothing moves: each Ready is persisted, its
// messages go through transport.send (dropped when drop says so), every
// peer queue is flushed as one batch (messages, then coalesced beats and
// responses) through the receiver's RaftStream, and what the receivers
// queued is stepped into raft. It returns the heartbeats raft produced and
// the ones the receivers stepped, by (from, to).
func pump(t *testing.T, nodes map[uint64]*raftTestNode, drop func(*pb.Message) bool, sent, stepped map[[2]uint64][]*pb.Message) {
	t.Helper()
	for round := 0; round < 1000; round++ {
		moved := false
		for id := uint64(1); id <= uint64(len(nodes)); id++ {
			nd := nodes[id]
			if !nd.rn.HasReady() {
				continue
			}
			moved = true
			rd := nd.rn.Ready()
			if !raft.IsEmptySnap(rd.Snapshot) {
				if err := nd.st.ApplySnapshot(rd.Snapshot); err != nil {
					t.Fatal(err)
				}
			}
			if err := nd.st.Append(rd.Entries); err != nil {
				t.Fatal(err)
			}
			if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
				if err := nd.st.SetHardState(rd.HardState); err != nil {
					t.Fatal(err)
				}
			}
			for _, rs := range rd.ReadStates {
				nd.reads = append(nd.reads, rs.RequestCtx)
			}
			for _, m := range rd.Messages {
				if drop != nil && drop(m) {
					continue
				}
				if typ := m.GetType(); typ == pb.MsgHeartbeat || typ == pb.MsgHeartbeatResp {
					k := [2]uint64{m.GetFrom(), m.GetTo()}
					sent[k] = append(sent[k], proto.CloneOf(m))
				}
				if !nd.tr.send(m.GetTo(), &rangekvpb.RaftMessage{RangeId: raftTestRange, FromStore: id, ToStore: m.GetTo(), Message: m}) {
					t.Fatalf("send %v refused", m.GetType())
				}
			}
			nd.rn.Advance(rd)
		}
		// Flush every peer stream.
		for id := uint64(1); id <= uint64(len(nodes)); id++ {
			for to, p := range nodes[id].tr.mu.peers {
				b := &rangekvpb.RaftMessageBatch{FromStore: id, ToStore: to}
				b.Messages = p.takeQueued(b.Messages, peerQueueSize)
				b.Heartbeats, b.HeartbeatResps = p.takeHeartbeats()
				if len(b.Messages)+len(b.Heartbeats)+len(b.HeartbeatResps) > 0 {
					moved = true
					receive(t, nodes[to].s, b)
				}
			}
		}
		for id := uint64(1); id <= uint64(len(nodes)); id++ {
			nd := nodes[id]
			for _, im := range takeInbox(nd.r) {
				m := im.m
				if typ := m.GetType(); typ == pb.MsgHeartbeat || typ == pb.MsgHeartbeatResp {
					k := [2]uint64{m.GetFrom(), m.GetTo()}
					stepped[k] = append(stepped[k], m)
				}
				if err := nd.rn.Step(m); err != nil {
					t.Fatalf("node %d: step %v: %v", id, m.GetType(), err)
				}
			}
		}
		// Drain the schedulers (the tests step inboxes themselves).
		for id := uint64(1); id <= uint64(len(nodes)); id++ {
			sched := nodes[id].s.sched
			sched.mu.Lock()
			sched.mu.queue, sched.mu.state = nil, map[uint64]schedFlags{}
			sched.mu.Unlock()
		}
		if !moved {
			return
		}
	}
	t.Fatal("the raft test network did not settle")
}

func leaderOf(nodes map[uint64]*raftTestNode) (uint64, uint64) {
	for id, nd := range nodes {
		if bs := nd.rn.BasicStatus(); bs.RaftState == raft.StateLeader {
			return id, bs.GetTerm()
		}
	}
	return 0, 0
}

// Real raft replicas whose heartbeats and responses all travel through the
// coalescing transport: every beat is rebuilt exactly as raft sent it;
// CheckQuorum keeps the leader through many election timeouts (it sees
// every follower's responses); ReadIndex (context-carrying heartbeats)
// completes; a follower that missed appends receives beats with
// min(match, commit) and neither panics nor commits what it lacks, then
// catches up.
func TestTransportCoalescedHeartbeatsDriveRealRaft(t *testing.T) {
	nodes := newRaftTestNodes(t, 3)
	sent, stepped := map[[2]uint64][]*pb.Message{}, map[[2]uint64][]*pb.Message{}
	if err := nodes[1].rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	pump(t, nodes, nil, sent, stepped)
	lead, term := leaderOf(nodes)
	if lead != 1 {
		t.Fatalf("leader %d after node 1 campaigned, want 1", lead)
	}
	if err := nodes[1].rn.Propose([]byte("one")); err != nil {
		t.Fatal(err)
	}
	pump(t, nodes, nil, sent, stepped)

	tickAll := func(times int, drop func(*pb.Message) bool) {
		for range times {
			for id := uint64(1); id <= 3; id++ {
				nodes[id].rn.Tick()
			}
			pump(t, nodes, drop, sent, stepped)
		}
	}
	// Three election timeouts: only coalesced heartbeats flow.
	tickAll(30, nil)
	if l, tm := leaderOf(nodes); l != lead || tm != term {
		t.Fatalf("leader %d term %d after 3 election timeouts of coalesced heartbeats, want %d term %d (CheckQuorum lost responses?)", l, tm, lead, term)
	}

	// ReadIndex: the leader's context heartbeats must come back verbatim.
	nodes[1].rn.ReadIndex([]byte("read-1"))
	pump(t, nodes, nil, sent, stepped)
	if len(nodes[1].reads) != 1 || string(nodes[1].reads[0]) != "read-1" {
		t.Fatalf("ReadIndex confirmed %q, want [read-1]", nodes[1].reads)
	}

	// Node 3 misses appends; heartbeats to it carry min(match, commit).
	toThree := func(m *pb.Message) bool { return m.GetTo() == 3 && m.GetType() == pb.MsgApp }
	if err := nodes[1].rn.Propose([]byte("two")); err != nil {
		t.Fatal(err)
	}
	pump(t, nodes, toThree, sent, stepped)
	tickAll(3, toThree)
	commit1, commit3 := nodes[1].rn.BasicStatus().GetCommit(), nodes[3].rn.BasicStatus().GetCommit()
	last3, _ := nodes[3].st.LastIndex()
	if commit3 >= commit1 || commit3 > last3 {
		t.Fatalf("lagging node 3: commit %d (last index %d), leader commit %d; want it behind and within its log", commit3, last3, commit1)
	}
	tickAll(3, nil)
	if c3 := nodes[3].rn.BasicStatus().GetCommit(); c3 != commit1 {
		t.Fatalf("node 3 commit %d after healing, want %d", c3, commit1)
	}

	// Every heartbeat and response raft produced arrived, rebuilt exactly,
	// in order, once.
	total := 0
	for k, want := range sent {
		got := stepped[k]
		if len(got) != len(want) {
			t.Fatalf("%d->%d: %d heartbeats sent, %d stepped", k[0], k[1], len(want), len(got))
		}
		for i := range want {
			if d := sameHeartbeat(want[i], got[i]); d != "" {
				t.Fatalf("%d->%d heartbeat %d: %s", k[0], k[1], i, d)
			}
		}
		total += len(want)
	}
	if total < 100 {
		t.Fatalf("only %d heartbeats exchanged", total)
	}
}

// A heartbeat for a replica ID below the range's tombstone creates nothing
// and is counted as dropped; one for a newer ID creates an uninitialized
// replica; one for another ID than the local replica's is dropped.
func TestTransportHeartbeatToTombstonedReplicaDropped(t *testing.T) {
	s := newTransportTestStore(t, 2)
	db := withMemEngine(t, s)
	ts, _ := proto.Marshal(&rangekvpb.RangeTombstone{NextReplicaId: 5})
	if err := db.Set(keys.TombstoneKey(9), ts, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	beat := func(to uint64) *rangekvpb.RaftHeartbeat {
		return &rangekvpb.RaftHeartbeat{RangeId: 9, FromReplicaId: 1, ToReplicaId: to, Term: 6, Commit: 0}
	}
	receive(t, s, &rangekvpb.RaftMessageBatch{FromStore: 1, ToStore: 2, Heartbeats: []*rangekvpb.RaftHeartbeat{beat(4)}})
	if r := s.replica(9); r != nil {
		t.Fatalf("a heartbeat to tombstoned replica 4 created replica %d", r.replicaID)
	}
	if n := counterValue(t, s, "rangekv_raft_messages_dropped_total", "reason", "tombstone"); n != 1 {
		t.Fatalf("tombstone drops = %v, want 1", n)
	}
	receive(t, s, &rangekvpb.RaftMessageBatch{FromStore: 1, ToStore: 2, Heartbeats: []*rangekvpb.RaftHeartbeat{beat(5)}})
	r := s.replica(9)
	if r == nil || r.replicaID != 5 || r.Descriptor() != nil {
		t.Fatalf("a heartbeat to replica 5 (not tombstoned) gave replica %v, want an uninitialized replica 5", r)
	}
	defer func() { r.mu.Lock(); r.mu.rr.Close(); r.mu.Unlock() }()
	if got := takeInbox(r); len(got) != 1 || got[0].m.GetTo() != 5 {
		t.Fatalf("replica 5's inbox %v, want the heartbeat", got)
	}
	// A heartbeat to a newer replica (6) while replica 5 is still
	// uninitialized: 5 was removed from the range before it got data
	// (IDs are never reused), so 6 replaces it, and 5 is tombstoned.
	receive(t, s, &rangekvpb.RaftMessageBatch{FromStore: 1, ToStore: 2, Heartbeats: []*rangekvpb.RaftHeartbeat{beat(6)}})
	if got := takeInbox(r); len(got) != 0 {
		t.Fatalf("a heartbeat to replica 6 reached replica 5: %v", got)
	}
	r6 := s.replica(9)
	if r6 == nil || r6.replicaID != 6 || r6.Descriptor() != nil {
		t.Fatalf("a heartbeat to replica 6 gave replica %v, want an uninitialized replica 6 in place of 5", r6)
	}
	defer func() { r6.mu.Lock(); r6.mu.rr.Close(); r6.mu.Unlock() }()
	if got := takeInbox(r6); len(got) != 1 || got[0].m.GetTo() != 6 {
		t.Fatalf("replica 6's inbox %v, want the heartbeat", got)
	}
	receive(t, s, &rangekvpb.RaftMessageBatch{FromStore: 1, ToStore: 2, Heartbeats: []*rangekvpb.RaftHeartbeat{beat(5)}})
	if got := takeInbox(r6); len(got) != 0 {
		t.Fatalf("a heartbeat to the replaced replica 5 reached replica 6: %v", got)
	}
	if n := counterValue(t, s, "rangekv_raft_messages_dropped_total", "reason", "replica_id_mismatch"); n != 1 {
		t.Fatalf("replica_id_mismatch drops = %v, want 1 (the heartbeat to the replaced replica 5)", n)
	}
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// Several peer streams deliver heartbeats for many ranges concurrently
// while workers drain them through the scheduler, as the store does (run
// it with -race): no range is ever held by two workers, every message is
// processed exactly once, and each stream's messages to a range are
// processed in the order they were sent.
func TestTransportConcurrentDeliveryThroughScheduler(t *testing.T) {
	const (
		ranges  = 16
		streams = 4
		perStr  = 2000
		workers = 3
	)
	s := newTransportTestStore(t, 9)
	s.sched = newScheduler(5)
	reps := map[uint64]*Replica{}
	for id := uint64(1); id <= ranges; id++ {
		reps[id] = addTestReplica(s, id, 100+id)
	}
	var busy [ranges + 1]atomic.Int32
	var violations atomic.Int64
	var processed atomic.Int64
	// last[stream][range]: the last sequence number processed; touched by
	// the worker holding the range only.
	var last [streams + 1][ranges + 1]int64
	var orderErr atomic.Value

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []workItem
			for {
				items := s.sched.next(buf)
				if items == nil {
					return
				}
				for _, it := range items {
					if busy[it.rangeID].Add(1) != 1 {
						violations.Add(1)
					}
					for _, im := range takeInbox(reps[it.rangeID]) {
						str, seq := im.fromStore, int64(im.m.GetCommit())
						if seq <= last[str][it.rangeID] {
							orderErr.CompareAndSwap(nil, fmt.Sprintf("range %d: stream %d seq %d after %d", it.rangeID, str, seq, last[str][it.rangeID]))
						}
						last[str][it.rangeID] = seq
						processed.Add(1)
					}
					busy[it.rangeID].Add(-1)
				}
				s.sched.done(items)
				buf = items
			}
		}()
	}
	var swg sync.WaitGroup
	for str := uint64(1); str <= streams; str++ {
		swg.Add(1)
		go func() {
			defer swg.Done()
			rng := rand.New(rand.NewPCG(str, 42))
			for seq := 1; seq <= perStr; seq++ {
				id := uint64(rng.IntN(ranges) + 1)
				typ := pb.MsgHeartbeat
				if seq%3 == 0 {
					typ = pb.MsgHeartbeatResp
				}
				s.deliverHeartbeat(str, &rangekvpb.RaftHeartbeat{RangeId: id, FromReplicaId: str, ToReplicaId: 100 + id, Term: 1, Commit: uint64(seq)}, typ)
			}
		}()
	}
	swg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for processed.Load() < streams*perStr && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s.sched.stop()
	wg.Wait()
	if n := processed.Load(); n != streams*perStr {
		t.Fatalf("%d of %d delivered messages processed (lost wake-up or drop)", n, streams*perStr)
	}
	if n := violations.Load(); n != 0 {
		t.Fatalf("%d times a range was held by two workers", n)
	}
	if e := orderErr.Load(); e != nil {
		t.Fatalf("out of order: %v", e)
	}
	if n := counterValue(t, s, "rangekv_raft_messages_dropped_total", "reason", "inbox_full"); n != 0 {
		t.Fatalf("%v messages dropped for a full inbox", n)
	}
}

// gaugeValue reads a gauge of s's registry.
func gaugeValue(t testing.TB, s *Store, name string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("gauge %s not found", name)
	return 0
}

// Messages keep arriving for the right half of a split while the store
// installs it (the split batch is committed; an uninitialized replica that
// earlier messages created, if any, is being replaced). The store must end
// with exactly one replica object for the range. A replica that deliver
// creates while installRHS builds the initialized one (the range is then
// absent from s.mu.replicas) loads the on-disk log (last index 10), may
// append and acknowledge entries, and is then overwritten in the map by
// the initialized replica whose cached log lags what the leader was told:
// the next heartbeat panics it with "tocommit(11) is out of range
// [lastIndex(10)]" (seen in TestMultiraft* under -race), and two raft
// instances of one replica could vote twice in a term. The orphan also
// leaves rangekv_store_replicas one too high.
func TestTransportDeliverDuringSplitInstallCreatesNoSecondReplica(t *testing.T) {
	s := newTransportTestStore(t, 2)
	db := withMemEngine(t, s)
	for i := range 1000 {
		rangeID := uint64(100 + i)
		right := &rangekvpb.RangeDescriptor{
			RangeId: rangeID, StartKey: []byte(fmt.Sprintf("k%03d", i)), EndKey: []byte(fmt.Sprintf("k%03d~", i)),
			Epoch: &rangekvpb.RangeEpoch{ConfVer: 1, Version: 2}, NextReplicaId: 4,
			Replicas: []*rangekvpb.ReplicaDescriptor{{ReplicaId: 1, StoreId: 1}, {ReplicaId: 2, StoreId: 2}, {ReplicaId: 3, StoreId: 3}},
		}
		before := gaugeValue(t, s, "rangekv_store_replicas")
		// In odd iterations the RHS leader's vote created an uninitialized
		// replica first; in even ones the split applies before any message.
		preexisting := i%2 == 1
		if preexisting && s.createUninitialized(rangeID, 2) == nil {
			t.Fatal("could not create the uninitialized replica")
		}
		// The left range applied the split: the right's state is on disk.
		b := db.NewIndexedBatch()
		claimed, owned := s.claimRHS(right, replicaOnStore(right, s.cfg.StoreID).GetReplicaId())
		if !claimed {
			t.Fatal("could not claim the right range")
		}
		if err := s.writeSplitRHSState(b, right, owned); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		b.Close()
		// Messages start arriving as installRHS starts.
		var start, stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !start.Load() {
				runtime.Gosched()
			}
			for !stop.Load() {
				s.deliverHeartbeat(1, &rangekvpb.RaftHeartbeat{RangeId: rangeID, FromReplicaId: 1, ToReplicaId: 2, Term: 6, Commit: 10}, pb.MsgHeartbeat)
			}
		}()
		start.Store(true)
		err := s.installRHS(&splitResult{right: right, createRight: true})
		stop.Store(true)
		wg.Wait()
		if err != nil {
			t.Fatalf("installRHS: %v", err)
		}
		if r := s.replica(rangeID); r == nil || r.Descriptor() == nil {
			t.Fatalf("range %d: replica after installRHS is %v, want the initialized one", rangeID, r)
		}
		if n := gaugeValue(t, s, "rangekv_store_replicas") - before; n != 1 {
			t.Fatalf("iteration %d (uninitialized replica before the split: %v): range %d added %v replicas, want 1: "+
				"a message arriving while installRHS built the initialized replica found no replica in s.mu.replicas and createUninitialized made one over the initialized state",
				i, preexisting, rangeID, n)
		}
	}
}

// While a peer store is unreachable its stream goroutine sits in
// reconnect backoff and never takes the coalesced heartbeats, yet every
// awake range keeps adding one per tick for its follower there. What the
// transport holds for a dead peer must stay bounded like its message
// queue (peerQueueSize), or an outage of a store with many active ranges
// grows memory without limit (and the first batch after it exceeds the
// gRPC message size).
func TestTransportHeartbeatsToUnreachablePeerAreBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // connections to it are refused
	s := newTransportTestStore(t, 1)
	s.cfg.HeartbeatInterval = 20 * time.Millisecond
	s.cfg.InitialStores = map[uint64]string{1: "127.0.0.1:1", 2: dead}
	tr := newTransport(s)
	s.trans = tr
	defer tr.close()
	const ranges, ticks = 1000, 30 // 1000 awake ranges, 30 ticks of outage
	for tick := range ticks {
		for id := uint64(1); id <= ranges; id++ {
			tr.send(2, &rangekvpb.RaftMessage{RangeId: id, FromStore: 1, ToStore: 2, Message: &pb.Message{
				Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(5), Commit: proto.Uint64(uint64(tick))}})
		}
	}
	p := tr.peerFor(2)
	p.hb.Lock()
	held := len(p.hb.beats) + len(p.hb.resps)
	p.hb.Unlock()
	if held > peerQueueSize {
		t.Fatalf("%d coalesced heartbeats held for an unreachable peer (%d ranges x %d ticks), more than the peer queue bound %d: the heartbeat buffer is unbounded",
			held, ranges, ticks, peerQueueSize)
	}
}

// A store that joined under a new ID at the address of a wiped store
// (placement never reuses store IDs, but addresses are reused) still gets
// the old ID's Raft traffic from peers whose (persisted) address of the
// old store is stale. It must refuse it: delivered, a vote request would
// create the old store's replica ID here, with no record of its earlier
// votes, and its vote would count under the new store ID, which no
// incarnation fence knows.
func TestRaftStreamRefusesTrafficForAnotherStoreID(t *testing.T) {
	s := newTransportTestStore(t, 7)
	withMemEngine(t, s)
	vote := func(toStore uint64) *rangekvpb.RaftMessageBatch {
		term, idx := uint64(7), uint64(10)
		return &rangekvpb.RaftMessageBatch{FromStore: 1, ToStore: toStore,
			Messages: []*rangekvpb.RaftMessage{{RangeId: 9, FromStore: 1, ToStore: toStore, Message: &pb.Message{
				Type: pb.MsgVote.Enum(), From: proto.Uint64(1), To: proto.Uint64(3), Term: &term, LogTerm: &term, Index: &idx}}},
			Heartbeats: []*rangekvpb.RaftHeartbeat{{RangeId: 9, FromReplicaId: 1, ToReplicaId: 3, Term: 7}}}
	}
	st := &fakeRaftStream{batches: []*rangekvpb.RaftMessageBatch{overTheWire(t, vote(3))}}
	err := (&raftServer{s: s}).RaftStream(st)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a stream addressed to store 3 reaching store 7: %v, want FailedPrecondition", err)
	}
	if r := s.replica(9); r != nil {
		t.Fatalf("traffic addressed to store 3 created replica %d of range 9 on store 7", r.replicaID)
	}
	if n := counterValue(t, s, "rangekv_raft_messages_dropped_total", "reason", "wrong_store"); n != 1 {
		t.Fatalf("wrong_store drops = %v, want 1", n)
	}
	// Traffic addressed to store 7 itself is delivered.
	receive(t, s, vote(7))
	r := s.replica(9)
	if r == nil || r.replicaID != 3 {
		t.Fatalf("a vote addressed to store 7 gave replica %v, want uninitialized replica 3", r)
	}
	defer func() { r.mu.Lock(); r.mu.rr.Close(); r.mu.Unlock() }()
	if got := takeInbox(r); len(got) != 2 {
		t.Fatalf("replica 3's inbox holds %d messages, want the vote and the heartbeat", len(got))
	}
}

// A long batch notes its sender alive as it is handed out, every
// heardEvery records, not only before it: delivering tens of thousands of
// coalesced heartbeats on a busy store outlasted the liveness timeout,
// and the sender was counted dead meanwhile (every range it leads woke
// and elected again).
func TestLongBatchKeepsSenderLive(t *testing.T) {
	s := newTransportTestStore(t, 1)
	var calls atomic.Int64
	s.liveness = newLiveness(1, func() time.Time { calls.Add(1); return time.Now() }, time.Second)
	const ranges = 1000
	b := &rangekvpb.RaftMessageBatch{FromStore: 2, ToStore: 1}
	for id := uint64(1); id <= ranges; id++ {
		addTestReplica(s, id, 1)
		b.Heartbeats = append(b.Heartbeats, &rangekvpb.RaftHeartbeat{RangeId: id, FromReplicaId: 2, ToReplicaId: 1, Term: 6, Commit: 10})
	}
	before := calls.Load()
	receive(t, s, b)
	if got, want := calls.Load()-before, int64((ranges+heardEvery-1)/heardEvery); got < want {
		t.Fatalf("a batch of %d heartbeats noted its sender alive %d times, want at least %d (every %d records)", ranges, got, want, heardEvery)
	}
}

// A pass's outbox hands each peer its messages in the order the pass sent
// them, all at once: one token in the peer's ready channel (one wakeup of
// its sender), not one per message; a message the queue cannot take is
// reported to its replica's raft.
func TestOutboxFlushQueuesEachPeerOnceInOrder(t *testing.T) {
	s := newTransportTestStore(t, 1)
	tr := &transport{s: s}
	s.trans = tr
	tr.mu.peers = map[uint64]*peer{2: newPeer(2, "", nil, s.cfg.Clock), 3: newPeer(3, "", nil, s.cfg.Clock)}
	r := addTestReplica(s, 7, 1)
	msg := func(to, index uint64) *rangekvpb.RaftMessage {
		return &rangekvpb.RaftMessage{RangeId: 7, FromStore: 1, ToStore: to, Message: &pb.Message{
			Type: pb.MsgApp.Enum(), From: proto.Uint64(1), To: proto.Uint64(to), Term: proto.Uint64(3), Index: proto.Uint64(index),
			Entries: []*pb.Entry{{Index: proto.Uint64(index + 1), Term: proto.Uint64(3)}}}}
	}
	var out outbox
	want := map[uint64][]*rangekvpb.RaftMessage{}
	for i := range uint64(10) {
		to := 2 + i%2
		m := msg(to, 10+i)
		out.add(to, m, r)
		want[to] = append(want[to], m)
	}
	for _, p := range tr.mu.peers {
		if len(p.ready) != 0 || p.queueLen() != 0 {
			t.Fatalf("peer %d: queued before the flush", p.storeID)
		}
	}
	out.flush(tr)
	for id, p := range tr.mu.peers {
		if len(p.ready) != 1 {
			t.Fatalf("peer %d: %d wakeups pending, want 1", id, len(p.ready))
		}
		got := p.takeQueued(nil, maxBatchMessages)
		if !slices.Equal(got, want[id]) {
			t.Fatalf("peer %d: queued %d messages %v, want %v in order", id, len(got), got, want[id])
		}
	}
	for _, op := range out.peers {
		if len(op.envs) != 0 || len(op.from) != 0 {
			t.Fatalf("outbox keeps %d messages after the flush", len(op.envs))
		}
	}
}

// takeQueued hands out at most max messages and leaves a wakeup for the
// rest, so that the sender comes back for them.
func TestPeerTakeQueuedLeavesWakeupForTheRest(t *testing.T) {
	s := newTransportTestStore(t, 1)
	tr := &transport{s: s}
	p := newPeer(2, "", nil, s.cfg.Clock)
	tr.mu.peers = map[uint64]*peer{2: p}
	var envs []*rangekvpb.RaftMessage
	for i := range uint64(5) {
		envs = append(envs, &rangekvpb.RaftMessage{RangeId: 10 + i, Message: &pb.Message{Type: pb.MsgVote.Enum(), To: proto.Uint64(2)}})
	}
	tr.sendBatch(2, envs, func(i int) { t.Fatalf("message %d dropped", i) })
	<-p.ready
	if got := p.takeQueued(nil, 3); !slices.Equal(got, envs[:3]) {
		t.Fatalf("took %v, want the first 3", got)
	}
	if len(p.ready) != 1 {
		t.Fatal("no wakeup left for the 2 messages still queued")
	}
	<-p.ready
	if got := p.takeQueued(nil, 3); !slices.Equal(got, envs[3:]) {
		t.Fatalf("took %v, want the last 2", got)
	}
	if len(p.ready) != 0 || p.q.bytes != 0 {
		t.Fatalf("after draining: %d wakeups, %d bytes accounted, want 0 and 0", len(p.ready), p.q.bytes)
	}
}

// A store answers a peer's new stream with a stream of its own, so that
// the peer hears it: a store that joined through placement and holds
// nothing the peer leads has nothing to send it, and the peer counted it
// down for good (a leader quiesced past a learner lagging there, and the
// learner was not created until that leader's next reprobe, 100 ticks
// later; before the reprobe, never: the simulation's seed 190).
func TestStoreAnswersPeerStream(t *testing.T) {
	addr, fake := startFakeRaftServer(t) // store 1
	s := newTransportTestStore(t, 2)
	s.cfg.HeartbeatInterval = 40 * time.Millisecond
	s.storeAddrs.Store(uint64(1), addr)                                  // learned from placement
	receive(t, s, &rangekvpb.RaftMessageBatch{FromStore: 1, ToStore: 2}) // a ping on a new stream
	select {
	case b := <-fake.batches:
		if b.FromStore != 2 || b.ToStore != 1 {
			t.Fatalf("batch from %d to %d, want 2 to 1", b.FromStore, b.ToStore)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("store 2 sent nothing to store 1 within 10s of store 1's stream")
	}
}
