package lake

import "github.com/prometheus/client_golang/prometheus"

// metrics are Lake's counters of the limits in docs/security.md; gauges
// are read at scrape time.
type metrics struct {
	evicted, interrupted prometheus.Counter
	// throttled counts PutAuditEvents calls refused because the engine's
	// journal was full.
	throttled   prometheus.Counter
	checkpoints *prometheus.CounterVec
}

func newMetrics(l *Lake, reg prometheus.Registerer) *metrics {
	m := &metrics{
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_lake_query_results_evicted_total",
			Help: "Ended queries forgotten because their account held more than max_held_results or max_held_results_mb."}),
		interrupted: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_lake_queries_interrupted_total",
			Help: "Running queries cancelled because they kept lake.duckdb from checkpointing."}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_lake_put_audit_events_throttled_total",
			Help: "PutAuditEvents calls answered ThrottlingException because Lake's journal held as many events not yet in the table as it allows."}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_lake_checkpoints_total",
			Help: "Checkpoints of lake.duckdb by result (ok, or blocked by running queries)."}, []string{"result"}),
	}
	if reg == nil {
		return m
	}
	locked := func(f func() float64) func() float64 {
		return func() float64 { l.mu.Lock(); defer l.mu.Unlock(); return f() }
	}
	reg.MustRegister(m.evicted, m.interrupted, m.throttled, m.checkpoints,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_lake_queries_running", Help: "Lake queries holding a running slot."},
			locked(func() float64 { return float64(l.active) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_lake_queries_queued", Help: "Lake queries waiting for a running slot."},
			locked(func() float64 { return float64(len(l.waiting)) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_lake_query_results_bytes", Help: "Bytes of the result files held for ended queries."},
			locked(func() float64 {
				var n int64
				for _, q := range l.queries {
					if q.res != nil {
						n += q.res.size
					}
				}
				return float64(n)
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_lake_wal_bytes", Help: "Size of lake.duckdb's write-ahead log."},
			func() float64 { return float64(l.eng.LogSize()) }),
	)
	return m
}
