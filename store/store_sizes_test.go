// Scope: LogicalSizes count live bytes, whatever Pebble's files hold.

package store_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rangekv/rangekv/store"
)

// The logical size of a span is its live keys' and values' bytes: the
// same before and after a flush, and without what was deleted.
func TestLogicalSizesCountLiveBytes(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, kv := range [][2]string{{"a", "1"}, {"b", "22"}, {"c", "333"}, {"x", "4444"}} {
		if err := db.Set([]byte(kv[0]), []byte(kv[1]), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	var sz store.LogicalSizes
	span := func() uint64 {
		n, err := sz.Span(db, []byte("a"), []byte("d"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := span(); got != 2+3+4 {
		t.Fatalf("span [a, d) before a flush: %d bytes, want 9", got)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := span(); got != 9 {
		t.Fatalf("span [a, d) after a flush: %d bytes, want 9", got)
	}
	if err := db.Delete([]byte("b"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if got := span(); got != 6 {
		t.Fatalf("span [a, d) after deleting b: %d bytes, want 6", got)
	}
	if got := sz.Used(db); got != 6+5 {
		t.Fatalf("used: %d bytes, want 11 (a, c and x)", got)
	}
}
