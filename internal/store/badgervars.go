package store

import (
	"expvar"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Badger counts its own work in expvar variables (badger/y/metrics.go),
// for the whole process: every Badger database in it adds to the same
// ones (sketchd opens one). compactionVars exports those that show
// compactions, the background work that competes with queries for the
// CPU (docs/operations.md), read at each scrape.
type compactionVars struct {
	written, tables *prometheus.Desc
}

// Badger's expvar names.
const (
	varCompactionWritten = "badger_write_bytes_compaction"     // map: "l1".."l6" -> bytes
	varCompactionTables  = "badger_compaction_current_num_lsm" // tables in running compactions
)

func newCompactionVars() compactionVars {
	return compactionVars{
		written: prometheus.NewDesc("sketchd_store_compaction_written_bytes_total",
			"Bytes of the tables Badger's compactions wrote, by the level they wrote to (process-wide).",
			[]string{"level"}, nil),
		tables: prometheus.NewDesc("sketchd_store_compaction_tables",
			"Tables in the compactions Badger is running now, inputs from both levels (process-wide).",
			nil, nil),
	}
}

func (c compactionVars) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.written
	ch <- c.tables
}

func (c compactionVars) Collect(ch chan<- prometheus.Metric) {
	written, tables := compactionCounts()
	for level, n := range written {
		ch <- prometheus.MustNewConstMetric(c.written, prometheus.CounterValue, float64(n), level)
	}
	ch <- prometheus.MustNewConstMetric(c.tables, prometheus.GaugeValue, float64(tables))
}

// compactionCounts reads Badger's compaction expvars: the bytes its
// compactions wrote so far by the level written to ("1".."6"), and the
// tables in the compactions running now.
func compactionCounts() (written map[string]int64, tables int64) {
	written = map[string]int64{}
	if m, ok := expvar.Get(varCompactionWritten).(*expvar.Map); ok {
		m.Do(func(kv expvar.KeyValue) {
			if n, ok := kv.Value.(*expvar.Int); ok {
				written[strings.TrimPrefix(kv.Key, "l")] = n.Value()
			}
		})
	}
	if n, ok := expvar.Get(varCompactionTables).(*expvar.Int); ok {
		tables = n.Value()
	}
	return written, tables
}

// Compactions returns the bytes Badger's compactions have written so far,
// all levels together, and the tables in the compactions running now
// (process-wide, as compactionCounts reads them): what a caller waiting
// for compactions to settle compares between two reads.
func Compactions() (written, tables int64) {
	byLevel, tables := compactionCounts()
	for _, n := range byLevel {
		written += n
	}
	return written, tables
}
