// Request validation: bad input is refused with InvalidArgument naming the
// field and the limit, before anything is proposed.

package store

import (
	"bytes"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// Limits are the request limits a store enforces.
type Limits struct {
	MaxKeySize   int
	MaxValueSize int
	MaxScanLimit int
}

func (c *Config) limits() Limits {
	return Limits{MaxKeySize: c.MaxKeySize, MaxValueSize: c.MaxValueSize, MaxScanLimit: c.MaxScanLimit}
}

func statusErr(c codes.Code, format string, args ...any) error {
	return status.Errorf(c, format, args...)
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func (l Limits) key(field string, k []byte) error {
	if len(k) == 0 {
		return invalid("%s: must not be empty", field)
	}
	return l.optionalKey(field, k)
}

func (l Limits) optionalKey(field string, k []byte) error {
	if len(k) > l.MaxKeySize {
		return invalid("%s: %d bytes exceeds the limit of %d bytes (limits.max-key-size)", field, len(k), l.MaxKeySize)
	}
	return nil
}

func (l Limits) value(field string, v []byte) error {
	if len(v) > l.MaxValueSize {
		return invalid("%s: %d bytes exceeds the limit of %d bytes (limits.max-value-size)", field, len(v), l.MaxValueSize)
	}
	return nil
}

// ValidateGet checks a GetRequest.
func (l Limits) ValidateGet(r *rangekvpb.GetRequest) error { return l.key("key", r.GetKey()) }

// ValidatePut checks a PutRequest.
func (l Limits) ValidatePut(r *rangekvpb.PutRequest) error {
	if err := l.key("key", r.GetKey()); err != nil {
		return err
	}
	return l.value("value", r.GetValue())
}

// ValidateDelete checks a DeleteRequest.
func (l Limits) ValidateDelete(r *rangekvpb.DeleteRequest) error { return l.key("key", r.GetKey()) }

// ValidateCas checks a CasRequest.
func (l Limits) ValidateCas(r *rangekvpb.CasRequest) error {
	if err := l.key("key", r.GetKey()); err != nil {
		return err
	}
	if r.GetExpectAbsent() && len(r.GetExpected()) > 0 {
		return invalid("expected: must be empty when expect_absent is set")
	}
	if err := l.value("expected", r.GetExpected()); err != nil {
		return err
	}
	return l.value("new_value", r.GetNewValue())
}

// ValidateIncr checks an IncrRequest.
func (l Limits) ValidateIncr(r *rangekvpb.IncrRequest) error { return l.key("key", r.GetKey()) }

// ValidateScan checks a ScanRequest.
func (l Limits) ValidateScan(r *rangekvpb.ScanRequest) error {
	if err := l.optionalKey("start_key", r.GetStartKey()); err != nil {
		return err
	}
	if err := l.optionalKey("end_key", r.GetEndKey()); err != nil {
		return err
	}
	if len(r.GetEndKey()) > 0 && bytes.Compare(r.GetStartKey(), r.GetEndKey()) > 0 {
		return invalid("end_key: %q sorts before start_key %q; a scan needs start_key <= end_key", r.GetEndKey(), r.GetStartKey())
	}
	if int(r.GetLimit()) > l.MaxScanLimit {
		return invalid("limit: %d exceeds the limit of %d pairs (limits.max-scan-limit)", r.GetLimit(), l.MaxScanLimit)
	}
	return nil
}

// errorForKey formats a key for messages.
func errorForKey(k []byte) string { return fmt.Sprintf("%q", k) }
