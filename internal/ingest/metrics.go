package ingest

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd"
)

// Collector exports every stream's counters at scrape time: nothing on the
// per-event path touches a metric. Counters persist in checkpoints, so they
// stay monotonic across restarts.
func (m *Manager) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Manager }

var (
	descEvents = prometheus.NewDesc("sketchd_events_total",
		"Events by outcome: on_time and late were applied; too_late and future were not.", []string{"stream", "outcome"}, nil)
	descInvalid = prometheus.NewDesc("sketchd_invalid_events_total",
		"Rejected input by reason (dead-lettered when the stream has a dead-letter subject).", []string{"stream", "reason"}, nil)
	descSkipped = prometheus.NewDesc("sketchd_replayed_events_skipped_total",
		"Redelivered events already contained in stored panes (replay after a crash).", []string{"stream"}, nil)
	descMessages = prometheus.NewDesc("sketchd_messages_received_total",
		"NATS messages received.", []string{"stream"}, nil)
	descBytes = prometheus.NewDesc("sketchd_message_bytes_received_total",
		"NATS message payload bytes received.", []string{"stream"}, nil)
	descDropped = prometheus.NewDesc("sketchd_messages_dropped_total",
		"Core NATS messages dropped by the client (slow consumer) or after the stream stopped.", []string{"stream"}, nil)
	descDeadLetters = prometheus.NewDesc("sketchd_dead_letters_total",
		"Events published to a dead-letter subject, by kind (invalid, late).", []string{"stream", "kind"}, nil)
	descSuppressed = prometheus.NewDesc("sketchd_dead_letters_suppressed_total",
		"Dead and late letters not published because the stream's dead-letter rate limit held them back, by kind (invalid, late).", []string{"stream", "kind"}, nil)
	descPublishErrors = prometheus.NewDesc("sketchd_dead_letter_publish_errors_total",
		"Dead-letter publishes that failed.", []string{"stream"}, nil)
	descWatermark = prometheus.NewDesc("sketchd_watermark_timestamp_seconds",
		"The stream's live watermark (absent before the first event).", []string{"stream"}, nil)
	descLag = prometheus.NewDesc("sketchd_watermark_lag_seconds",
		"Processing time minus the watermark.", []string{"stream"}, nil)
	descCommittedWM = prometheus.NewDesc("sketchd_committed_watermark_timestamp_seconds",
		"The watermark of the last durable checkpoint: queries see the store as of it.", []string{"stream"}, nil)
	descOpen = prometheus.NewDesc("sketchd_open_panes",
		"Panes held in memory.", []string{"stream"}, nil)
	descEvicted = prometheus.NewDesc("sketchd_panes_evicted_early_total",
		"Panes evicted before they were final because the open-pane cap was reached.", []string{"stream"}, nil)
	descCommits = prometheus.NewDesc("sketchd_commits_total",
		"Flushes committed to the store.", []string{"stream"}, nil)
	descCommitErrors = prometheus.NewDesc("sketchd_commit_errors_total",
		"Commits that failed (retried; nothing is acked meanwhile).", []string{"stream"}, nil)
	descFlush = prometheus.NewDesc("sketchd_last_flush_duration_seconds",
		"Duration of the last flush: barrier, encode, commit, ack.", []string{"stream"}, nil)
	descLastCommit = prometheus.NewDesc("sketchd_last_commit_timestamp_seconds",
		"Wall time of the last commit.", []string{"stream"}, nil)
	descPending = prometheus.NewDesc("sketchd_jetstream_consumer_pending",
		"Messages in the JetStream stream not yet delivered to sketchd (as of the last delivery, or of the consumer info read every 5 flush intervals).", []string{"stream"}, nil)
	descAckFloor = prometheus.NewDesc("sketchd_jetstream_ack_floor_sequence",
		"Highest stream sequence acked by sketchd.", []string{"stream"}, nil)
	descGap = prometheus.NewDesc("sketchd_jetstream_messages_missing_total",
		"Messages of the subject removed from the JetStream stream (by its limits) before sketchd read them; per partition an upper bound (partition \"\" when unpartitioned).", []string{"stream", "partition"}, nil)
	descConnected = prometheus.NewDesc("sketchd_nats_connected",
		"1 while the NATS connection is up.", nil, nil)
	descReconnects = prometheus.NewDesc("sketchd_nats_reconnects_total",
		"NATS reconnections.", nil, nil)
	descRedials = prometheus.NewDesc("sketchd_nats_redials_total",
		"NATS connections the server closed for good (a protocol error), each replaced by a new one: the streams restarted on it, and in cluster mode the instance left the cluster and joined it again.", nil, nil)
	descSlow = prometheus.NewDesc("sketchd_nats_slow_consumer_events_total",
		"Slow-consumer episodes reported by the NATS client.", nil, nil)
	descDisconnects = prometheus.NewDesc("sketchd_nats_disconnects_total",
		"NATS connections lost (each is followed by reconnect attempts).", nil, nil)
	descDisconnected = prometheus.NewDesc("sketchd_nats_disconnected_seconds_total",
		"Time spent without a NATS connection. Core NATS messages published meanwhile are lost to sketchd (at-most-once) and cannot be counted.", nil, nil)
	descFailing = prometheus.NewDesc("sketchd_commit_failing",
		"1 while the stream's commits fail: nothing is acked, ingestion is paused, /readyz fails.", []string{"stream"}, nil)
	descUncommitted = prometheus.NewDesc("sketchd_uncommitted_panes",
		"Panes held in memory for a commit retry.", []string{"stream"}, nil)
	descResets = prometheus.NewDesc("sketchd_jetstream_consumer_resets_total",
		"JetStream consumer recreations after deliveries were lost in transit (connection or server outage).", []string{"stream"}, nil)
	descRedelivered = prometheus.NewDesc("sketchd_jetstream_redelivered_messages_total",
		"JetStream redeliveries of messages already being processed (ignored).", []string{"stream"}, nil)
	descJumps = prometheus.NewDesc("sketchd_jetstream_refused_jumps_total",
		"Deliveries that jumped over messages the JetStream stream still holds for the consumer (a consumer positioned past its start): refused, the consumer reset at the first sequence not received.", []string{"stream"}, nil)
	descTierBuiltTo = prometheus.NewDesc("sketchd_rollup_built_to_timestamp_seconds",
		"How far the rollup tier is built: its panes before it are stored and final (absent before its first unit).", []string{"stream", "granularity"}, nil)
	descTierReadyTo = prometheus.NewDesc("sketchd_rollup_ready_to_timestamp_seconds",
		"How far the rollup tier's source panes were final at the builder's last look: built_to catches up with it.", []string{"stream", "granularity"}, nil)
	descTierUnits = prometheus.NewDesc("sketchd_rollup_units_built_total",
		"Tier pane intervals (one tier pane over every key) the rollup builder built.", []string{"stream"}, nil)
	descTierErrors = prometheus.NewDesc("sketchd_rollup_build_errors_total",
		"Rollup builds that failed (logged; retried at the next pass).", []string{"stream"}, nil)
	descTierDeferred = prometheus.NewDesc("sketchd_rollup_passes_deferred_total",
		"Rollup builder passes deferred while the stream's JetStream consumer had a backlog (at most 10 in a row).", []string{"stream"}, nil)
	descUnansweredDeletes = prometheus.NewDesc("sketchd_jetstream_consumer_deletes_unanswered_total",
		"Attempts to delete a stream's JetStream consumer that the server left unanswered for 3 s (asked again until the delete's deadline).", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descInvalid, descSkipped, descMessages, descBytes, descDropped,
		descDeadLetters, descSuppressed, descPublishErrors, descWatermark, descLag, descCommittedWM, descOpen, descEvicted,
		descCommits, descCommitErrors, descFlush, descLastCommit, descPending, descAckFloor, descGap,
		descConnected, descReconnects, descRedials, descSlow, descDisconnects, descDisconnected,
		descFailing, descUncommitted, descResets, descRedelivered, descJumps, descUnansweredDeletes,
		descTierBuiltTo, descTierReadyTo, descTierUnits, descTierErrors, descTierDeferred} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	connected := 0.0
	if nc, _ := c.m.conns(); nc.IsConnected() {
		connected = 1
	}
	gauge(descConnected, connected)
	counter(descReconnects, c.m.conn.Reconnects())
	counter(descRedials, c.m.conn.Redials())
	counter(descSlow, c.m.conn.slow.Load())
	counter(descDisconnects, c.m.conn.Disconnects())
	counter(descUnansweredDeletes, c.m.unansweredDeletes.Load())
	now := c.m.now()
	ch <- prometheus.MustNewConstMetric(descDisconnected, prometheus.CounterValue, c.m.conn.Disconnected(time.Now()).Seconds())
	runners := c.m.running()
	sort.Slice(runners, func(i, j int) bool { return runners[i].spec.Name < runners[j].spec.Name })
	for _, r := range runners {
		s := r.currentStatus()
		n := s.Spec.Name
		counter(descEvents, s.Counters.OnTime, n, "on_time")
		counter(descEvents, s.Counters.Late, n, "late")
		counter(descEvents, s.Counters.TooLate, n, "too_late")
		counter(descEvents, s.Counters.Future, n, "future")
		for reason, v := range s.Counters.Invalid {
			counter(descInvalid, v, n, reason)
		}
		counter(descSkipped, s.Counters.Skipped, n)
		counter(descMessages, sumParts(r, func(p *runner) uint64 { return uint64(p.intake.received.Load()) }), n)
		counter(descBytes, sumParts(r, func(p *runner) uint64 { return uint64(p.intake.receivedBytes.Load()) }), n)
		counter(descDropped, s.Dropped, n)
		counter(descDeadLetters, sumParts(r, func(p *runner) uint64 { return uint64(p.intake.deadLettered.Load()) }), n, "invalid")
		counter(descDeadLetters, sumParts(r, func(p *runner) uint64 { return uint64(p.intake.lateLettered.Load()) }), n, "late")
		counter(descSuppressed, sumParts(r, func(p *runner) uint64 { return uint64(p.intake.deadSuppressed.Load()) }), n, "invalid")
		counter(descSuppressed, sumParts(r, func(p *runner) uint64 { return uint64(p.intake.lateSuppressed.Load()) }), n, "late")
		counter(descPublishErrors, sumParts(r, func(p *runner) uint64 { return uint64(p.intake.publishErrors.Load()) }), n)
		if s.Watermark != sketchd.NoTime {
			gauge(descWatermark, seconds(s.Watermark), n)
			gauge(descLag, now.Sub(time.Unix(0, s.Watermark)).Seconds(), n)
		}
		if s.CommittedWatermark != sketchd.NoTime {
			gauge(descCommittedWM, seconds(s.CommittedWatermark), n)
		}
		gauge(descOpen, float64(s.OpenPanes), n)
		counter(descEvicted, s.EvictedEarly, n)
		counter(descCommits, sumParts(r, func(p *runner) uint64 { return uint64(p.committer.commits.Load()) }), n)
		counter(descCommitErrors, sumParts(r, func(p *runner) uint64 { return uint64(p.committer.commitErrors.Load()) }), n)
		failing := 0.0
		for _, p := range r.parts() {
			if p.committer.failing.Load() {
				failing = 1
			}
		}
		gauge(descFailing, failing, n)
		gauge(descUncommitted, float64(sumParts(r, func(p *runner) uint64 { return uint64(p.committer.retryPanes.Load()) })), n)
		gauge(descFlush, math.Float64frombits(r.committer.cycleSeconds.Load()), n)
		if !s.LastCommit.IsZero() {
			gauge(descLastCommit, float64(s.LastCommit.UnixNano())/1e9, n)
		}
		collectTiers(counter, gauge, r, s)
		if s.Spec.JetStream {
			gauge(descPending, float64(s.Pending), n)
			gauge(descAckFloor, float64(s.AckFloor), n)
			for _, p := range r.parts() {
				counter(descGap, p.consumer.gapped.Load(), n, partitionLabel(p.part))
			}
			counter(descResets, sumParts(r, func(p *runner) uint64 { return uint64(p.consumer.resets.Load()) }), n)
			counter(descRedelivered, sumParts(r, func(p *runner) uint64 { return uint64(p.consumer.redelivered.Load()) }), n)
			counter(descJumps, sumParts(r, func(p *runner) uint64 { return p.consumer.jumps.Load() }), n)
		}
	}
}

// collectTiers reports a stream's rollup tiers.
func collectTiers(counter func(*prometheus.Desc, uint64, ...string), gauge func(*prometheus.Desc, float64, ...string), r *runner, s sketchd.StreamStatus) {
	if len(s.Rollups) == 0 {
		return
	}
	n := s.Spec.Name
	for _, t := range s.Rollups {
		g := t.Granularity.String()
		if t.BuiltTo != sketchd.NoTime {
			gauge(descTierBuiltTo, seconds(t.BuiltTo), n, g)
		}
		if t.ReadyTo != sketchd.NoTime {
			gauge(descTierReadyTo, seconds(t.ReadyTo), n, g)
		}
	}
	counter(descTierUnits, sumParts(r, func(p *runner) uint64 { return p.tiers.units.Load() }), n)
	counter(descTierErrors, sumParts(r, func(p *runner) uint64 { return p.tiers.errors.Load() }), n)
	counter(descTierDeferred, sumParts(r, func(p *runner) uint64 { return p.tiers.deferred.Load() }), n)
}

func seconds(ns int64) float64 { return float64(ns) / 1e9 }

// sumParts adds v over the stream's partitions.
func sumParts(r *runner, v func(*runner) uint64) uint64 {
	var n uint64
	for _, p := range r.parts() {
		n += v(p)
	}
	return n
}

// partitionLabel is a partition's metric label: "" when unpartitioned.
func partitionLabel(part int) string {
	if part < 0 {
		return ""
	}
	return strconv.Itoa(part)
}
