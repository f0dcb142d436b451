// Package histcheck records histories of single-key operations against
// rangekv and checks them for linearizability with porcupine. The nemesis
// tests and the `rangekv check` command share it.
//
// Invariants:
//   - every call and return time comes from one monotonic clock (the
//     Recorder's), in nanoseconds since the Recorder was made;
//   - every write carries a value no other write in the history carries
//     (Recorder.UniqueValue), so a read names the write it observed;
//   - an operation whose outcome is unknown (a write that timed out or
//     whose connection broke) is recorded with OutcomeUnknown: the checker
//     gives it a return time after every other operation, so it may take
//     effect at any point after its call, or never;
//   - an operation that definitely did not happen (a read that failed, a
//     write refused before it was sent) is recorded as Failed and left out
//     of the check;
//   - a stale read (Input.Stale) may return any state the key had before
//     it returned: it is checked as if called before every other
//     operation, and the lost-write check ignores it;
//   - histories are checked per key (a register with Get, Put, Delete, CAS
//     and Incr), each key within its own timeout; a check that times out is
//     reported as such, never counted as a pass.
package histcheck
