// Peer store addresses: learned from placement, kept in the engine so that
// a restarted store finds its peers while placement is down, refreshed from
// placement in the background, and looked up off the Raft workers.
//
// Invariant: a Raft worker (or anything holding a replica's mutex) never
// waits on the network for an address: the transport takes what is cached
// and asks the resolver, whose one goroutine does the placement RPCs; a
// message to a store whose address is not known yet is dropped (Raft sends
// it again). A failed lookup is not tried again for a backoff that doubles
// with each failure, so an unknown store costs a few RPCs, not one per
// message.

package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/proto/rangekvpb"
)

const (
	// lookupTimeout bounds one address lookup at placement.
	lookupTimeout = 3 * time.Second
	// lookupBackoffMin and lookupBackoffMax bound how long a failed
	// lookup of a store is not tried again.
	lookupBackoffMin = 100 * time.Millisecond
	lookupBackoffMax = 5 * time.Second
	// lookupQueue bounds the lookups waiting for the resolver.
	lookupQueue = 256
	// peerRefreshEvery: the peer addresses are fetched from placement
	// after each (re)join and then every this many store reports.
	peerRefreshEvery = 10
)

// cachedStoreAddr returns the address of a store from the static list or
// what the store learned; it never does I/O.
func (s *Store) cachedStoreAddr(id uint64) (string, bool) {
	if a, ok := s.cfg.InitialStores[id]; ok {
		return a, true
	}
	if a, ok := s.storeAddrs.Load(id); ok {
		return a.(string), true
	}
	return "", false
}

// lookupStoreAddr returns a store's address, asking placement (within ctx)
// if it is not known. It blocks: for admin requests, never on a worker.
func (s *Store) lookupStoreAddr(ctx context.Context, id uint64) (string, bool) {
	if a, ok := s.cachedStoreAddr(id); ok {
		return a, true
	}
	if s.pd == nil {
		return "", false
	}
	addr, err := s.fetchStoreAddr(ctx, id)
	return addr, err == nil
}

// fetchStoreAddr asks placement for a store's address and remembers it.
func (s *Store) fetchStoreAddr(ctx context.Context, id uint64) (string, error) {
	var addr string
	err := s.pd.call(ctx, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		r, err := pc.GetStore(ctx, &rangekvpb.GetStoreRequest{StoreId: id})
		if err != nil {
			return nil, err
		}
		addr = r.GetStore().GetStore().GetAddress()
		return r.Error, nil
	})
	s.notePlacement("get_store", err)
	if err == nil && addr == "" {
		err = errors.New("placement knows no address for the store")
	}
	if err != nil {
		s.metrics.addrLookups.WithLabelValues("error").Inc()
		return "", err
	}
	s.metrics.addrLookups.WithLabelValues("ok").Inc()
	s.learnStoreAddr(id, addr)
	return addr, nil
}

// learnStoreAddr records a peer store's address in memory and, when it
// changed, in the engine.
func (s *Store) learnStoreAddr(id uint64, addr string) {
	if id == 0 || id == s.cfg.StoreID || addr == "" {
		return
	}
	old, had := s.storeAddrs.Swap(id, addr)
	if had && old.(string) == addr {
		return
	}
	if had && s.trans != nil {
		// The peer dialled the old address: replace it (the next
		// message dials the new one), or the store would never be
		// reached at its new address.
		s.trans.redial(id, addr)
	}
	v, err := proto.Marshal(&rangekvpb.StoreDescriptor{StoreId: id, Address: addr})
	if err == nil {
		err = s.db.Set(keys.PeerStoreKey(id), v, pebble.Sync)
	}
	if err != nil {
		s.log.Warn("persist a peer store's address", "peer", id, "addr", addr, "err", err)
	}
}

// loadPeerAddrs fills the address cache from the engine.
func (s *Store) loadPeerAddrs() error {
	prefix := keys.PeerStorePrefix()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		var d rangekvpb.StoreDescriptor
		if err := proto.Unmarshal(it.Value(), &d); err != nil {
			s.log.Warn("ignoring an unreadable peer store address", "key", it.Key(), "err", err)
			continue
		}
		if d.StoreId != 0 && d.StoreId != s.cfg.StoreID && d.Address != "" {
			s.storeAddrs.Store(d.StoreId, d.Address)
			n++
		}
	}
	if n > 0 {
		s.log.Info("loaded peer store addresses from the data directory", "peers", n)
	}
	return it.Error()
}

// refreshPeerAddrs fetches every store's address from placement.
func (s *Store) refreshPeerAddrs() {
	ctx, cancel := s.pdCtx(lookupTimeout)
	defer cancel()
	var stores []*rangekvpb.StoreInfo
	err := s.pd.callIfReachable(ctx, func(ctx context.Context, pc rangekvpb.PlacementClient) (*rangekvpb.PlacementError, error) {
		r, err := pc.ListStores(ctx, &rangekvpb.ListStoresRequest{})
		if err != nil {
			return nil, err
		}
		stores = r.Stores
		return r.Error, nil
	})
	s.notePlacement("list_stores", err)
	if err != nil {
		return
	}
	for _, st := range stores {
		s.learnStoreAddr(st.GetStore().GetStoreId(), st.GetStore().GetAddress())
	}
}

// notePlacement records the outcome of a call to placement: the
// rangekv_store_placement_reachable gauge, and a log line when placement
// becomes unreachable or reachable again (not one per failed call).
func (s *Store) notePlacement(op string, err error) {
	up := int32(1)
	if err != nil {
		up = 0
	}
	s.metrics.placementReachable.Set(float64(up))
	if s.pdUp.Swap(up) == up {
		return
	}
	if up == 0 {
		s.log.Warn("placement unreachable: the store keeps serving its ranges; splits, operators and address lookups wait for it",
			"op", op, "placement", s.cfg.Placement, "err", err)
	} else {
		s.log.Info("placement reachable", "op", op)
	}
}

// addrResolver looks up unknown store addresses for the transport, on its
// own goroutine.
type addrResolver struct {
	s    *Store
	work chan uint64
	mu   struct {
		sync.Mutex
		// lookups holds the stores whose lookup is queued or running
		// (inFlight) or failed (retryAt).
		lookups map[uint64]*lookupState
	}
}

type lookupState struct {
	inFlight bool
	failures int
	retryAt  time.Time
}

func newAddrResolver(s *Store) *addrResolver {
	r := &addrResolver{s: s, work: make(chan uint64, lookupQueue)}
	r.mu.lookups = make(map[uint64]*lookupState)
	return r
}

// request asks for a lookup of id's address unless one is queued, running,
// or failed less than a backoff ago. It never blocks.
func (r *addrResolver) request(id uint64) {
	now := r.s.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.mu.lookups[id]
	if st == nil {
		st = &lookupState{}
		r.mu.lookups[id] = st
	}
	if st.inFlight || now.Before(st.retryAt) {
		return
	}
	select {
	case r.work <- id:
		st.inFlight = true
	default: // full: asked again with the next message
	}
}

// run does the lookups until the store stops.
func (r *addrResolver) run() {
	defer r.s.wg.Done()
	for {
		select {
		case <-r.s.stopCh:
			return
		case id := <-r.work:
			r.lookup(id)
		}
	}
}

func (r *addrResolver) lookup(id uint64) {
	s := r.s
	var err error
	if _, ok := s.cachedStoreAddr(id); !ok {
		ctx, cancel := s.pdCtx(lookupTimeout)
		_, err = s.fetchStoreAddr(ctx, id)
		cancel()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.mu.lookups[id]
	if err == nil {
		delete(r.mu.lookups, id)
		return
	}
	st.inFlight = false
	st.failures++
	backoff := min(lookupBackoffMin<<min(st.failures-1, 16), lookupBackoffMax)
	st.retryAt = s.now().Add(backoff)
	if st.failures == 1 {
		s.log.Warn("cannot find a peer store's address: messages to it are dropped until a lookup succeeds", "peer", id, "err", err)
	}
}

// peerStoreIDs lists the other stores this store knows of.
func (s *Store) peerStoreIDs() []uint64 {
	out := make([]uint64, 0, len(s.cfg.InitialStores))
	for id := range s.cfg.InitialStores {
		if id != s.cfg.StoreID {
			out = append(out, id)
		}
	}
	s.storeAddrs.Range(func(k, _ any) bool {
		if id := k.(uint64); id != s.cfg.StoreID && s.cfg.InitialStores[id] == "" {
			out = append(out, id)
		}
		return true
	})
	return out
}
