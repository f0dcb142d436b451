// The free-space guard: a store whose data directory has less free space
// than Config.MinFreeBytes refuses client writes with a DiskFull range
// error (the store, the directory, the free bytes and the threshold, as
// data the router turns into a typed router.DiskFullError), and accepts
// them again on its own once space returns.
//
// What is refused, and why: client proposals that add data (put, cas,
// incr, and atomic batches holding any put) on the replica that receives
// them, before they are proposed, so a refused write is definitely not
// applied. Deletes, and batches of deletes only, are accepted (they are
// how an operator frees space). Everything that keeps the cluster
// consistent goes on: Raft appends from leaders, applies, snapshots,
// splits, membership changes, log truncation. The threshold is the reserve
// that lets them finish; Pebble itself fails only when the disk is truly
// full. Reads are never affected. Nothing acknowledged is lost: the guard
// only refuses new writes.
//
// Free space is sampled by a goroutine the store owns (stopped by Stop),
// every diskCheckInterval; TestingKnobs.FreeSpace replaces the statfs call
// in tests. With an in-memory filesystem (Config.FS) and no knob there is
// nothing to measure and the guard is off.

package store

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rangekv/rangekv/proto/rangekvpb"
)

// diskCheckInterval is how often free space is sampled.
const diskCheckInterval = time.Second

// diskGuard holds the last sample.
type diskGuard struct {
	free  atomic.Uint64
	known atomic.Bool // a sample exists
	low   atomic.Bool // free < MinFreeBytes at the last sample
	gauge prometheus.Gauge
}

func (g *diskGuard) init(reg prometheus.Registerer) {
	g.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "rangekv_store_disk_free_bytes",
		Help: "Free bytes in the store's data directory (as available to the store's user)."})
	reg.MustRegister(g.gauge)
}

// freeSpaceFunc returns the function that measures free space, or nil
// when there is nothing to measure.
func (s *Store) freeSpaceFunc() func() (uint64, error) {
	if k := s.cfg.Knobs; k != nil && k.FreeSpace != nil {
		return k.FreeSpace
	}
	if s.cfg.FS != nil {
		return nil
	}
	dir := s.cfg.DataDir
	return func() (uint64, error) {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(dir, &fs); err != nil {
			return 0, err
		}
		return fs.Bavail * uint64(fs.Bsize), nil
	}
}

// checkDisk takes one sample and logs transitions.
func (s *Store) checkDisk(measure func() (uint64, error)) {
	free, err := measure()
	if err != nil {
		s.log.Warn("cannot measure free space in the data dir", "dir", s.cfg.DataDir, "err", err)
		return
	}
	g := &s.disk
	g.free.Store(free)
	g.known.Store(true)
	g.gauge.Set(float64(free))
	low := s.cfg.MinFreeBytes > 0 && free < uint64(s.cfg.MinFreeBytes)
	if was := g.low.Swap(low); was != low {
		if low {
			s.log.Error("data dir is low on space: refusing writes until space is freed",
				"dir", s.cfg.DataDir, "free_bytes", free, "storage.min-free", s.cfg.MinFreeBytes)
		} else {
			s.log.Info("data dir has space again: accepting writes", "dir", s.cfg.DataDir, "free_bytes", free)
		}
	}
}

// startDiskGuard samples once (so a store started on a full disk refuses
// writes from its first request) and then every diskCheckInterval.
func (s *Store) startDiskGuard() {
	measure := s.freeSpaceFunc()
	if measure == nil {
		return
	}
	s.checkDisk(measure)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(diskCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stopCh:
				return
			case <-t.C:
				s.checkDisk(measure)
			}
		}
	}()
}

// diskFull is the range error a refused write gets, or nil while there
// is space. Every write path that adds data checks it before proposing.
func (s *Store) diskFull() *rangekvpb.RangeError {
	if !s.disk.low.Load() {
		return nil
	}
	free := s.disk.free.Load()
	return &rangekvpb.RangeError{
		Message: fmt.Sprintf("store %d: data dir %s has %d bytes free, below storage.min-free (%d bytes): writes are refused until space is freed (reads and deletes work)",
			s.cfg.StoreID, s.cfg.DataDir, free, s.cfg.MinFreeBytes),
		DiskFull: &rangekvpb.DiskFull{StoreId: s.cfg.StoreID, Dir: s.cfg.DataDir, FreeBytes: free, MinFreeBytes: uint64(s.cfg.MinFreeBytes)},
	}
}

// DiskFree returns the last free-space sample (false when none).
func (s *Store) DiskFree() (uint64, bool) { return s.disk.free.Load(), s.disk.known.Load() }
