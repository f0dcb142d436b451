// Command rangekv is the command-line client of rangekv: key-value
// commands (put, get, delete, cas, incr, scan), cluster inspection and
// operations, a load generator (bench), a local cluster for trying things
// out (playground) and an interactive shell.
//
// It finds ranges and leaders through the placement driver (--placement),
// or, in static mode, talks to the stores directly (--stores). The cluster
// commands (cluster, store, range, rebalance) need placement; shell runs
// any of them interactively. The user-facing contract (commands, JSON
// documents, exit codes) is in INTERFACES.md; the command logic lives in
// small functions over io.Writers so that tests run it in-process.
package main
