package histcheck

import (
	"strconv"

	"github.com/anishathalye/porcupine"
)

// state is one key's value in the model.
type state struct {
	found bool
	value string
}

// output is a porcupine output: an Output, or unknown.
type output struct {
	unknown bool
	out     Output
}

// step is the sequential specification of one key: it reports whether op
// could return out from st, and the state after it.
func step(st state, in Input, o output) (bool, state) {
	switch in.Kind {
	case Get:
		if o.unknown {
			return true, st
		}
		return o.out.Found == st.found && (!st.found || o.out.Value == st.value), st
	case Put:
		return true, state{found: true, value: in.Value}
	case Delete:
		return true, state{}
	case CAS:
		match := (in.ExpectAbsent && !st.found) || (!in.ExpectAbsent && st.found && st.value == in.Expected)
		next := st
		if match {
			next = state{found: true, value: in.Value}
		}
		if o.unknown {
			return true, next
		}
		return o.out.Swapped == match && o.out.Found == next.found && (!next.found || o.out.Value == next.value), next
	case Incr:
		var n int64
		if st.found {
			v, err := strconv.ParseInt(st.value, 10, 64)
			if err != nil {
				// The store refuses it: only an unknown outcome fits.
				return o.unknown, st
			}
			n = v
		}
		n += in.Delta
		next := state{found: true, value: strconv.FormatInt(n, 10)}
		if o.unknown {
			return true, next
		}
		return o.out.N == n, next
	}
	return false, st
}

// opInput is the porcupine input: the key travels with it for
// partitioning and descriptions.
type opInput struct {
	key string
	in  Input
	op  Op
}

// model is the per-key register for porcupine.
func model() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string]int{}
			var out [][]porcupine.Operation
			for _, op := range history {
				k := op.Input.(opInput).key
				i, ok := byKey[k]
				if !ok {
					i = len(out)
					byKey[k] = i
					out = append(out, nil)
				}
				out[i] = append(out[i], op)
			}
			return out
		},
		Init: func() any { return state{} },
		Step: func(st, in, out any) (bool, any) {
			return step(st.(state), in.(opInput).in, out.(output))
		},
		Equal: func(a, b any) bool { return a.(state) == b.(state) },
		DescribeOperation: func(in, _ any) string {
			return in.(opInput).op.String()
		},
		DescribeState: func(st any) string {
			s := st.(state)
			if !s.found {
				return "absent"
			}
			return s.value
		},
	}
}

// operations turns ops into porcupine operations: failed ones are left
// out, unknown ones return at end (after every other return), stale reads
// are called before every other call (the history's start is 0).
func operations(ops []Op, end int64) []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		call, ret := op.Call, op.Return
		if op.In.Stale {
			call = -1
		}
		o := output{out: op.Out}
		switch op.Outcome {
		case OutcomeFailed:
			continue
		case OutcomeUnknown:
			ret, o = end, output{unknown: true}
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: opInput{key: op.Key, in: op.In, op: op},
			Call: call, Output: o, Return: ret})
	}
	return out
}

// endOf is a time after every call and return in ops.
func endOf(ops []Op) int64 {
	var end int64
	for _, op := range ops {
		end = max(end, op.Call)
		if op.Outcome != OutcomeUnknown { // an unknown op's Return means nothing
			end = max(end, op.Return)
		}
	}
	return end + 1
}
