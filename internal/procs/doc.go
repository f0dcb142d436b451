// Package procs starts and stops rangekv-store and rangekv-placement
// processes on this machine: the one launcher behind `rangekv playground`
// (cmd/cli), the e2e tests and the multiraftbench harness. It owns what
// they share: the flags of a store or placement member (StoreArgs,
// PlacementArgs), starting a process in its own process group with its
// output appended to a log file (Start), waiting for it to be ready with a
// deadline (Proc.WaitReady, HTTPReady), and stopping it: SIGTERM, a grace
// period that is the caller's context, then SIGKILL (Stop, Proc.Kill).
// What "ready" means for a whole cluster, and what to print, stays with
// the callers.
//
// Invariants:
//   - Every Proc has exactly one goroutine, started by Start, that waits
//     for the process, closes its log file, records its exit and then
//     closes Done. It ends when the process is reaped, so a Proc that
//     exited, or that Stop or Kill returned for, leaves nothing running.
//   - A started process is in its own process group (a Ctrl-C at the
//     terminal reaches the launcher only, which stops its children in
//     order) and, on Linux, gets Spec.ParentDeathSignal when its launcher
//     dies without stopping it, so no process outlives a crashed launcher.
//   - Every wait is bounded by a context or ends with the process; nothing
//     sleeps in place of a condition. The one exception is the wait for a
//     process to be reaped after SIGKILL, which the kernel bounds.
//   - procs is a leaf: it imports nothing of this module
//     (internal/lintcheck checks it).
package procs
