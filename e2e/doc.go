// Package e2e holds end-to-end tests over real processes: the built
// rangekv-store and rangekv binaries on 127.0.0.1, kill -9, restarts from
// data directories, and the playground. Everything is in _test.go files;
// TestMain builds the binaries once into a temporary directory.
//
// All traffic stays on loopback; every process a test starts is killed in
// t.Cleanup; waits are on conditions with deadlines.
package e2e
