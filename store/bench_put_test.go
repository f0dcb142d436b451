package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rangekv/rangekv/internal/harness/testcluster"
	"github.com/rangekv/rangekv/store"
)

// BenchmarkPutConcurrent measures 256-byte puts on one range of three
// in-process stores (on disk) with 1, 16 and 256 concurrent writers.
func BenchmarkPutConcurrent(b *testing.B) {
	for _, clients := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := testcluster.Start(b, 3, testcluster.Options{Configure: func(_ int, cfg *store.Config) {
				cfg.HeartbeatInterval = 100 * time.Millisecond
				cfg.ElectionTimeout = time.Second
			}})
			c.WaitLeader(1)
			cl := c.Client()
			val := make([]byte, 256)
			var n atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
						if err := cl.Put(context.Background(), []byte(fmt.Sprintf("k%d-%d", w, i)), val); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
