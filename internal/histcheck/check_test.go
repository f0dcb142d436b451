package histcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// op is an operation that returned out.
func op(client int, key string, in Input, out Output, call, ret int64) Op {
	return Op{Client: client, Key: key, In: in, Out: out, Outcome: OutcomeOK, Call: call, Return: ret}
}

func put(v string) Input      { return Input{Kind: Put, Value: v} }
func get() Input              { return Input{Kind: Get} }
func incr(d int64) Input      { return Input{Kind: Incr, Delta: d} }
func cas(exp, v string) Input { return Input{Kind: CAS, Expected: exp, Value: v} }
func found(v string) Output   { return Output{Found: true, Value: v} }
func unknown(o Op) Op         { o.Outcome = OutcomeUnknown; o.Return = 0; return o }
func failed(o Op) Op          { o.Outcome = OutcomeFailed; return o }
func check(t *testing.T, ops ...Op) Verdict {
	t.Helper()
	return Check(History{Ops: ops}, 10*time.Second)
}

func TestCorrectHistoryPasses(t *testing.T) {
	v := check(t,
		op(0, "a", put("1"), Output{}, 0, 10),
		op(1, "a", get(), found("1"), 5, 15), // concurrent with the put: may see it
		op(1, "a", cas("1", "2"), Output{Swapped: true, Found: true, Value: "2"}, 20, 30),
		op(0, "a", incr(3), Output{N: 5}, 31, 40),
		op(1, "a", get(), found("5"), 41, 50),
		// A put of unknown outcome may have happened, or not.
		unknown(op(2, "a", put("9"), Output{}, 42, 0)),
		op(1, "a", get(), found("5"), 60, 70),
		op(1, "a", get(), found("9"), 80, 90),
		// A failed read is left out.
		failed(op(0, "a", get(), Output{}, 91, 95)),
		op(0, "b", Input{Kind: Delete}, Output{}, 0, 1),
		op(0, "b", get(), Output{}, 2, 3),
		op(0, "b", Input{Kind: CAS, ExpectAbsent: true, Value: "7"}, Output{Swapped: true, Found: true, Value: "7"}, 4, 5),
		op(0, "b", cas("6", "8"), Output{Swapped: false, Found: true, Value: "7"}, 6, 7),
	)
	if !v.Linearizable() || v.Keys != 2 || v.Ops != 13 || v.Unknown != 1 || v.Failed != 1 {
		t.Fatalf("verdict %+v, want linearizable with 2 keys, 13 ops, 1 unknown, 1 failed", v)
	}
}

func TestStaleReadFails(t *testing.T) {
	v := check(t,
		op(0, "a", put("1"), Output{}, 0, 10),
		op(0, "a", put("2"), Output{}, 11, 20),
		op(1, "a", get(), found("1"), 21, 30), // after put(2) returned
	)
	if len(v.Violations) != 1 || v.Violations[0] != "a" {
		t.Fatalf("verdict %+v, want a violation on key a", v)
	}
}

func TestLostAcknowledgedWriteFails(t *testing.T) {
	v := check(t,
		op(0, "a", put("1"), Output{}, 0, 10),
		op(1, "a", get(), Output{Found: false}, 20, 30),
	)
	if len(v.Violations) != 1 || len(v.LostWrites) != 1 || v.FinalChecked != 1 {
		t.Fatalf("verdict %+v, want a violation and a lost write on key a", v)
	}
}

func TestDoubleAppliedIncrFails(t *testing.T) {
	v := check(t,
		op(0, "c", incr(1), Output{N: 1}, 0, 10),
		op(1, "c", incr(1), Output{N: 3}, 11, 20), // applied twice
	)
	if !v.Violated() || len(v.Violations) != 1 {
		t.Fatalf("verdict %+v, want a violation", v)
	}
	// An Incr of unknown outcome applied twice is caught by a read.
	v = check(t,
		op(0, "c", incr(1), Output{N: 1}, 0, 10),
		unknown(op(1, "c", incr(1), Output{}, 11, 0)),
		op(0, "c", get(), found("3"), 30, 40),
	)
	if !v.Violated() {
		t.Fatalf("verdict %+v, want a violation", v)
	}
}

func TestValueNeverWrittenFails(t *testing.T) {
	v := check(t, op(0, "a", get(), found("42"), 0, 1))
	if len(v.Violations) != 1 {
		t.Fatalf("verdict %+v, want a violation", v)
	}
}

func TestTimeoutIsNotAPass(t *testing.T) {
	// Many concurrent unknown writes and reads make the search space large;
	// a 1ns budget cannot finish it.
	var ops []Op
	for i := range 40 {
		ops = append(ops, unknown(op(i, "a", put(strings.Repeat("x", i+1)), Output{}, int64(i), 0)))
		ops = append(ops, op(i, "a", get(), found(strings.Repeat("x", 40-i)), int64(i), 1000))
	}
	v := Check(History{Ops: ops}, time.Nanosecond)
	if len(v.TimedOut) != 1 || v.Linearizable() {
		t.Fatalf("verdict %+v, want the key timed out and not linearizable", v)
	}
}

func TestVisualizationHasFaults(t *testing.T) {
	r := NewRecorder()
	p := r.Begin(0, "a", put(r.UniqueValue()))
	p.End(Output{}, OutcomeOK)
	start := r.Now()
	r.Fault("partition", "store 1 | stores 2,3", start)
	p = r.Begin(1, "a", get())
	p.End(Output{Found: false}, OutcomeOK)
	h := r.History()
	v := Check(h, 10*time.Second)
	if len(v.Violations) != 1 {
		t.Fatalf("verdict %+v, want a violation", v)
	}
	path := filepath.Join(t.TempDir(), "viz.html")
	if err := Visualize(h, v.Violations, path, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The data is JSON inside the page (json.Marshal escapes '>').
	for _, want := range []string{"partition", "store 1 | stores 2,3", `get(a) -\u003e absent`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("visualization lacks %q", want)
		}
	}
}

func TestUniqueValues(t *testing.T) {
	r := NewRecorder()
	seen := map[string]bool{}
	for range 1000 {
		v := r.UniqueValue()
		if seen[v] {
			t.Fatalf("value %s returned twice", v)
		}
		seen[v] = true
	}
}

func staleGet() Input { return Input{Kind: Get, Stale: true} }

func TestStaleReadMayLag(t *testing.T) {
	v := check(t,
		op(0, "a", put("1"), Output{}, 0, 10),
		op(0, "a", put("2"), Output{}, 11, 20),
		op(1, "a", staleGet(), found("1"), 21, 30), // an older state
		op(1, "a", staleGet(), Output{}, 31, 40),   // the initial state
		op(1, "a", staleGet(), found("2"), 41, 50),
		op(1, "a", staleGet(), found("1"), 51, 60), // back again: not promised otherwise
		op(0, "a", put("3"), Output{}, 61, 70),
		op(1, "a", staleGet(), found("3"), 65, 75), // concurrent with the put
		op(1, "a", get(), found("3"), 80, 90),      // the lost-write check ignores stale reads
	)
	if !v.Linearizable() || v.FinalChecked != 1 {
		t.Fatalf("verdict %+v, want linearizable with one final read checked", v)
	}
}

func TestStaleReadOfTheFutureFails(t *testing.T) {
	for name, ops := range map[string][]Op{
		// It returns a value written only after it returned.
		"later write": {
			op(0, "a", put("1"), Output{}, 0, 10),
			op(1, "a", staleGet(), found("2"), 11, 20),
			op(0, "a", put("2"), Output{}, 21, 30),
		},
		// It returns a value no write wrote.
		"no write": {
			op(0, "a", put("1"), Output{}, 0, 10),
			op(1, "a", staleGet(), found("7"), 11, 20),
		},
		// Its value's write, of unknown outcome, was called after it
		// returned.
		"unknown write": {
			op(0, "a", put("1"), Output{}, 0, 10),
			op(1, "a", staleGet(), found("2"), 11, 20),
			unknown(op(0, "a", put("2"), Output{}, 21, 0)),
		},
		// No state of the key was 6.
		"no state": {
			op(0, "a", put("5"), Output{}, 0, 10),
			op(0, "a", incr(3), Output{N: 8}, 11, 20),
			op(1, "a", staleGet(), found("6"), 21, 30),
		},
	} {
		v := check(t, ops...)
		if len(v.Violations) != 1 || v.Violations[0] != "a" {
			t.Errorf("%s: verdict %+v, want a violation on key a", name, v)
		}
	}
}
