package store_test

// Fuzzing the KV request validators against a naive reference of the
// documented limits: no input panics; an accepted request is within every
// limit; a rejected one is InvalidArgument and its message starts with the
// name of the offending field.

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rangekv/rangekv/proto/rangekvpb"
	"github.com/rangekv/rangekv/store"
)

// fuzzLimits are small so that random inputs cross every limit often.
var fuzzLimits = store.Limits{MaxKeySize: 16, MaxValueSize: 24, MaxScanLimit: 50}

// kvReq is one KV request built from fuzz input, with the reference
// verdict: the field a correct validator must name, or "" to accept.
type kvReq struct {
	name     string
	validate func() error
	badField string
}

func keyProblem(field string, k []byte, required bool) string {
	if (required && len(k) == 0) || len(k) > fuzzLimits.MaxKeySize {
		return field
	}
	return ""
}

func firstOf(fields ...string) string {
	for _, f := range fields {
		if f != "" {
			return f
		}
	}
	return ""
}

func valueProblem(field string, v []byte) string {
	if len(v) > fuzzLimits.MaxValueSize {
		return field
	}
	return ""
}

func buildKVRequests(key, val, other []byte, limit uint32, flag bool) []kvReq {
	l := fuzzLimits
	expectedProblem := ""
	if flag && len(val) > 0 {
		expectedProblem = "expected"
	}
	scanOrder := ""
	if len(other) > 0 && bytes.Compare(key, other) > 0 {
		scanOrder = "end_key"
	}
	scanLimit := ""
	if int(limit) > l.MaxScanLimit {
		scanLimit = "limit"
	}
	return []kvReq{
		{"get", func() error { return l.ValidateGet(&rangekvpb.GetRequest{Key: key}) }, keyProblem("key", key, true)},
		{"put", func() error { return l.ValidatePut(&rangekvpb.PutRequest{Key: key, Value: val}) },
			firstOf(keyProblem("key", key, true), valueProblem("value", val))},
		{"delete", func() error { return l.ValidateDelete(&rangekvpb.DeleteRequest{Key: key}) }, keyProblem("key", key, true)},
		{"cas", func() error {
			return l.ValidateCas(&rangekvpb.CasRequest{Key: key, Expected: val, ExpectAbsent: flag, NewValue: other})
		}, firstOf(keyProblem("key", key, true), expectedProblem, valueProblem("expected", val), valueProblem("new_value", other))},
		{"incr", func() error { return l.ValidateIncr(&rangekvpb.IncrRequest{Key: key, Delta: int64(limit)}) }, keyProblem("key", key, true)},
		{"scan", func() error {
			return l.ValidateScan(&rangekvpb.ScanRequest{StartKey: key, EndKey: other, Limit: limit})
		}, firstOf(keyProblem("start_key", key, false), keyProblem("end_key", other, false), scanOrder, scanLimit)},
	}
}

func FuzzValidateKVRequests(f *testing.F) {
	f.Add([]byte("k"), []byte("v"), []byte("z"), uint32(10), false)
	f.Add([]byte(""), []byte(""), []byte(""), uint32(0), false)
	f.Add(bytes.Repeat([]byte("k"), 16), bytes.Repeat([]byte("v"), 24), bytes.Repeat([]byte("n"), 16), uint32(50), false)
	f.Add(bytes.Repeat([]byte("k"), 17), bytes.Repeat([]byte("v"), 25), []byte("a"), uint32(51), true)
	f.Add([]byte("b"), []byte("x"), []byte("a"), uint32(1<<31), true)
	f.Fuzz(func(t *testing.T, key, val, other []byte, limit uint32, flag bool) {
		for _, r := range buildKVRequests(key, val, other, limit, flag) {
			err := r.validate()
			if r.badField == "" {
				if err != nil {
					t.Fatalf("%s(key %q, val %q, other %q, limit %d, flag %v): rejected a request within the limits: %v",
						r.name, key, val, other, limit, flag, err)
				}
				continue
			}
			if err == nil {
				t.Fatalf("%s(key %q, val %q, other %q, limit %d, flag %v): accepted, but %s breaks a limit",
					r.name, key, val, other, limit, flag, r.badField)
			}
			st, ok := status.FromError(err)
			if !ok || st.Code() != codes.InvalidArgument {
				t.Fatalf("%s: error %v is not InvalidArgument", r.name, err)
			}
			if !strings.HasPrefix(st.Message(), r.badField+":") {
				t.Fatalf("%s: message %q does not start with the field %q", r.name, st.Message(), r.badField)
			}
		}
	})
}
