// The simulator's Wire: every envelope of the Direct network waits here
// until the scheduler delivers it (or loses, delays or duplicates it, as
// the faults in force say). Envelopes of one call and one direction keep
// their order, as on one TCP connection.

package sim

import (
	"bytes"
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rangekv/rangekv/internal/grpcnet"
)

// wire implements grpcnet.Wire. Send may run on any goroutine; everything
// else runs on the simulator's.
type wire struct {
	mu    sync.Mutex
	inbox []*grpcnet.Envelope

	calls    map[*grpcnet.Call]*callState
	nextCall uint64
	// lanes are the FIFOs with something pending, in creation order.
	lanes []*lane
	buf   []byte // describe's marshalling buffer
}

type callState struct {
	id    uint64
	call  *grpcnet.Call
	lanes [2]*lane // 0: to the server, 1: to the client
}

// lane is one direction of one call.
type lane struct {
	call    *callState
	toSrv   bool
	q       []*pending
	lastDue time.Time
}

// pending is an envelope waiting for its time.
type pending struct {
	e    *grpcnet.Envelope
	due  time.Time
	fail error // non-nil: lose it when due
	dup  bool  // deliver it a second time (StreamMsg only)
}

// Send implements grpcnet.Wire.
func (w *wire) Send(e *grpcnet.Envelope) {
	w.mu.Lock()
	w.inbox = append(w.inbox, e)
	w.mu.Unlock()
}

// take returns what was sent since the last take, in a canonical order:
// envelopes of calls the wire knows by their call's number, then new
// calls by addresses, method and message bytes; the goroutines that sent
// them may have run in any order.
func (w *wire) take() []*grpcnet.Envelope {
	w.mu.Lock()
	in := w.inbox
	w.inbox = nil
	w.mu.Unlock()
	if len(in) < 2 {
		return in
	}
	// A call the wire has not seen yet ranks by its envelopes of this
	// step, in the order its sender sent them (all of a call's envelopes
	// rank alike, so that the stable sort keeps that order: a stream's
	// open before its first message). Not by its first alone: two
	// streams opened in one step (two snapshots to one store) open
	// alike, and their sender goroutines' order, which numbered them,
	// is the Go scheduler's.
	sent := make(map[*grpcnet.Call][]*grpcnet.Envelope, len(in))
	for _, e := range in {
		sent[e.Call] = append(sent[e.Call], e)
	}
	key := func(e *grpcnet.Envelope) (uint64, string) {
		if cs, ok := w.calls[e.Call]; ok {
			return cs.id, ""
		}
		f := sent[e.Call][0]
		return 1 << 63, f.From + "\x00" + f.To + "\x00" + f.Method + "\x00" + f.Kind.String()
	}
	slices.SortStableFunc(in, func(a, b *grpcnet.Envelope) int {
		ia, sa := key(a)
		ib, sb := key(b)
		if c := cmp.Compare(ia, ib); c != 0 {
			return c
		}
		if c := cmp.Compare(sa, sb); c != 0 {
			return c
		}
		if a.Call == b.Call {
			return 0 // one sender's order
		}
		if c := compareSent(sent[a.Call], sent[b.Call]); c != 0 {
			return c
		}
		return cmp.Compare(a.Call.ID, b.Call.ID)
	})
	return in
}

// compareSent orders two new calls by what they sent in one step: kind and
// message bytes of each envelope in turn, then how many.
func compareSent(a, b []*grpcnet.Envelope) int {
	for i := range min(len(a), len(b)) {
		if c := cmp.Compare(a[i].Kind, b[i].Kind); c != 0 {
			return c
		}
		if c := bytes.Compare(msgBytes(a[i].Msg), msgBytes(b[i].Msg)); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// enqueue puts e in its lane, due after latency (never before the lane's
// last envelope).
func (w *wire) enqueue(e *grpcnet.Envelope, due time.Time, fail error, dup bool) {
	cs, ok := w.calls[e.Call]
	if !ok {
		w.nextCall++
		cs = &callState{id: w.nextCall, call: e.Call}
		w.calls[e.Call] = cs
	}
	d := 0
	if !e.ToServer {
		d = 1
	}
	l := cs.lanes[d]
	if l == nil {
		l = &lane{call: cs, toSrv: e.ToServer}
		cs.lanes[d] = l
	}
	if len(l.q) == 0 {
		w.lanes = append(w.lanes, l)
	}
	if due.Before(l.lastDue) {
		due = l.lastDue
	}
	l.lastDue = due
	l.q = append(l.q, &pending{e: e, due: due, fail: fail, dup: dup})
}

// ready returns the lanes whose head is due at now.
func (w *wire) ready(now time.Time, out []*lane) []*lane {
	for _, l := range w.lanes {
		if !l.q[0].due.After(now) {
			out = append(out, l)
		}
	}
	return out
}

// next returns the earliest due time of a lane's head.
func (w *wire) next() (time.Time, bool) {
	var t time.Time
	ok := false
	for _, l := range w.lanes {
		if !ok || l.q[0].due.Before(t) {
			t, ok = l.q[0].due, true
		}
	}
	return t, ok
}

// pop takes l's head off and drops l from the pending lanes when empty.
func (w *wire) pop(l *lane) *pending {
	p := l.q[0]
	l.q = l.q[1:]
	if len(l.q) == 0 {
		l.q = nil
		w.lanes = slices.DeleteFunc(w.lanes, func(x *lane) bool { return x == l })
	}
	// A call is forgotten once its last envelope (a response or the end
	// of a stream) has gone and nothing of it is pending.
	if k := p.e.Kind; k == grpcnet.Response || k == grpcnet.StreamEnd {
		cs := l.call
		if (cs.lanes[0] == nil || len(cs.lanes[0].q) == 0) && (cs.lanes[1] == nil || len(cs.lanes[1].q) == 0) {
			delete(w.calls, cs.call)
		}
	}
	return p
}

// describe is an envelope's trace text: call number, kind, ends, method
// and a digest of the message.
func (w *wire) describe(p *pending) string {
	e := p.e
	id := uint64(0)
	if cs, ok := w.calls[e.Call]; ok {
		id = cs.id
	}
	h := fnv.New64a()
	if e.Msg != nil {
		b, err := marshalDeterministic.MarshalAppend(w.buf[:0], e.Msg)
		if err != nil {
			b = []byte(err.Error())
		} else {
			w.buf = b
		}
		h.Write(b)
	}
	if e.Err != nil {
		h.Write([]byte(e.Err.Error()))
	}
	return fmt.Sprintf("c%d %s %s>%s %s %x", id, e.Kind, e.From, e.To, shortMethod(e.Method), h.Sum64())
}

var marshalDeterministic = proto.MarshalOptions{Deterministic: true}

func msgBytes(m proto.Message) []byte {
	if m == nil {
		return nil
	}
	b, err := marshalDeterministic.Marshal(m)
	if err != nil {
		return []byte(err.Error())
	}
	return b
}

func shortMethod(m string) string {
	if i := bytes.LastIndexByte([]byte(m), '.'); i >= 0 {
		return m[i+1:]
	}
	return m
}
