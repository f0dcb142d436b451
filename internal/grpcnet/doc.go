// Package grpcnet is the network seam of rangekv's store and placement:
// where their gRPC servers listen and how they dial each other. Store and
// placement take a Network in their Config and never call net.Listen,
// grpc.NewClient or grpc.Dial themselves, so that the deterministic
// simulation can run the real code over an in-memory network.
//
// TCP is the production implementation (what the binaries use): TCP
// listeners and grpc.NewClient. Mem is the in-memory twin at the byte
// level: listeners and connections are buffered pipes inside the process
// carrying real gRPC (HTTP/2, with gRPC's own goroutines), addresses are
// names in one Mem, and nothing touches the host's network.
//
// Direct is the in-process network at the message level, for the
// deterministic simulation: a connection calls the handlers registered
// at its target (servers register through Registrar) without any
// transport, and every request, response, stream message and close is an
// Envelope on a Wire, which decides when it is delivered or lost. Each
// process sees Direct through its own Node (the address calls come from);
// Down crashes one.
//
// Dial options (transport credentials, window sizes, message size limits)
// are the caller's: TCP and Mem add only what they need to reach the
// address, so TLS works the same over both; Direct ignores them.
package grpcnet
