// Command rangekv-placement runs one member of the placement driver:
// configuration and wiring only; the driver lives in package placement.
//
// Flags, RANGEKV_* environment and the --config file are read here and
// nowhere below: package placement gets a placement.Config. The member runs
// until SIGTERM or SIGINT, then stops.
package main
