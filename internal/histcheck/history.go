package histcheck

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/rangekv/rangekv/internal/clock"
)

// Kind is an operation's type.
type Kind uint8

// The operations of the register model.
const (
	Get Kind = iota
	Put
	Delete
	CAS
	Incr
)

func (k Kind) String() string {
	switch k {
	case Get:
		return "get"
	case Put:
		return "put"
	case Delete:
		return "delete"
	case CAS:
		return "cas"
	case Incr:
		return "incr"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Input is what an operation asked for.
type Input struct {
	Kind Kind
	// Value is the new value of Put and CAS.
	Value string
	// Expected and ExpectAbsent are CAS's comparison.
	Expected     string
	ExpectAbsent bool
	// Delta is Incr's addend.
	Delta int64
	// Stale marks a Get at STALE consistency (any replica's engine, no
	// barrier): it may return any state the key had before it returned,
	// so it is checked as if called before every other operation.
	Stale bool
}

// Outcome says whether an operation happened.
type Outcome uint8

const (
	// OutcomeOK: the operation returned a result.
	OutcomeOK Outcome = iota
	// OutcomeFailed: the operation definitely did not take effect; it is
	// left out of the check.
	OutcomeFailed
	// OutcomeUnknown: the operation may or may not have taken effect.
	OutcomeUnknown
)

// Output is what an operation returned (OutcomeOK only).
type Output struct {
	// Found and Value: Get's result; for CAS the key's value after it.
	Found bool
	Value string
	// Swapped: CAS's result.
	Swapped bool
	// N: Incr's new value.
	N int64
}

// Op is one recorded operation.
type Op struct {
	Client  int
	Key     string
	In      Input
	Out     Output
	Outcome Outcome
	// Call and Return are nanoseconds on the Recorder's clock; Return is
	// meaningless for OutcomeUnknown.
	Call, Return int64
}

func (o Op) String() string {
	in := o.In
	var s string
	switch in.Kind {
	case Get:
		s = fmt.Sprintf("get(%s)", o.Key)
		if in.Stale {
			s = "stale " + s
		}
	case Put:
		s = fmt.Sprintf("put(%s, %s)", o.Key, in.Value)
	case Delete:
		s = fmt.Sprintf("delete(%s)", o.Key)
	case CAS:
		if in.ExpectAbsent {
			s = fmt.Sprintf("cas(%s, absent -> %s)", o.Key, in.Value)
		} else {
			s = fmt.Sprintf("cas(%s, %s -> %s)", o.Key, in.Expected, in.Value)
		}
	case Incr:
		s = fmt.Sprintf("incr(%s, %d)", o.Key, in.Delta)
	}
	switch o.Outcome {
	case OutcomeFailed:
		return s + " -> failed"
	case OutcomeUnknown:
		return s + " -> unknown"
	}
	switch in.Kind {
	case Get:
		if !o.Out.Found {
			return s + " -> absent"
		}
		return s + " -> " + o.Out.Value
	case CAS:
		return fmt.Sprintf("%s -> swapped=%t", s, o.Out.Swapped)
	case Incr:
		return fmt.Sprintf("%s -> %d", s, o.Out.N)
	}
	return s + " -> ok"
}

// Fault is a fault event, shown on the visualization's timeline.
type Fault struct {
	Name   string
	Detail string
	// Start and End on the Recorder's clock (End == Start: an instant).
	Start, End int64
}

// History is what a Recorder collected.
type History struct {
	Ops    []Op
	Faults []Fault
}

// Recorder collects a history from concurrent clients. Safe for
// concurrent use.
type Recorder struct {
	now func() int64
	seq atomic.Uint64
	mu  sync.Mutex
	h   History
}

// NewRecorder starts a Recorder's clock.
func NewRecorder() *Recorder { return NewRecorderOn(clock.Real{}) }

// NewRecorderOn starts a Recorder on c (the simulation records on its
// simulated clock).
func NewRecorderOn(c clock.Clock) *Recorder {
	start := c.Now()
	return &Recorder{now: func() int64 { return int64(c.Now().Sub(start)) }}
}

// Now is the time on the Recorder's clock (ns since its start).
func (r *Recorder) Now() int64 { return r.now() }

// UniqueValue returns a value no other call returns: a decimal number (so
// Incr can add to it) above every counter value a run reaches.
func (r *Recorder) UniqueValue() string {
	return strconv.FormatUint(1_000_000_000+r.seq.Add(1), 10)
}

// Pending is an operation that was called and has not returned.
type Pending struct {
	r  *Recorder
	op Op
}

// Begin records the call of an operation.
func (r *Recorder) Begin(client int, key string, in Input) *Pending {
	return &Pending{r: r, op: Op{Client: client, Key: key, In: in, Call: r.Now()}}
}

// End records its return with out and outcome.
func (p *Pending) End(out Output, outcome Outcome) Op {
	p.op.Return, p.op.Out, p.op.Outcome = p.r.Now(), out, outcome
	p.r.mu.Lock()
	p.r.h.Ops = append(p.r.h.Ops, p.op)
	p.r.mu.Unlock()
	return p.op
}

// Fault records a fault event from start to now.
func (r *Recorder) Fault(name, detail string, start int64) {
	f := Fault{Name: name, Detail: detail, Start: start, End: r.Now()}
	r.mu.Lock()
	r.h.Faults = append(r.h.Faults, f)
	r.mu.Unlock()
}

// History returns a copy of what was recorded so far.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return History{Ops: append([]Op(nil), r.h.Ops...), Faults: append([]Fault(nil), r.h.Faults...)}
}
