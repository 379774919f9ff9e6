package ingest

// Partitions on one node (docs/scale-out.md §2.1). A partitioned stream
// runs one runner per partition: each has its own durable consumer
// (sketchd_<instance>_<stream>_p<NN>, filtered on its partition's
// subjects), its own aggregator, checkpoint and store ID, and commits and
// acks on its own. The runner of partition 0 leads: the Manager holds it as
// the stream's runner, and it stops its siblings with itself and merges
// their statuses into the stream's. A later cluster (internal/cluster)
// starts and stops single partitions through newPartRunner and stopOne.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// newRunner starts the stream's runner: one, or one per partition led by
// partition 0's.
func newRunner(ctx context.Context, m *Manager, info store.StreamInfo) (*runner, error) {
	if !info.Spec.Partitioned() {
		return newPartRunner(ctx, m, info, -1)
	}
	if len(info.Partitions) != info.Spec.Partitions {
		return nil, fmt.Errorf("ingest: stream %q has %d partitions in its spec and %d in the store", info.Spec.Name, info.Spec.Partitions, len(info.Partitions))
	}
	parts := make([]*runner, 0, len(info.Partitions))
	for p := range info.Partitions {
		r, err := newPartRunner(ctx, m, info, p)
		if err != nil {
			for _, s := range parts {
				_ = s.stopOne(ctx, false)
			}
			return nil, fmt.Errorf("partition %d: %w", p, err)
		}
		parts = append(parts, r)
	}
	parts[0].siblings = parts[1:]
	return parts[0], nil
}

// parts returns the stream's runners in partition order: r alone when
// unpartitioned.
func (r *runner) parts() []*runner {
	return append([]*runner{r}, r.siblings...)
}

// stopAll stops every partition's runner at once.
func (r *runner) stopAll(ctx context.Context, final bool) error {
	parts := r.parts()
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() {
			if err := p.stopOne(ctx, final); err != nil {
				errs[i] = fmt.Errorf("partition %d: %w", p.part, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mergedStatus is the stream's status from its partitions' statuses:
// counters and sizes add up; the watermarks are the minimum over the
// partitions (a window is final only when every partition is past it);
// the last commit is the latest, so that any partition's commit makes
// cached answers stale.
func (r *runner) mergedStatus() sketchd.StreamStatus {
	st := *r.status.cur.Load()
	st.Counters = st.Counters.Clone()
	for _, s := range r.siblings {
		o := s.status.cur.Load()
		st.Watermark = min(st.Watermark, o.Watermark)
		st.MaxEventTime = max(st.MaxEventTime, o.MaxEventTime)
		st.CommittedWatermark = min(st.CommittedWatermark, o.CommittedWatermark)
		if o.LastCommit.After(st.LastCommit) {
			st.LastCommit = o.LastCommit
		}
		addCounters(&st.Counters, o.Counters)
		st.OpenPanes += o.OpenPanes
		st.EvictedEarly += o.EvictedEarly
		st.Dropped += o.Dropped
		st.Pending += o.Pending
		st.AckFloor = min(st.AckFloor, o.AckFloor)
		st.Coverage = append(slices.Clip(st.Coverage), o.Coverage...)
		if st.Error == "" && o.Error != "" {
			st.Error = fmt.Sprintf("partition %d: %s", s.part, o.Error)
		}
	}
	st.Partitions = r.partitionIDs()
	return st
}

// partitionIDs returns the store IDs of the stream's partitions.
func (r *runner) partitionIDs() []uint32 { return r.info.Partitions }

func addCounters(c *sketchd.Counters, o sketchd.Counters) {
	c.OnTime += o.OnTime
	c.Late += o.Late
	c.TooLate += o.TooLate
	c.Future += o.Future
	c.Skipped += o.Skipped
	for k, v := range o.Invalid {
		if c.Invalid == nil {
			c.Invalid = map[string]uint64{}
		}
		c.Invalid[k] += v
	}
}

// storedProgress sets the watermarks and counters of a stream that is not
// running from its checkpoints: its own, or its partitions' (merged as
// mergedStatus does; a partition without a checkpoint holds the
// watermarks at NoTime).
func (m *Manager) storedProgress(ctx context.Context, info store.StreamInfo, st *sketchd.StreamStatus) {
	ids := info.Partitions
	if len(ids) == 0 {
		ids = []uint32{info.ID}
	}
	for i, id := range ids {
		cp, ok, err := m.db.Checkpoint(ctx, id)
		ps := sketchd.PartitionState{Partition: i, Watermark: sketchd.NoTime}
		if err == nil && ok {
			ps.PositionSeq, ps.Watermark = sketchd.PositionSeq(cp.Position), cp.Watermark
		}
		if on, err := m.restoring(ctx, id); err == nil && on {
			ps.Uncovered = true // coverage.go
		}
		st.Coverage = append(st.Coverage, ps)
		if err != nil || !ok {
			st.Watermark, st.CommittedWatermark = sketchd.NoTime, sketchd.NoTime
			continue
		}
		if i == 0 {
			st.Watermark, st.MaxEventTime, st.CommittedWatermark, st.Counters = cp.Watermark, cp.MaxEventTime, cp.Watermark, cp.Counters.Clone()
			continue
		}
		st.Watermark = min(st.Watermark, cp.Watermark)
		st.CommittedWatermark = min(st.CommittedWatermark, cp.Watermark)
		st.MaxEventTime = max(st.MaxEventTime, cp.MaxEventTime)
		addCounters(&st.Counters, cp.Counters)
	}
}

// durables returns the names of the stream's durable consumers.
func (m *Manager) durables(spec sketchd.Stream) []string {
	name := m.consumerName(spec.Name)
	if !spec.Partitioned() {
		return []string{name}
	}
	out := make([]string, spec.Partitions)
	for p := range out {
		out[p] = fmt.Sprintf("%s_p%02d", name, p)
	}
	return out
}

// partitionTransform is the subject transform of the JetStream stream of a
// partitioned stream: every message is stored as <partition>.<subject>.
func partitionTransform(spec sketchd.Stream) *jetstream.SubjectTransformConfig {
	if !spec.Partitioned() {
		return nil
	}
	return &jetstream.SubjectTransformConfig{Source: spec.Subject, Destination: spec.PartitionTransform()}
}

// checkTransform refuses, for a partitioned spec, a JetStream stream (bound
// or created) whose subject transform does not partition the spec's
// subject as the spec says: the partitions' filters would not match what
// the stream stores.
func checkTransform(spec sketchd.Stream, have jetstream.StreamConfig) error {
	want := partitionTransform(spec)
	got := have.SubjectTransform
	switch {
	case want == nil:
		return nil
	case got == nil || got.Source != want.Source || got.Destination != want.Destination:
		g := "none"
		if got != nil {
			g = got.Source + " -> " + got.Destination
		}
		return &sketchd.FieldError{Field: "partitions", Msg: fmt.Sprintf(
			"JetStream stream %q must have the subject transform {src: %q, dest: %q} to be read in %d partitions; it has %s",
			have.Name, want.Source, want.Destination, spec.Partitions, g)}
	}
	return nil
}
