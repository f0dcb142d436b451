// The Client and its one retry loop. How a key's range, its leader and the
// stores' addresses are learned is a routeSource: from the stores
// themselves (NewStatic) or from the placement driver (New); everything
// else — the caches, connections, backoff, and what each range error does
// to the cache — is shared here.

package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Options tune a Client. The zero value is usable.
type Options struct {
	// MinBackoff and MaxBackoff bound the retry backoff.
	MinBackoff, MaxBackoff time.Duration
	// ConnectTimeout bounds waiting for a store (or placement member)
	// connection before trying another one.
	ConnectTimeout time.Duration
	// PlacementTimeout bounds one read-only call to one placement member
	// before the next member is tried (default 3s).
	PlacementTimeout time.Duration
	// Prefetch is how many following ranges a cache miss loads from
	// placement with the range it needs (default 8; New only).
	Prefetch int
	// MaxFanout bounds the ranges a Scan, BatchGet or Batch works on at
	// once (default 16).
	MaxFanout int
	// Consistency is the default read consistency.
	Consistency rangekvpb.ReadConsistency
	// Seed seeds the backoff jitter (0: from the clock).
	Seed uint64
	// Clock times the retry backoff and the client's own timeouts
	// (connect, placement calls). Nil: package time. The deterministic
	// simulation gives its simulated one.
	Clock Clock
	// TLS, when set, makes every connection (to stores and placement)
	// TLS with this configuration: give it the client certificate
	// (Certificates or GetClientCertificate) and the cluster's CA
	// (RootCAs), as the servers require a client certificate. Nil:
	// plaintext.
	TLS *tls.Config
	// DialOptions are added to every connection after TLS (transport
	// credentials given here replace it).
	DialOptions []grpc.DialOption
	// Network makes every connection (to stores and placement) with the
	// dial options above. Nil: grpc.NewClient, over TCP. The deterministic
	// simulation sets a node of an in-process network (see Network).
	Network Network
	// UnaryKV sends every KV call as its own unary RPC instead of on the
	// store's mux stream, BatchCommands (where calls waiting at the same
	// time share a message). For comparison and debugging; stores without the
	// stream are detected and get unary calls anyway.
	UnaryKV bool

	// tlsFailures is shared by a client's connections (set by newClient).
	tlsFailures *handshakeFailures
}

func (o *Options) setDefaults() {
	if o.MinBackoff == 0 {
		o.MinBackoff = 10 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 500 * time.Millisecond
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 500 * time.Millisecond
	}
	if o.PlacementTimeout == 0 {
		o.PlacementTimeout = 3 * time.Second
	}
	if o.Prefetch == 0 {
		o.Prefetch = 8
	}
	if o.MaxFanout <= 0 {
		o.MaxFanout = 16
	}
	if o.Seed == 0 {
		now := time.Now()
		if o.Clock != nil {
			now = o.Clock.Now()
		}
		o.Seed = uint64(now.UnixNano())
	}
}

// maxMessageBytes bounds one request or response (values are at most
// 8 MiB; a scan page at most 16 MiB).
const maxMessageBytes = 64 << 20

// Fixed HTTP/2 flow-control windows. gRPC's default window is adaptive:
// it measures bandwidth-delay with a PING on every data frame it receives
// while none is outstanding, which costs a write syscall each way for
// small request-response traffic like ours. A fixed window has no such
// pings; 8 MiB per stream covers the largest values at full speed on any
// LAN.
const (
	streamWindowBytes = 8 << 20
	connWindowBytes   = 32 << 20
)

// maxHintHops is how many NotLeader hints one call follows without
// backoff (more means the hints go round while a leader is elected).
const maxHintHops = 3

// maxEpochRetries is how many EpochNotMatch answers in a row are retried at
// once (the answer carries the current descriptors); past it, backoff.
const maxEpochRetries = 2

// routeSource is how a Client learns what its caches do not hold. All
// methods are called without Client.mu held.
type routeSource interface {
	// load returns the route of the range holding key, and possibly of
	// ranges after it, on a cache miss. A source that cannot tell (static)
	// returns none: the request then goes to pick's address without a
	// range, and the store routes it.
	load(ctx context.Context, key []byte) ([]*rangekvpb.RouteInfo, error)
	// spans returns the routes of the ranges overlapping [start, end) in
	// key order, or nil when the source cannot tell (static).
	spans(ctx context.Context, start, end []byte) ([]*rangekvpb.RouteInfo, error)
	// storeAddr resolves a store's address ("" when the source cannot).
	storeAddr(ctx context.Context, storeID uint64) (string, error)
	// pick chooses where to send a request for a range whose leader is
	// unknown (after is zero) or did not answer (after is where it went).
	// d may be nil (static, before the first answer).
	pick(d *rangekvpb.RangeDescriptor, after leader) leader
	// hinted is told of a NotLeader hint; false when it cannot be
	// followed.
	hinted(hint leader) bool
	// learn is told that a request sent without a known range succeeded at
	// addr, or that addr disowned a range: it returns the ranges addr holds
	// (with addr's store as leader of those it leads) and addr's store ID,
	// or nothing.
	learn(ctx context.Context, addr string) ([]*rangekvpb.RouteInfo, uint64)
	close()
}

// Client routes key-value requests to range leaders. Safe for concurrent
// use.
type Client struct {
	opts Options
	src  routeSource
	pd   *pdClient // nil for a static client

	// loadSem (capacity 1) serializes cache misses (load, storeAddr) so
	// that concurrent misses of the same range make one placement call.
	// It is a channel, not a mutex, because its holder waits on the
	// network: a caller queued behind it gives up when its context ends.
	loadSem chan struct{}
	// Lock order: loadSem before mu before connsMu.
	mu struct {
		sync.Mutex
		cache rangeCache
		// stores maps store IDs to the addresses learned for them.
		stores map[uint64]string
	}
	backoff *backoff
	// spreadMu guards spreadRand, which spreads FOLLOWER and STALE reads
	// over replicas (readTarget; seeded from Options.Seed).
	spreadMu   sync.Mutex
	spreadRand *rand.Rand
	connsMu    struct {
		sync.Mutex
		conns  map[string]Conn
		kvs    map[string]rangekvpb.KVClient // per conns entry
		closed bool
	}
}

func newClient(opts Options) *Client {
	opts.setDefaults()
	opts.tlsFailures = &handshakeFailures{}
	c := &Client{opts: opts, spreadRand: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5851f42d4c957f2d))}
	c.backoff = newBackoff(opts.Clock, opts.MinBackoff, opts.MaxBackoff, opts.Seed, opts.Seed^0x9e3779b97f4a7c15)
	c.mu.stores = map[uint64]string{}
	c.loadSem = make(chan struct{}, 1)
	c.connsMu.conns = map[string]Conn{}
	c.connsMu.kvs = map[string]rangekvpb.KVClient{}
	return c
}

func dialOptions(opts Options) []grpc.DialOption {
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = newTLSCreds(opts.TLS, opts.tlsFailures)
	}
	return append([]grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithInitialWindowSize(streamWindowBytes), grpc.WithInitialConnWindowSize(connWindowBytes),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes))}, opts.DialOptions...)
}

// conn returns the (shared) connection to addr, creating it if needed.
func (c *Client) conn(addr string) (Conn, error) {
	cc, _, err := c.storeConn(addr)
	return cc, err
}

// storeConn returns the (shared) connection to addr, creating it if
// needed, and the KV client over it.
func (c *Client) storeConn(addr string) (Conn, rangekvpb.KVClient, error) {
	c.connsMu.Lock()
	defer c.connsMu.Unlock()
	if c.connsMu.closed {
		return nil, nil, errors.New("router: client closed")
	}
	if cc, ok := c.connsMu.conns[addr]; ok {
		return cc, c.connsMu.kvs[addr], nil
	}
	cc, err := dial(c.opts, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("router: store address %q: %w", addr, err)
	}
	var kv rangekvpb.KVClient
	if c.opts.UnaryKV {
		kv = rangekvpb.NewKVClient(cc)
	} else {
		kv = newMuxKV(cc)
	}
	c.connsMu.conns[addr], c.connsMu.kvs[addr] = cc, kv
	return cc, kv, nil
}

// Close closes every connection. Calls in flight fail.
func (c *Client) Close() error {
	c.connsMu.Lock()
	c.connsMu.closed = true
	kvs := c.connsMu.kvs
	c.connsMu.kvs = nil
	c.connsMu.Unlock()
	for _, kv := range kvs {
		if b, ok := kv.(*muxKV); ok {
			b.close()
		}
	}
	c.connsMu.Lock()
	for _, cc := range c.connsMu.conns {
		cc.Close()
	}
	c.connsMu.conns = nil
	c.connsMu.Unlock()
	if c.src != nil {
		c.src.close()
	}
	return nil
}

// route is where one attempt goes.
type route struct {
	desc   *rangekvpb.RangeDescriptor // nil: unknown (the store routes)
	leader leader                     // addr is always set
}

func (r route) rangeID() uint64 {
	if r.desc == nil {
		return 0
	}
	return r.desc.RangeId
}

// header is the request header of an attempt over r: the range and epoch
// the cache holds (none when unknown: the store routes by key).
func (r route) header(cons rangekvpb.ReadConsistency) *rangekvpb.RequestHeader {
	h := &rangekvpb.RequestHeader{Consistency: cons}
	if r.desc != nil {
		h.RangeId, h.Epoch = r.desc.RangeId, r.desc.Epoch
	}
	return h
}

// insertRoutesLocked caches placement routes.
func (c *Client) insertRoutesLocked(infos []*rangekvpb.RouteInfo) {
	for _, ri := range infos {
		if ri.GetDescriptor_() == nil {
			continue
		}
		l := leader{storeID: ri.LeaderStoreId}
		if l.storeID != 0 {
			l.addr = c.mu.stores[l.storeID]
		}
		c.mu.cache.insert(ri.Descriptor_, l)
	}
}

// route finds the range of key and where its leader is, asking the source
// for what the caches lack.
func (c *Client) route(ctx context.Context, key []byte) (route, error) {
	c.mu.Lock()
	e, ok := c.mu.cache.lookup(key)
	c.mu.Unlock()
	if !ok {
		// A static source loads nothing: e stays zero (no range, the
		// store routes).
		var err error
		if e, _, err = c.load(ctx, key); err != nil {
			return route{}, err
		}
	}
	r := route(e)
	for range 3 {
		if !r.leader.known() {
			r.leader = c.src.pick(r.desc, leader{})
			c.setLeader(r.rangeID(), r.leader)
		}
		if r.leader.addr != "" {
			return r, nil
		}
		addr, err := c.storeAddr(ctx, r.leader.storeID)
		var nf *NotFoundError
		if errors.As(err, &nf) {
			r.leader = c.src.pick(r.desc, r.leader) // a store placement no longer knows
			continue
		}
		if err != nil {
			return route{}, err
		}
		if addr != "" {
			r.leader.addr = addr
			c.setLeader(r.rangeID(), r.leader)
			return r, nil
		}
		r.leader = c.src.pick(r.desc, r.leader)
	}
	return route{}, fmt.Errorf("router: no address known for any replica of range %d", r.rangeID())
}

// load fills the cache for key from the source. Loads run one at a time
// (loadSem), so that many requests missing the same range at once (a cold
// start) make one placement call, not one each.
func (c *Client) load(ctx context.Context, key []byte) (cacheEntry, bool, error) {
	if err := c.lockLoad(ctx); err != nil {
		return cacheEntry{}, false, err
	}
	defer c.unlockLoad()
	c.mu.Lock()
	e, ok := c.mu.cache.lookup(key)
	c.mu.Unlock()
	if ok {
		return e, true, nil // loaded while we waited
	}
	infos, err := c.src.load(ctx, key)
	if err != nil {
		return cacheEntry{}, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insertRoutesLocked(infos)
	e, ok = c.mu.cache.lookup(key)
	if !ok && len(infos) > 0 {
		return cacheEntry{}, false, fmt.Errorf("router: placement returned no range holding key %q", key)
	}
	return e, ok, nil
}

// storeAddr resolves a store ID through the cache, then the source (one
// lookup at a time, as load).
func (c *Client) storeAddr(ctx context.Context, storeID uint64) (string, error) {
	if storeID == 0 {
		return "", nil
	}
	c.mu.Lock()
	a, ok := c.mu.stores[storeID]
	c.mu.Unlock()
	if ok {
		return a, nil
	}
	if err := c.lockLoad(ctx); err != nil {
		return "", err
	}
	defer c.unlockLoad()
	c.mu.Lock()
	a, ok = c.mu.stores[storeID]
	c.mu.Unlock()
	if ok {
		return a, nil
	}
	a, err := c.src.storeAddr(ctx, storeID)
	if err != nil || a == "" {
		return "", err
	}
	c.mu.Lock()
	c.mu.stores[storeID] = a
	c.mu.Unlock()
	return a, nil
}

// lockLoad takes loadSem, or returns ctx's error if ctx ends first.
func (c *Client) lockLoad(ctx context.Context) error {
	select {
	case c.loadSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) unlockLoad() { <-c.loadSem }

func (c *Client) setLeader(rangeID uint64, l leader) {
	if rangeID == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.cache.setLeader(rangeID, l)
}

// unreachable: r's store did not answer (or could not serve the range):
// the range moves to another replica (or address). A placement client also
// forgets the store's address, so a store that came back elsewhere is
// found again.
func (c *Client) unreachable(r route) {
	next := c.src.pick(r.desc, r.leader)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pd != nil && r.leader.storeID != 0 {
		delete(c.mu.stores, r.leader.storeID)
	}
	if r.desc != nil {
		if e, ok := c.mu.cache.byID(r.desc.RangeId); ok && e.leader == r.leader {
			c.mu.cache.setLeader(r.desc.RangeId, next)
		}
	}
}

// followHint applies a NotLeader hint; it returns true when the hinted
// leader differs from where the request went, so an immediate retry can
// succeed.
func (c *Client) followHint(r route, nl *rangekvpb.NotLeader) bool {
	hint := leader{storeID: nl.LeaderStoreId, addr: nl.LeaderAddress}
	switch {
	case !hint.known():
		return false
	case hint.storeID != 0 && hint.storeID == r.leader.storeID:
		return false
	case hint.addr != "" && hint.addr == r.leader.addr:
		return false
	case !c.src.hinted(hint):
		return false // e.g. an address a static client was not given
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hint.storeID != 0 && hint.addr != "" {
		c.mu.stores[hint.storeID] = hint.addr
	}
	if hint.addr == "" {
		hint.addr = c.mu.stores[hint.storeID] // "" is resolved by route
	}
	rangeID := nl.RangeId
	if rangeID == 0 {
		rangeID = r.rangeID()
	}
	if c.mu.cache.setNewerLeader(rangeID, nl.GetLeader().GetReplicaId(), hint) {
		return true
	}
	// The range is not cached: only a static client (whose source now
	// sends uncached ranges to the hint) gains from an immediate retry.
	return c.pd == nil
}

// epochChanged caches the current descriptors a store answered with and
// reports whether the cache changed. The store that answered is guessed to
// lead the ranges it holds: after a split the new range's leader is the
// old one's, so the retry usually succeeds at once.
func (c *Client) epochChanged(r route, current []*rangekvpb.RangeDescriptor) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for _, d := range current {
		l := r.leader
		if l.storeID != 0 && !hasStore(d, l.storeID) {
			l = leader{}
		}
		// insert refuses a descriptor older than the cached one: the store
		// lags behind what we know.
		changed = c.mu.cache.insert(d, l) || changed
	}
	return changed
}

// stale: the store does not hold r's range, or the key is outside it. The
// range is dropped so the next attempt reloads it; a static client asks
// the store what it holds instead.
func (c *Client) stale(ctx context.Context, r route, notFound bool) {
	c.mu.Lock()
	if r.desc != nil {
		c.mu.cache.drop(r.desc.RangeId)
	}
	c.mu.Unlock()
	if notFound {
		c.unreachable(r)
	}
	c.learnFrom(ctx, r.leader.addr)
}

// learnFrom caches what the source learns from a store: the ranges it
// holds, with itself as the leader of those it leads.
func (c *Client) learnFrom(ctx context.Context, addr string) {
	infos, storeID := c.src.learn(ctx, addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if storeID != 0 {
		c.mu.stores[storeID] = addr
	}
	c.insertRoutesLocked(infos)
}

// ready waits (briefly) for the connection to be up, so that a write is
// only sent over a working connection: a failure before sending is then
// known not to have applied.
func (c *Client) ready(ctx context.Context, conn Conn) bool {
	return readyConn(ctx, conn, c.opts.Clock, c.opts.ConnectTimeout)
}

type call func(ctx context.Context, kv rangekvpb.KVClient, h *rangekvpb.RequestHeader) (*rangekvpb.ResponseHeader, error)

// deadlineError is the caller's context ending while retrying: it is the
// context's error (errors.Is works) and says what the last attempt met.
type deadlineError struct {
	err  error
	last error
}

func (e *deadlineError) Error() string {
	return fmt.Sprintf("%v (last error: %v)", e.err, e.last)
}
func (e *deadlineError) Unwrap() error { return e.err }

func ctxErr(err, last error) error {
	if last == nil {
		return err
	}
	return &deadlineError{err: err, last: last}
}

// rangeErrorf renders a range error for deadlineError.
func rangeErrorf(re *rangekvpb.RangeError) error {
	return fmt.Errorf("range error: %s", re.Message)
}

// do runs fn against the leader of key's range, retrying on range errors
// and unreachable stores until ctx ends. write marks calls whose outcome
// may be ambiguous: they are never retried once sent unless the answer
// proves they did not apply.
//
// FOLLOWER and STALE reads first go to replicas chosen by readTarget
// (spread over the range's replicas); a replica that does not answer or
// answers with a range error is not asked again in this call, and once
// every replica was tried the read goes the leader's way like the others.
func (c *Client) do(ctx context.Context, op string, key []byte, write bool, cons rangekvpb.ReadConsistency, fn call) error {
	return c.doChecked(ctx, op, key, write, cons, nil, fn)
}

// errRegroup: the route found for a multi-key request no longer holds all
// its keys (the cache learned of a split); nothing was sent in the attempt
// that returns it, and every earlier attempt was refused, so the caller
// regroups the keys and sends each group on its own.
var errRegroup = errors.New("router: the keys no longer fall in one range")

// errBatchStopped: a Batch's group not sent because another group failed
// first (never returned to the caller).
var errBatchStopped = errors.New("router: batch stopped by an earlier failure")

// doChecked is do with a check run on each attempt's route before sending:
// when it returns false, doChecked returns errRegroup.
func (c *Client) doChecked(ctx context.Context, op string, key []byte, write bool, cons rangekvpb.ReadConsistency, check func(r route) bool, fn call) error {
	epochRetries, hops := 0, 0
	var last error
	spread := !write && (cons == rangekvpb.ReadConsistency_FOLLOWER || cons == rangekvpb.ReadConsistency_STALE)
	var tried map[string]bool // replicas a spread read gave up on
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return ctxErr(err, last)
		}
		r, err := c.route(ctx, key)
		if err != nil {
			if isPermanent(err) {
				return err
			}
			last = err
			if err := c.backoff.wait(ctx, attempt); err != nil {
				return ctxErr(err, last)
			}
			continue
		}
		if check != nil && !check(r) {
			return errRegroup
		}
		if spread {
			if t, ok := c.readTarget(ctx, r, tried); ok {
				done, err := c.spreadRead(ctx, r, t, cons, fn)
				if done {
					return err
				}
				if tried == nil {
					tried = map[string]bool{}
				}
				tried[t.addr], last = true, err
				continue // the next replica, at once
			}
		}
		conn, kv, err := c.storeConn(r.leader.addr)
		if err != nil {
			return err
		}
		if !c.ready(ctx, conn) {
			if err := c.opts.tlsFailures.get(r.leader.addr); err != nil {
				return err
			}
			last = fmt.Errorf("store %s unreachable", r.leader)
			c.unreachable(r)
			if err := c.backoff.wait(ctx, attempt); err != nil {
				return ctxErr(err, last)
			}
			continue
		}
		hdr, err := fn(ctx, kv, r.header(cons))
		if err != nil {
			switch {
			case notSent(err) && ctx.Err() == nil:
				// Never left this process: safe to retry, even a write.
			case write && mayHaveApplied(err):
				return &AmbiguousError{Op: op, Reason: err.Error()}
			case !transportFailure(err):
				return err // the store's definite answer
			case ctx.Err() != nil:
				return ctxErr(ctx.Err(), err)
			}
			last = err
			c.unreachable(r)
			if err := c.backoff.wait(ctx, attempt); err != nil {
				return ctxErr(err, last)
			}
			continue
		}
		re := hdr.GetError()
		if re == nil {
			if r.desc == nil {
				c.learnFrom(ctx, r.leader.addr) // learn the ranges for the next calls
			}
			return nil
		}
		last = rangeErrorf(re)
		switch {
		case re.DiskFull != nil:
			df := re.DiskFull
			return &DiskFullError{Op: op, StoreID: df.StoreId, Dir: df.Dir, FreeBytes: df.FreeBytes, MinFreeBytes: df.MinFreeBytes}
		case re.AmbiguousResult != nil && write:
			return &AmbiguousError{Op: op, Reason: re.Message}
		case re.NotLeader != nil:
			if c.followHint(r, re.NotLeader) {
				if hops++; hops <= maxHintHops {
					continue // one extra round trip, no backoff
				}
				break // hints going round (an election): back off
			}
			c.unreachable(r) // no usable hint: try another replica
		case re.EpochNotMatch != nil:
			if !c.epochChanged(r, re.EpochNotMatch.Current) {
				// The store is behind us (or told nothing new): ask
				// another replica.
				c.unreachable(r)
			} else if epochRetries++; epochRetries <= maxEpochRetries {
				continue // the cache now has the current descriptors
			}
		case re.KeyNotInRange != nil:
			c.stale(ctx, r, false)
			if epochRetries++; epochRetries <= maxEpochRetries && c.pd != nil {
				continue // placement knows the range that holds the key
			}
		case re.RangeNotFound != nil:
			c.stale(ctx, r, true)
		}
		// ServerBusy, StaleCommand and the cases above: wait, then retry.
		if err := c.backoff.wait(ctx, attempt); err != nil {
			return ctxErr(err, last)
		}
	}
}

// mayHaveApplied reports whether a write that failed with err may still
// have applied. It is decided by where the failure came from, not by its
// code alone:
//   - not sent (notSentError): no;
//   - sent on a stream that broke before the answer (lostError): yes,
//     whatever code the stream carried;
//   - the store's own answer carried by the stream (answerError): no, unless
//     the code says the store stopped waiting for the outcome itself
//     (Unavailable, DeadlineExceeded, Canceled);
//   - any other failure is a unary RPC's, or this process's (the caller's
//     context ended while the call was out): it is the store's answer only
//     when its code is one that gRPC itself never produces (a handler's
//     validation: InvalidArgument, FailedPrecondition, OutOfRange, ...) or
//     one that refuses a call before any handler runs (Unimplemented,
//     Unauthenticated, PermissionDenied). Every code the gRPC library may
//     produce on a broken connection or stream (Unavailable, Internal,
//     Unknown, ResourceExhausted, Canceled, DeadlineExceeded) may hide a
//     write that applied.
//
// Typed definite refusals (a full disk, a busy replica, a stale epoch)
// travel as range errors in the response header, never as errors here.
func mayHaveApplied(err error) bool {
	if notSent(err) {
		return false
	}
	if lost(err) {
		return true
	}
	var ans *answerError
	if errors.As(err, &ans) {
		switch ans.st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			return true
		}
		return false
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted,
		codes.OutOfRange, codes.DataLoss, codes.Unimplemented, codes.Unauthenticated, codes.PermissionDenied:
		return false
	}
	return true
}

// transportFailure reports failures that say nothing about the store's
// answer (the call did not get through, or its answer did not come back):
// a read is retried elsewhere after them.
func transportFailure(err error) bool {
	if notSent(err) || lost(err) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// isPermanent reports errors that retrying cannot fix.
func isPermanent(err error) bool {
	var pe *PlacementError
	if errors.As(err, &pe) {
		return pe.Permanent
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		return true
	}
	var ae *AuthError
	return errors.As(err, &ae)
}

// readTarget picks the replica a FOLLOWER or STALE read of r's range goes
// to: a random one of the range's replicas whose address is known (for a
// static client, over its stores when some are not), skipping those in
// tried. False when none is left: the read then goes the leader's way.
func (c *Client) readTarget(ctx context.Context, r route, tried map[string]bool) (leader, bool) {
	var cands []leader
	resolved := r.desc != nil
	for _, rd := range r.desc.GetReplicas() {
		a, err := c.storeAddr(ctx, rd.StoreId)
		if err != nil || a == "" {
			resolved = false
			continue
		}
		cands = append(cands, leader{storeID: rd.StoreId, addr: a})
	}
	if ss, ok := c.src.(*staticSource); ok && !resolved {
		// A store without the range answers RangeNotFound: tried next.
		cands = cands[:0]
		for _, a := range ss.addrs {
			cands = append(cands, leader{addr: a})
		}
	}
	n := len(cands)
	if n == 0 {
		return leader{}, false
	}
	c.spreadMu.Lock()
	start := c.spreadRand.IntN(n)
	c.spreadMu.Unlock()
	for i := range n {
		if l := cands[(start+i)%n]; !tried[l.addr] {
			return l, true
		}
	}
	return leader{}, false
}

// spreadRead makes one attempt of a read at replica t. done reports that
// the call is over (with err); otherwise err says why t did not serve it.
// A replica's answer changes no cached leader: it may not be the leader.
func (c *Client) spreadRead(ctx context.Context, r route, t leader, cons rangekvpb.ReadConsistency, fn call) (done bool, err error) {
	conn, kv, err := c.storeConn(t.addr)
	if err != nil {
		return true, err
	}
	if !c.ready(ctx, conn) {
		return false, fmt.Errorf("store %s unreachable", t)
	}
	hdr, err := fn(ctx, kv, r.header(cons))
	if err != nil {
		if !transportFailure(err) {
			return true, err
		}
		if ctx.Err() != nil {
			return true, ctxErr(ctx.Err(), err)
		}
		return false, err
	}
	if re := hdr.GetError(); re != nil {
		return false, rangeErrorf(re)
	}
	if r.desc == nil {
		c.learnFrom(ctx, t.addr)
	}
	return true, nil
}
