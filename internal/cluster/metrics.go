package cluster

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MirrorOption configures NewMirror.
type MirrorOption func(*mirrorConfig)

type mirrorConfig struct {
	reg          prometheus.Registerer
	stallTimeout time.Duration // stall.go
}

// WithRegisterer registers the mirror's metrics on reg, labelled with its
// stream; Close unregisters them. NewMirror fails while another mirror of
// the same stream is registered on reg (close it first). Without it (or
// with nil) the mirror exports nothing.
func WithRegisterer(reg prometheus.Registerer) MirrorOption {
	return func(c *mirrorConfig) { c.reg = reg }
}

// mirrorCollector exports one mirror's progress at scrape time; nothing
// on the apply path touches a metric. Its descriptions carry the stream
// as a constant label, so the mirrors of several streams register side by
// side on one registry, and a second mirror of one stream is
// prometheus.AlreadyRegisteredError.
type mirrorCollector struct {
	m                                                   *Mirror
	applied, pending, panes, records, corrupt, restored *prometheus.Desc
	ownerChanges, restarts                              *prometheus.Desc
}

func newMirrorCollector(m *Mirror) *mirrorCollector {
	l := prometheus.Labels{"stream": m.cl.Stream}
	return &mirrorCollector{m: m,
		applied: prometheus.NewDesc("sketchd_mirror_applied_sequence",
			"Changelog sequence the stream's mirror has processed up to: applied, or skipped as already in the local store (the owner committed it) or held (owned here).", nil, l),
		pending: prometheus.NewDesc("sketchd_mirror_pending",
			"Changelog sequences the mirror has not processed yet: the changelog's last sequence minus the applied one, as of the mirror's last read (an upper bound on messages: compaction leaves gaps).", nil, l),
		panes: prometheus.NewDesc("sketchd_mirror_panes_applied_total",
			"Panes the mirror wrote to the local store.", nil, l),
		records: prometheus.NewDesc("sketchd_mirror_records_applied_total",
			"Checkpoint records the mirror committed to the local store.", nil, l),
		corrupt: prometheus.NewDesc("sketchd_mirror_skipped_corrupt_total",
			"Changelog messages the mirror skipped because they did not decode (checksum, key hash, subject); each is logged.", nil, l),
		restored: prometheus.NewDesc("sketchd_mirror_restored",
			"1 once the mirror has reached the head of the changelog (a fresh restore is consistent only then), else 0.", nil, l),
		ownerChanges: prometheus.NewDesc("sketchd_partition_owner_changes_total",
			"Claims of the stream's partitions that changed the owner (a partition's first claim included), as this instance's mirror read them from the changelog: every instance counts every failover and hand-off. Claims compacted away before the mirror read them are not counted.", nil, l),
		restarts: prometheus.NewDesc("sketchd_mirror_restarts_total",
			"Times the mirror dropped its consumer and started again from the store's applied sequences, by reason: stalled (its position had not moved for the stall timeout while the changelog held messages beyond it), error (reading the changelog failed; retried with backoff). Each is logged at warn.", []string{"reason"}, l),
	}
}

func (c *mirrorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.applied, c.pending, c.panes, c.records, c.corrupt, c.restored, c.ownerChanges, c.restarts} {
		ch <- d
	}
}

func (c *mirrorCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	st := m.Stats()
	applied := m.position.Load()
	pending := uint64(0)
	if h := m.head.Load(); h > applied {
		pending = h - applied
	}
	restored := 0.0
	if m.Restored() {
		restored = 1
	}
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(applied))
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(c.panes, prometheus.CounterValue, float64(st.Panes))
	ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(st.Records))
	ch <- prometheus.MustNewConstMetric(c.corrupt, prometheus.CounterValue, float64(st.Corrupt))
	ch <- prometheus.MustNewConstMetric(c.restored, prometheus.GaugeValue, restored)
	ch <- prometheus.MustNewConstMetric(c.ownerChanges, prometheus.CounterValue, float64(m.OwnerChanges()))
	ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(m.restarts[restartStalled].Load()), "stalled")
	ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(m.restarts[restartError].Load()), "error")
}

// register registers m's collector on reg.
func (m *Mirror) register(reg prometheus.Registerer) error {
	c := newMirrorCollector(m)
	if err := reg.Register(c); err != nil {
		if errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return fmt.Errorf("cluster: the metrics of another mirror of stream %q are registered; close it first: %w", m.cl.Stream, err)
		}
		return fmt.Errorf("cluster: mirror metrics: %w", err)
	}
	m.unregister = func() { reg.Unregister(c) }
	return nil
}

// Close unregisters the mirror's metrics (WithRegisterer). It does not
// stop a running mirror (cancel its context). Idempotent.
func (m *Mirror) Close() {
	m.closeOnce.Do(func() {
		if m.unregister != nil {
			m.unregister()
		}
	})
}
