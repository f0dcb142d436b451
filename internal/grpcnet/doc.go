// Package grpcnet is the network seam of rangekv's store and placement:
// where their gRPC servers listen and how they dial each other. Store and
// placement take a Network in their Config and never call net.Listen,
// grpc.NewClient or grpc.Dial themselves, so that the deterministic
// simulation can run the real code over an in-memory network.
//
// TCP is the production implementation (what the binaries use): TCP
// listeners and grpc.NewClient. Mem is the in-memory twin: listeners and
// connections are buffered pipes inside the process, addresses are names
// in one Mem, and nothing touches the host's network.
//
// Dial options (transport credentials, window sizes, message size limits)
// are the caller's: a Network adds only what it needs to reach the
// address, so TLS works the same over either implementation.
package grpcnet
