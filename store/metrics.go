package store

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/raft/v3/raftpb"
)

// metrics are the store's Prometheus series (names in INTERFACES.md).
type metrics struct {
	replicas           prometheus.Gauge
	leaders            prometheus.Gauge
	quiescent          prometheus.Gauge
	batchesSent        prometheus.Counter
	messagesSent       *prometheus.CounterVec
	messagesDropped    *prometheus.CounterVec
	logSyncs           prometheus.Counter
	entriesAppended    prometheus.Counter
	readyPasses        prometheus.Counter
	kvRequests         *prometheus.CounterVec
	kvDuration         *prometheus.HistogramVec
	snapshotBytesSent  prometheus.Counter
	snapshotBytesRecv  prometheus.Counter
	snapshotsSent      *prometheus.CounterVec
	snapshotsApplied   prometheus.Counter
	proposals          *prometheus.CounterVec
	entriesApplied     prometheus.Counter
	leaderChanges      prometheus.Counter
	logTruncations     prometheus.Counter
	transportQueueSize *prometheus.GaugeVec
	elections          prometheus.Counter
	// kvReads counts reads by how they were served: lease, read_index
	// (leader round), follower (read index from the leader), stale.
	kvReads *prometheus.CounterVec
	// proposalEntries counts the log entries client proposals were put in
	// (rangekv_raft_proposals_total{result} counts the proposals): writes
	// that arrive together share one (rangeraft.Replica.ProposeAll).
	proposalEntries prometheus.Counter
	// commitsFolded counts commit-only appends never sent because a later
	// append to the same replica carried their commit index
	// (store_commit_hold.go); messagesSent counted them when raft sent them.
	commitsFolded prometheus.Counter
	// commitAppends counts the commit-only appends (MsgApp without
	// entries) raft sent; messagesSent{MsgApp} counts them too.
	commitAppends prometheus.Counter
	// readies counts the Readies passes handled (one per range per pass
	// with a Ready), rangePasses the ranges passes took (drained, with a
	// Ready or not), batchOps the Pebble operations the passes' batches
	// committed: the per-range work of the write path, per put.
	readies, rangePasses, batchOps prometheus.Counter
	// commitAdvances counts the commit-only appends sent as commit
	// advances (store_commit_hold.go), advancesFolded those of them a later
	// append carried (commitsFolded counts them too), advanceAnswersDropped
	// the heartbeat answers to received advances not sent.
	commitAdvances, advancesFolded, advanceAnswersDropped prometheus.Counter
	// heartbeatsElided counts plain heartbeats not sent because their
	// follower answered an append within the interval
	// (rangeraft/heartbeat_elide.go).
	heartbeatsElided prometheus.Counter
	// addrLookups counts lookups of peer store addresses at placement,
	// by result; placementReachable is 1 when the store's last call to
	// placement succeeded (store_peer_addrs.go).
	addrLookups        *prometheus.CounterVec
	placementReachable prometheus.Gauge
	// sentByType caches the children of messagesSent by raft message
	// type, each looked up once (the send path counts every message).
	sentByType [32]atomic.Pointer[prometheus.Counter]
	// kvOK holds the children of kvRequests{op, result="ok"} and
	// kvDuration{op} of every KV op, looked up once.
	kvOK map[string]kvOpMetrics
}

type kvOpMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		replicas:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "rangekv_store_replicas", Help: "Replicas hosted by this store."}),
		leaders:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "rangekv_store_leaders", Help: "Replicas of this store that are Raft leaders."}),
		quiescent:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "rangekv_store_quiescent_replicas", Help: "Replicas of this store that are not ticking."}),
		batchesSent:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_transport_batches_sent_total", Help: "Message batches written to peer-store streams."}),
		messagesSent:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rangekv_raft_messages_sent_total", Help: "Raft messages sent, whatever batch carried them."}, []string{"type"}),
		messagesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rangekv_raft_messages_dropped_total", Help: "Raft messages dropped (full queue or inbox, unknown range, unreachable peer)."}, []string{"reason"}),
		logSyncs:        prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_log_syncs_total", Help: "Fsyncs of the Raft log (one per synced batch, whatever the number of ranges in it)."}),
		entriesAppended: prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_entries_appended_total", Help: "Raft log entries persisted."}),
		readyPasses:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_ready_batches_total", Help: "Worker passes that persisted at least one Ready."}),
		kvRequests:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rangekv_kv_requests_total", Help: "KV requests served."}, []string{"op", "result"}),
		kvDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rangekv_kv_request_duration_seconds", Help: "Server-side KV request latency.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"op"}),
		snapshotBytesSent:  prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_snapshot_bytes_sent_total", Help: "Snapshot bytes streamed to peers."}),
		snapshotBytesRecv:  prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_snapshot_bytes_received_total", Help: "Snapshot bytes received from peers."}),
		snapshotsSent:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rangekv_snapshots_sent_total", Help: "Snapshots sent, by result."}, []string{"result"}),
		snapshotsApplied:   prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_snapshots_applied_total", Help: "Snapshots applied by replicas of this store."}),
		proposals:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rangekv_raft_proposals_total", Help: "Proposals by outcome."}, []string{"result"}),
		entriesApplied:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_entries_applied_total", Help: "Committed entries applied."}),
		leaderChanges:      prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_leader_changes_total", Help: "Leadership changes seen by replicas of this store."}),
		logTruncations:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_log_truncations_total", Help: "Log truncations applied."}),
		transportQueueSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rangekv_transport_queue_depth", Help: "Messages queued for a peer store."}, []string{"peer"}),
		elections:          prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_elections_total", Help: "Elections started by replicas of this store (campaigns for a new term)."}),
		proposalEntries:    prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_proposal_entries_total", Help: "Log entries proposed for client proposals; writes that arrive together share one."}),
	}
	m.kvOK = map[string]kvOpMetrics{}
	for _, op := range []string{"get", "put", "delete", "cas", "incr", "scan", "batch"} {
		m.kvOK[op] = kvOpMetrics{requests: m.kvRequests.WithLabelValues(op, "ok"), duration: m.kvDuration.WithLabelValues(op)}
	}
	m.commitsFolded = prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_commit_appends_folded_total",
		Help: "Commit-only appends not sent because a later append to the same replica carried their commit index."})
	m.commitAppends = prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_commit_appends_total",
		Help: "Commit-only appends (MsgApp without entries) raft sent; rangekv_raft_messages_sent_total{type=\"MsgApp\"} counts them too."})
	m.readies = prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_readies_total",
		Help: "Raft Readies handled: one per range per worker pass that had a Ready."})
	m.rangePasses = prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_range_passes_total",
		Help: "Ranges worker passes took (inbox drained, with a Ready or not)."})
	m.batchOps = prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_batch_ops_total",
		Help: "Pebble operations (sets, deletes) committed by worker passes: entries, hard states, applies."})
	m.commitAdvances = prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_commit_advances_total",
		Help: "Commit-only appends sent as commit advances: a heartbeat the follower does not answer, as its answer would teach the leader nothing."})
	m.advancesFolded = prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_commit_advances_folded_total",
		Help: "Commit advances not sent because a later append to the same replica carried their commit index (counted in rangekv_raft_commit_appends_folded_total too)."})
	m.advanceAnswersDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_commit_advance_answers_dropped_total",
		Help: "Heartbeat answers to received commit advances not sent."})
	m.heartbeatsElided = prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_raft_heartbeats_elided_total",
		Help: "Plain heartbeats not sent because their follower answered an append of the leader within the heartbeat interval."})
	reg.MustRegister(m.proposalEntries, m.commitsFolded, m.commitAppends, m.readies, m.rangePasses, m.batchOps,
		m.commitAdvances, m.advancesFolded, m.advanceAnswersDropped, m.heartbeatsElided)
	reg.MustRegister(m.replicas, m.leaders, m.quiescent, m.batchesSent, m.messagesSent, m.messagesDropped,
		m.logSyncs, m.entriesAppended, m.readyPasses, m.kvRequests, m.kvDuration, m.snapshotBytesSent,
		m.snapshotBytesRecv, m.snapshotsSent, m.snapshotsApplied, m.proposals, m.entriesApplied,
		m.leaderChanges, m.logTruncations, m.transportQueueSize, m.elections)
	m.kvReads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rangekv_kv_reads_total",
		Help: "Reads served, by path: lease, read_index, follower, stale."}, []string{"path"})
	for _, path := range []string{"lease", "read_index", "follower", "stale"} {
		m.kvReads.WithLabelValues(path) // exported from the start, at 0
	}
	reg.MustRegister(m.kvReads)
	m.addrLookups = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rangekv_store_address_lookups_total",
		Help: "Lookups of peer store addresses at placement, by result; a failed lookup is retried after a backoff."}, []string{"result"})
	m.placementReachable = prometheus.NewGauge(prometheus.GaugeOpts{Name: "rangekv_store_placement_reachable",
		Help: "1 when the store's last call to placement succeeded, 0 when it failed (the store keeps serving its ranges)."})
	reg.MustRegister(m.addrLookups, m.placementReachable)
	return m
}

// registerLogMetrics adds the gauges of the replicas' Raft logs, computed
// when scraped: the entries not yet truncated, summed over the store's
// replicas, and the longest log (a follower holding truncation back shows
// here first).
func (s *Store) registerLogMetrics(reg prometheus.Registerer) {
	logLen := func(r *Replica) uint64 {
		first, _ := r.log.FirstIndex()
		last, _ := r.log.LastIndex()
		if last < first {
			return 0
		}
		return last - first + 1
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rangekv_raft_log_entries", Help: "Raft log entries not yet truncated, over all replicas of this store."}, func() float64 {
			var n uint64
			for _, r := range s.replicasSnapshot() {
				n += logLen(r)
			}
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rangekv_raft_log_entries_max", Help: "Raft log entries not yet truncated of the longest log among this store's replicas."}, func() float64 {
			var m uint64
			for _, r := range s.replicasSnapshot() {
				m = max(m, logLen(r))
			}
			return float64(m)
		}),
	)
}

// sent is the messagesSent counter of messages of type t.
func (m *metrics) sent(t pb.MessageType) prometheus.Counter {
	if t < 0 || int(t) >= len(m.sentByType) {
		return m.messagesSent.WithLabelValues(t.String())
	}
	if c := m.sentByType[t].Load(); c != nil {
		return *c
	}
	c := m.messagesSent.WithLabelValues(t.String())
	m.sentByType[t].Store(&c)
	return c
}
