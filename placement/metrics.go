package placement

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	isLeader         prometheus.Gauge
	operators        *prometheus.CounterVec
	operatorsStarted *prometheus.CounterVec
	storeHeartbeats  prometheus.Counter
	rangeHeartbeats  prometheus.Counter
	storesByState    *prometheus.GaugeVec
	underReplicated  prometheus.Gauge
	ranges           prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		isLeader:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "rangekv_placement_is_leader", Help: "1 on the placement leader."}),
		operators:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rangekv_placement_operators_total", Help: "Operators finished, by type and result."}, []string{"type", "result"}),
		operatorsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rangekv_placement_operators_started_total", Help: "Operators started, by type."}, []string{"type"}),
		storeHeartbeats:  prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_placement_store_heartbeats_total", Help: "Store heartbeats received."}),
		rangeHeartbeats:  prometheus.NewCounter(prometheus.CounterOpts{Name: "rangekv_placement_range_heartbeats_total", Help: "Range heartbeats received."}),
		storesByState:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rangekv_placement_stores", Help: "Stores by state (leader only)."}, []string{"state"}),
		underReplicated:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "rangekv_placement_under_replicated_ranges", Help: "Ranges with fewer healthy voters than the replication factor (leader only)."}),
		ranges:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "rangekv_placement_ranges", Help: "Ranges known to placement."}),
	}
	reg.MustRegister(m.isLeader, m.operators, m.operatorsStarted, m.storeHeartbeats, m.rangeHeartbeats, m.storesByState, m.underReplicated, m.ranges)
	return m
}
