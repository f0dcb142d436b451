package router

import "fmt"

// AmbiguousError: the write may or may not have been applied (the request
// timed out, the connection broke after sending, or the leader lost its
// leadership before the outcome was known). Read the key to find out.
type AmbiguousError struct {
	Op     string
	Reason string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%s: outcome unknown (it may or may not have been applied): %s", e.Op, e.Reason)
}
