package store

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's Prometheus collectors (prefix sketchd_store_).
// They exist even without a registerer, so the code never checks for nil.
type metrics struct {
	reg             prometheus.Registerer
	registered      []prometheus.Collector
	commitDuration  prometheus.Histogram
	commitBytes     prometheus.Counter
	commitPanes     prometheus.Counter
	commitErrors    prometheus.Counter
	readErrors      *prometheus.CounterVec
	droppedParts    prometheus.Counter
	settledPanes    prometheus.Counter
	settleErrors    prometheus.Counter
	gcRuns          prometheus.Counter
	builderBytes    prometheus.Counter
	tablePages      prometheus.Counter
	tablePageBytes  prometheus.Counter
	tablePageErrors prometheus.Counter
	tablePagePasses *prometheus.CounterVec
	// Key listings' probes for a pane of a cut key (paneprobe.go):
	// answered by the memo, or by a seek into the panes.
	keyProbes            *prometheus.CounterVec
	probeMemo, probeSeek prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, size func() (lsm, vlog int64)) (*metrics, error) {
	m := &metrics{
		reg: reg,
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sketchd_store_commit_duration_seconds",
			Help:    "Time to write and sync one flush (Commit), including db.Sync.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5ms .. 4s
		}),
		commitBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_commit_bytes_total",
			Help: "Bytes of keys and values written by successful commits.",
		}),
		commitPanes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_commit_panes_total",
			Help: "Panes written by successful commits.",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_commit_errors_total",
			Help: "Commits that failed with ErrUnavailable.",
		}),
		readErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sketchd_store_read_errors_total",
			Help: "Read errors by kind: corrupt (checksum/format) or io.",
		}, []string{"kind"}),
		droppedParts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_retention_dropped_partitions_total",
			Help: "Partitions (pane and key-index prefixes) dropped by retention.",
		}),
		settledPanes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_settled_panes_total",
			Help: "Base panes moved from the open family to the panes family once final (or before an import or backfill edits them).",
		}),
		settleErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_settle_errors_total",
			Help: "Moves of final panes from the open family that failed after their commit was durable (the next commit retries them).",
		}),
		gcRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_vlog_gc_rewrites_total",
			Help: "Value-log files rewritten by GC.",
		}),
		builderBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_builder_pool_released_bytes_total",
			Help: "Bytes of Badger's pooled table-builder allocators the store released (BuilderDrainInterval).",
		}),
		tablePages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_table_pages_released_tables_total",
			Help: "LSM tables whose pages the store released from the process's resident set, counted once per table (it releases them again every TablePagesInterval).",
		}),
		tablePageBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_table_pages_released_bytes_total",
			Help: "Bytes of the table mappings released, every time (madvise MADV_DONTNEED, resident or not; the pages stay in the page cache).",
		}),
		tablePageErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sketchd_store_table_pages_errors_total",
			Help: "Passes releasing the tables' pages that failed (reading /proc/self/maps, or madvise); the error is logged when passes start failing.",
		}),
		tablePagePasses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sketchd_store_table_pages_passes_total",
			Help: "Passes releasing the tables' pages, by kind: full (the maps read; while the process's resident file pages are over the store's target, every TablePagesInterval, and every twentieth of it while Badger compacts), growth (a full pass because the resident file pages stood 16 MiB over the target, or over what the last pass left if that is more; checked every twentieth of TablePagesInterval) or quick_reads (the last full pass's tables again, when the queries read 16 MiB of tables while over the target). None while the file pages are within the target.",
		}, []string{"kind"}),
		keyProbes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sketchd_store_key_probes_total",
			Help: "Key listings' checks that a key whose span the range cuts has a pane in it, by answer: memo (a pane a listing proved before) or seek (into the panes, copying a pane value).",
		}, []string{"answer"}),
	}
	m.probeMemo = m.keyProbes.WithLabelValues("memo")
	m.probeSeek = m.keyProbes.WithLabelValues("seek")
	if reg == nil {
		return m, nil
	}
	all := []prometheus.Collector{
		m.commitDuration, m.commitBytes, m.commitPanes, m.commitErrors,
		m.readErrors, m.droppedParts, m.settledPanes, m.settleErrors, m.gcRuns, m.builderBytes, m.tablePages, m.tablePageBytes, m.tablePageErrors, m.tablePagePasses, m.keyProbes, newCompactionVars(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sketchd_store_lsm_size_bytes",
			Help: "Size of the LSM tree files (Badger's estimate, refreshed every minute).",
		}, func() float64 { l, _ := size(); return float64(l) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sketchd_store_vlog_size_bytes",
			Help: "Size of the value-log files (Badger's estimate, refreshed every minute).",
		}, func() float64 { _, v := size(); return float64(v) }),
	}
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, err
		}
		m.registered = append(m.registered, c)
	}
	return m, nil
}

func (m *metrics) unregister() {
	for _, c := range m.registered {
		m.reg.Unregister(c)
	}
	m.registered = nil
}

// readError counts a failed read by kind.
func (m *metrics) readError(err error) {
	if err == nil {
		return
	}
	if errors.Is(err, ErrCorrupt) {
		m.readErrors.WithLabelValues("corrupt").Inc()
	} else if !errors.Is(err, ErrClosed) {
		m.readErrors.WithLabelValues("io").Inc()
	}
}
