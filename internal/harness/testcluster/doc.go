// Package testcluster starts rangekv stores in one process over real gRPC
// on 127.0.0.1 with random ports, for integration tests: stop, restart
// from the same data, find leaders, and wait on conditions with deadlines
// (never fixed sleeps).
package testcluster
