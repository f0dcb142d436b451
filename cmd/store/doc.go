// Command rangekv-store runs one rangekv store: configuration and wiring
// only; the store itself lives in package store.
//
// Flags, RANGEKV_* environment and the --config file are read here and
// nowhere below: package store gets a store.Config. On SIGTERM or SIGINT
// the store first drains (hands its Raft leaderships to other stores, for
// at most --drain-timeout; a second signal cuts it short), then stops.
package main
