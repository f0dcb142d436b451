// Exit codes and the mapping from errors to them (INTERFACES.md, "Exit
// codes"), and the one-line rendering of errors on stderr.

package main

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/router"
)

// Exit codes. Scripts depend on them: keep them stable.
const (
	exitOK = 0
	// exitNotFound: get of a missing key, or a cas whose compare failed.
	exitNotFound = 1
	// exitUsage: bad usage or invalid input (ours or the server's).
	exitUsage = 2
	// exitUnknown: the outcome of a write is unknown.
	exitUnknown = 3
	// exitFailure: any other error.
	exitFailure = 4
)

// exitError carries an exit code chosen by a command. Every error a
// command's RunE returns is one of these (see app.wrapRun); an error that
// is not comes from cobra's own argument and flag parsing, which is bad
// usage.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// wrappedError rewords an error and keeps it for errors.As and errors.Is.
type wrappedError struct {
	msg string
	err error
}

func (e *wrappedError) Error() string { return e.msg }
func (e *wrappedError) Unwrap() error { return e.err }

// usageErrorf returns a bad-usage error (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCodeFor classifies an error returned by a command's logic:
//   - an *exitError keeps its code;
//   - *router.AmbiguousError: the write may or may not have applied (3);
//   - gRPC InvalidArgument from a store: invalid input (2);
//   - anything else (4).
func exitCodeFor(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var amb *router.AmbiguousError
	if errors.As(err, &amb) {
		return exitUnknown
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.InvalidArgument {
		return exitUsage
	}
	return exitFailure
}

// classify wraps err (from a command's logic) in an *exitError with the
// code exitCodeFor gives it.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitCodeFor(err), err: err}
}

// grpcCodeWords renders the gRPC codes a user may see in plain words.
var grpcCodeWords = map[codes.Code]string{
	codes.InvalidArgument:    "invalid argument",
	codes.FailedPrecondition: "failed precondition",
	codes.OutOfRange:         "out of range",
	codes.Unavailable:        "unavailable",
	codes.DeadlineExceeded:   "deadline exceeded",
	codes.Internal:           "internal error",
	codes.Unimplemented:      "not implemented by the store",
	codes.ResourceExhausted:  "resource exhausted",
	codes.Canceled:           "canceled",
	codes.NotFound:           "not found",
	codes.PermissionDenied:   "permission denied",
	codes.Unauthenticated:    "unauthenticated",
}

// errorLine renders err as a single line for stderr, without the program
// name. A gRPC status inside err loses its "rpc error: code = ... desc ="
// wrapping and reads as plain words ("invalid argument: key: ...").
func errorLine(err error) string {
	msg := err.Error()
	var amb *router.AmbiguousError
	var se interface {
		error
		GRPCStatus() *status.Status
	}
	if !errors.As(err, &amb) && errors.As(err, &se) {
		st := se.GRPCStatus()
		if st.Code() != codes.OK && st.Code() != codes.Unknown {
			words, known := grpcCodeWords[st.Code()]
			if !known {
				words = st.Code().String()
			}
			msg = strings.Replace(msg, se.Error(), words+": "+st.Message(), 1)
		}
	}
	return strings.Join(strings.Fields(msg), " ")
}
