package emit

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
)

// Streams returns inner with each stream's status carrying its emit
// targets' progress (sketchd.StreamStatus.Emit).
func (s *Service) Streams(inner api.Streams) api.Streams { return withEmit{inner, s} }

type withEmit struct {
	api.Streams
	s *Service
}

func (w withEmit) Get(ctx context.Context, name string) (sketchd.StreamStatus, error) {
	st, err := w.Streams.Get(ctx, name)
	if err == nil {
		st.Emit = w.s.statusOf(ctx, &st)
	}
	return st, err
}

func (w withEmit) List(ctx context.Context) ([]sketchd.StreamStatus, error) {
	sts, err := w.Streams.List(ctx)
	for i := range sts {
		sts[i].Emit = w.s.statusOf(ctx, &sts[i])
	}
	return sts, err
}

// statusOf is the emit status of st's targets: the running emitter's, or,
// while none runs (the stream is starting, backfilling or failed), each
// target's stored cursor with no counts yet.
func (s *Service) statusOf(ctx context.Context, st *sketchd.StreamStatus) []sketchd.EmitStatus {
	if out := s.Status(st.Spec.Name); out != nil || len(st.Spec.Emit) == 0 {
		return out
	}
	out := make([]sketchd.EmitStatus, len(st.Spec.Emit))
	for i, t := range st.Spec.Emit {
		out[i] = sketchd.EmitStatus{Subject: t.Subject, ClosedTo: sketchd.NoTime, FinalTo: sketchd.NoTime}
		if c, ok, err := s.db.EmitCursor(ctx, st.ID, t.Subject); err == nil && ok {
			out[i].ClosedTo, out[i].FinalTo = c.ClosedTo, c.FinalTo
		}
	}
	return out
}

// Collector returns the emit metrics (sketchd_emit_*).
func (s *Service) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Service }

var (
	descMessages = prometheus.NewDesc("sketchd_emit_messages_total",
		"Window messages published to an emit target and confirmed by NATS (duplicates included).", []string{"stream", "subject"}, nil)
	descDups = prometheus.NewDesc("sketchd_emit_duplicates_total",
		"Emitted messages the JetStream target dropped as duplicates (published again after a restart).", []string{"stream", "subject"}, nil)
	descErrors = prometheus.NewDesc("sketchd_emit_errors_total",
		"Failed emit attempts (query, publish or cursor write; retried).", []string{"stream", "subject"}, nil)
	descBacklog = prometheus.NewDesc("sketchd_emit_backlog_windows",
		"Final windows not yet published to the target.", []string{"stream", "subject"}, nil)
	descFinalTo = prometheus.NewDesc("sketchd_emit_final_to_timestamp_seconds",
		"End of the last window published as final.", []string{"stream", "subject"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMessages, descDups, descErrors, descBacklog, descFinalTo} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c.s.all() {
		for _, t := range e.targets {
			l := []string{e.spec.Name, t.spec.Subject}
			ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(t.messages.Load()), l...)
			ch <- prometheus.MustNewConstMetric(descDups, prometheus.CounterValue, float64(t.dups.Load()), l...)
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(t.errs.Load()), l...)
			ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(t.backlog.Load()), l...)
			if f := t.finalTo.Load(); f != sketchd.NoTime {
				ch <- prometheus.MustNewConstMetric(descFinalTo, prometheus.GaugeValue, float64(f)/1e9, l...)
			}
		}
	}
}
