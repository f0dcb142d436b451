package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
)

func TestSmokePutGet(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	c.WaitLeader(1)
	cl := c.Client()
	ctx := c.Ctx(20 * time.Second)
	for i := range 50 {
		if err := cl.Put(ctx, []byte(fmt.Sprintf("k%03d", i)), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	for i := range 50 {
		v, found, err := cl.Get(ctx, []byte(fmt.Sprintf("k%03d", i)))
		if err != nil || !found || string(v) != fmt.Sprintf("v%d", i) {
			t.Fatalf("get %d: %q %v %v", i, v, found, err)
		}
	}
}
