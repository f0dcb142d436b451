package store

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/rangekv/rangekv/internal/keys"
	"github.com/rangekv/rangekv/internal/logadapt"
)

// approximateKeys is exact for small spans and extrapolates from a sample
// for large ones.
func TestApproximateKeys(t *testing.T) {
	db, err := pebble.Open("data", &pebble.Options{FS: vfs.NewMem(), Logger: logadapt.Pebble{L: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &Store{db: db}
	for i := range 1000 {
		if err := db.Set(keys.UserKey([]byte(fmt.Sprintf("a%04d", i))), make([]byte, 95), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 7 {
		if err := db.Set(keys.UserKey([]byte(fmt.Sprintf("b%d", i))), []byte("v"), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	lo, hi := keys.UserSpan([]byte("b"), []byte("c"))
	if n := s.approximateKeys(lo, hi, 1<<20); n != 7 {
		t.Fatalf("small span: %d keys, want exactly 7", n)
	}
	lo, hi = keys.UserSpan([]byte("a"), []byte("b"))
	// 1000 entries of 6+95 bytes: a size of 101,000 bytes gives 1000.
	if n := s.approximateKeys(lo, hi, 101000); n < 900 || n > 1100 {
		t.Fatalf("large span: %d keys, want about 1000", n)
	}
}
