package nemesis

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Faults is the network fault state shared by every store of a cluster
// and the clients. The zero value injects nothing. Safe for concurrent use.
type Faults struct {
	mu sync.Mutex
	// rng decides drops (guarded by mu).
	rng *rand.Rand
	// group puts each store in a partition group; stores in different
	// groups do not hear each other. Empty: no partition.
	group map[uint64]int
	// blocked holds one-way losses: from -> to.
	blocked map[[2]uint64]bool
	// dropPct of the messages whose type is in dropTypes are lost.
	dropPct   int
	dropTypes map[string]bool
	// delay holds every batch between stores.
	delay time.Duration
	// down: the store is crashed: it neither sends nor receives, and its
	// answers to clients are lost.
	down     map[uint64]bool
	downAddr map[string]bool
	// lag holds {range ID, store ID} pairs whose replica lags: the log
	// entries (MsgApp) of that range to that store are lost, so it applies
	// nothing of the range (a split included) unless a snapshot catches it
	// up, while heartbeats and votes still reach it.
	lag map[[2]uint64]bool
}

// NewFaults returns a Faults whose random drops follow seed.
func NewFaults(seed uint64) *Faults {
	return &Faults{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), group: map[uint64]int{},
		blocked: map[[2]uint64]bool{}, down: map[uint64]bool{}, downAddr: map[string]bool{},
		lag: map[[2]uint64]bool{}}
}

// cut reports whether from cannot reach to. Called with f.mu held.
func (f *Faults) cut(from, to uint64) bool {
	if f.down[from] || f.down[to] || f.blocked[[2]uint64{from, to}] {
		return true
	}
	gf, okf := f.group[from]
	gt, okt := f.group[to]
	return okf && okt && gf != gt
}

// DropRaftMessage is the store knob: it drops a message that a partition,
// a one-way loss, a crash or the drop rate loses.
func (f *Faults) DropRaftMessage(rangeID, from, to uint64, typ string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut(from, to) {
		return true
	}
	if typ == "MsgApp" && f.lag[[2]uint64{rangeID, to}] {
		return true
	}
	return f.dropPct > 0 && f.dropTypes[typ] && f.rng.IntN(100) < f.dropPct
}

// RaftBatchFault is the store knob consulted before a batch leaves: it
// drops batches across a cut (messages queued before the cut) and delays
// the others by the current delay.
func (f *Faults) RaftBatchFault(from, to uint64) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut(from, to), f.delay
}

// Partition splits the stores into groups (each store in exactly one).
func (f *Faults) Partition(groups ...[]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.group = map[uint64]int{}
	for i, g := range groups {
		for _, s := range g {
			f.group[s] = i
		}
	}
}

// Block loses every message from -> to (one way).
func (f *Faults) Block(from, to uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked[[2]uint64{from, to}] = true
}

// Drop loses pct percent of the messages of the given Raft types.
func (f *Faults) Drop(pct int, types ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropPct, f.dropTypes = pct, map[string]bool{}
	for _, t := range types {
		f.dropTypes[t] = true
	}
}

// Delay holds every batch between stores for d.
func (f *Faults) Delay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Down marks a store crashed (true) or back (false): it is cut from every
// peer and its answers to clients at addr are lost.
func (f *Faults) Down(storeID uint64, addr string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if down {
		f.down[storeID], f.downAddr[addr] = true, true
	} else {
		delete(f.down, storeID)
		delete(f.downAddr, addr)
	}
}

// Lag makes the replica of rangeID on storeID lag (true) or catch up
// again (false): log entries of the range to the store are lost meanwhile.
func (f *Faults) Lag(rangeID, storeID uint64, lag bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if lag {
		f.lag[[2]uint64{rangeID, storeID}] = true
	} else {
		delete(f.lag, [2]uint64{rangeID, storeID})
	}
}

// Heal lifts every network fault (not crashes).
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.group, f.blocked, f.dropPct, f.dropTypes, f.delay = map[uint64]int{}, map[[2]uint64]bool{}, 0, nil, 0
	f.lag = map[[2]uint64]bool{}
}

func (f *Faults) isDown(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.downAddr[addr]
}

// ClientInterceptor loses the answers of crashed stores: a call to a store
// that is down when the answer arrives fails with Unavailable, as a call
// to a process that died would (a write's outcome is then unknown).
func (f *Faults) ClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if f.isDown(cc.Target()) {
			return status.Error(codes.Unavailable, "nemesis: the store crashed before answering")
		}
		return err
	}
}

// StreamInterceptor does the same for the KV calls a router carries on a
// BatchCommands stream: an answer that arrives once its store is down is
// lost, and the stream with it (every call in flight on it is ambiguous).
func (f *Faults) StreamInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return cs, err
		}
		return &faultStream{ClientStream: cs, down: func() bool { return f.isDown(cc.Target()) }}, nil
	}
}

type faultStream struct {
	grpc.ClientStream
	down func() bool
}

func (s *faultStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if s.down() {
		return status.Error(codes.Unavailable, "nemesis: the store crashed before answering")
	}
	return err
}
