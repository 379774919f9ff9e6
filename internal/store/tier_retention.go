package store

import (
	"time"

	"github.com/sketchd/sketchd"
)

// retentionCuts returns where the stream's retention cuts each of its
// spaces at processing time now: the base panes by the stream's retention,
// each rollup tier by its own. A retention of 0 or less keeps everything.
func retentionCuts(sid uint32, spec *sketchd.Stream, width int64, now int64) []spaceCut {
	var out []spaceCut
	add := func(sp space, r time.Duration) {
		if r > 0 {
			out = append(out, spaceCut{sp, floorDiv(now-int64(r), sp.width)})
		}
	}
	add(baseSpace(sid, width), spec.Retention.Std())
	for _, t := range spec.Rollups {
		add(tierSpace(sid, t.Granularity.Std()), t.Retention.Std())
	}
	return out
}
