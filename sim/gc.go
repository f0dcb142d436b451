// Garbage collection between steps: the test turns the collector off (a
// collection mid-step preempts the step's goroutine and lets the
// goroutines it woke run before it ends), so the world collects itself
// when every goroutine is blocked, once the heap has doubled.

package sim

import (
	"runtime"
	"runtime/metrics"
)

// gcCheckSteps is how often (in steps) the heap's size is read.
const gcCheckSteps = 256

// gcMinHeap is the heap below which no collection runs.
const gcMinHeap = 64 << 20

// collect runs a collection if the heap has grown to twice what the last
// one left (and at least gcMinHeap). It is called between steps, after
// settle: no goroutine of the run is runnable, so none can run during the
// collection, and what a collection changes (sync.Pool contents, memory
// reuse) is invisible to the run's logic; when it runs does not enter
// the trace.
func (w *world) collect() {
	if w.steps-w.gc.lastCheck < gcCheckSteps {
		return
	}
	w.gc.lastCheck = w.steps
	metrics.Read(w.gc.sample[:])
	heap := w.gc.sample[0].Value.Uint64()
	if heap < gcMinHeap || heap < 2*w.gc.live {
		return
	}
	runtime.GC()
	metrics.Read(w.gc.sample[:])
	w.gc.live = w.gc.sample[0].Value.Uint64()
	w.gc.runs++
}

// gcState is collect's memory.
type gcState struct {
	lastCheck int
	live      uint64
	runs      int
	sample    [1]metrics.Sample
}

func newGCState() gcState {
	var g gcState
	g.sample[0].Name = "/memory/classes/heap/objects:bytes"
	return g
}
