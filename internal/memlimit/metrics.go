package memlimit

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd/internal/defaults"
)

// Collector exports what the limiter last saw and decided; the Go
// runtime's soft limit it sets is go_gc_gomemlimit_bytes.
func (l *Limiter) Collector() prometheus.Collector { return collector{l} }

type collector struct{ l *Limiter }

var (
	descFiles = prometheus.NewDesc("sketchd_memory_resident_file_bytes",
		"The process's resident file pages (/proc/self/statm): the binary, Badger's table pages and memtable logs, JetStream's mapped files. Past "+defaults.FilesShare.String()+" of --memory-limit they lower the Go runtime's soft limit (go_gc_gomemlimit_bytes).", nil, nil)
	descScale = prometheus.NewDesc("sketchd_memory_cache_scale",
		"The share of their budgets the query caches (panes, windows) keep: 1 unless the rest of the live heap passes two thirds of the Go runtime's soft limit.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFiles
	ch <- descScale
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descFiles, prometheus.GaugeValue, float64(c.l.files.Load()))
	ch <- prometheus.MustNewConstMetric(descScale, prometheus.GaugeValue, math.Float64frombits(c.l.scale.Load()))
}
