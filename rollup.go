package sketchd

import (
	"fmt"
	"time"
)

// Rollup is one stored rollup tier of a stream: panes of a coarser
// granularity, each the merge of the final panes of the tier below it (the
// stream's own panes for the first tier), built in the background once
// those are final and kept under their own retention. Queries read the
// coarsest tier that aligns with their range and step.
type Rollup struct {
	// Granularity is the tier's pane width: a multiple of the granularity of
	// the tier below (the stream's for the first), and a whole number of
	// seconds that divides 24h or a whole number of days.
	Granularity Duration `json:"granularity" yaml:"granularity"`
	// Retention drops tier panes that ended longer ago than this: at least
	// the retention of the tier below (the stream's for the first), which
	// is the default.
	Retention Duration `json:"retention" yaml:"retention"`
}

// MaxRollups bounds the tiers of one stream.
const MaxRollups = 8

// normalizeRollups fills each tier's default retention (Normalize).
func (s *Stream) normalizeRollups() {
	below := s.Retention
	for i := range s.Rollups {
		if s.Rollups[i].Retention == 0 {
			s.Rollups[i].Retention = below
		}
		below = s.Rollups[i].Retention
	}
}

// validateRollups checks the tiers: each granularity a multiple of the one
// below (so a tier pane is a whole number of panes of the tier below, and
// epoch-aligned with them), ordered finest first, each retention at least
// its granularity and at least the retention below it.
func (s *Stream) validateRollups(bad func(field, format string, args ...any)) {
	if len(s.Rollups) > MaxRollups {
		bad("rollups", "at most %d tiers, got %d", MaxRollups, len(s.Rollups))
		return
	}
	below, belowName := s.Granularity.Std(), "the stream granularity"
	keptBelow, keptName := s.Retention, "the stream's retention"
	for i, r := range s.Rollups {
		field := fmt.Sprintf("rollups[%d]", i)
		g := r.Granularity.Std()
		switch {
		case g <= 0:
			bad(field+".granularity", "required, a positive duration")
			continue
		case g%time.Second != 0:
			bad(field+".granularity", "must be a whole number of seconds, got %s", r.Granularity)
			continue
		case (24*time.Hour)%g != 0 && g%(24*time.Hour) != 0:
			bad(field+".granularity", "must divide 24h evenly or be whole days (1h, 6h, 1d, 7d, ...), got %s", r.Granularity)
			continue
		case below > 0 && (g <= below || g%below != 0):
			bad(field+".granularity", "must be a multiple of %s (%s) and larger, got %s", belowName, Duration(below), r.Granularity)
		}
		switch {
		case r.Retention.Std() < g:
			bad(field+".retention", "must be at least the tier granularity (%s), got %s", r.Granularity, r.Retention)
		case r.Retention < keptBelow:
			// Queries read a tier wherever it is built: it must not lose
			// panes that the finer data it stands for still has.
			bad(field+".retention", "must be at least %s (%s), got %s", keptName, keptBelow, r.Retention)
		}
		below, belowName = g, fmt.Sprintf("rollups[%d].granularity", i)
		keptBelow, keptName = r.Retention, fmt.Sprintf("rollups[%d].retention", i)
	}
}

// RollupSource returns the granularity (ns) of the panes tier i is built
// from: the tier below it, or the stream's own panes for tier 0.
func (s *Stream) RollupSource(i int) int64 {
	if i == 0 {
		return int64(s.Granularity)
	}
	return int64(s.Rollups[i-1].Granularity)
}

// RollupStatus is the build progress of one rollup tier.
type RollupStatus struct {
	Granularity Duration `json:"granularity"`
	// BuiltTo is the time (unix ns) up to which the tier is built: its panes
	// before it are stored and final. NoTime before the first unit.
	BuiltTo int64 `json:"built_to"`
	// ReadyTo is how far its source panes were final at the builder's last
	// look: BuiltTo catches up with it while a backfill runs.
	ReadyTo int64 `json:"ready_to"`
}
