package router

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// AmbiguousError: the write may or may not have been applied (the request
// timed out, the connection broke after sending, or the leader lost its
// leadership before the outcome was known). Read the key to find out. Such
// a write is never retried by the router.
type AmbiguousError struct {
	Op     string
	Reason string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%s: outcome unknown (it may or may not have been applied): %s", e.Op, e.Reason)
}

// ErrDiskFull matches (errors.Is) every *DiskFullError.
var ErrDiskFull = errors.New("router: the store refused the write: low on disk space")

// DiskFullError: the store leading the key's range refused the write
// before proposing it, because its data directory has less free space
// than its storage.min-free. The write was definitely not applied (it is
// not ambiguous) and is not retried by the router: it succeeds again once
// space is freed on that store. Reads and deletes keep working.
type DiskFullError struct {
	Op string
	// StoreID is the store that refused; Dir its data directory;
	// FreeBytes its free space when it refused, below MinFreeBytes.
	StoreID                 uint64
	Dir                     string
	FreeBytes, MinFreeBytes uint64
}

func (e *DiskFullError) Error() string {
	return fmt.Sprintf("disk full: store %d refused the %s, nothing was written: its data dir %s has %d bytes free, below its storage.min-free of %d bytes; free space on that store, then retry (reads and deletes work)",
		e.StoreID, e.Op, e.Dir, e.FreeBytes, e.MinFreeBytes)
}

// Is makes errors.Is(err, ErrDiskFull) hold.
func (e *DiskFullError) Is(target error) bool { return target == ErrDiskFull }

// PlacementError is an error the placement driver answered with (as data,
// not as a gRPC status).
type PlacementError struct {
	Op      string
	Message string
	// ClusterMismatch: the placement members run another cluster.
	ClusterMismatch bool
	// Permanent: retrying will not help (the router does not).
	Permanent bool
}

func (e *PlacementError) Error() string {
	return fmt.Sprintf("placement %s: %s", e.Op, e.Message)
}

// ErrNoPlacement is returned by the operations that need the placement
// driver (Admin) on a static client.
var ErrNoPlacement = errors.New("router: this operation needs the placement driver (a client made with router.New, not NewStatic)")

// NotFoundError: the placement driver knows no such range, store or
// operator.
type NotFoundError struct {
	What string
}

func (e *NotFoundError) Error() string { return e.What + " not found" }

// rangeErrorDetail returns the RangeError a gRPC status carries as a
// detail (placement's Split answers so), or nil.
func rangeErrorDetail(err error) *rangekvpb.RangeError {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if re, ok := d.(*rangekvpb.RangeError); ok {
			return re
		}
	}
	return nil
}
