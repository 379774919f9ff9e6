package query

import (
	"encoding/binary"
	"time"

	"github.com/sketchd/sketchd"
)

// Retention in answers. The store reads no base pane older than the
// stream's retention, and a rollup tier keeps its panes for its own
// (longer) retention; the planner (chooseTiers) serves each part of a
// range from the coarsest tier that fits it or from the stream's own
// panes, whether or not that resolution still keeps the part. A part
// before its resolution's retained horizon answers nothing (base panes)
// or what the retention pass has not dropped yet (a tier), so the answer
// says so instead of passing it off as data: the result's Resolution marks
// such parts Expired, each window that overlaps one is Incomplete (and
// Expired when it lies wholly in them), and RetainedFrom says from when
// the stream's own panes are kept when the range starts before it. What is
// read does not change: serving a part from a coarser tier instead would
// add events outside the range. The horizons move with the clock, not
// with commits, so they are in the result cache's key (appendRetained).

// RetentionReader says from when a stream's retention keeps its panes;
// store.DB implements it. A PaneReader without it keeps everything.
type RetentionReader interface {
	// RetainedFrom returns the first pane start kept as of now of the
	// stream's own panes (tier 0) or of its rollup tier of granularity
	// tier; sketchd.NoTime when everything is kept.
	RetainedFrom(streamID uint32, tier time.Duration) int64
}

// TierVersioner counts the moves of a stream's rollup tier cursors, which
// the tier builder makes between commits; store.DB implements it. Which
// resolution serves a part follows the cursors, so the version is in the
// result cache's key.
type TierVersioner interface {
	TierVersion(streamID uint32) uint64
}

// retained is the first pane start each resolution of a stream keeps:
// its own panes' (base) and its rollup tiers' (in spec order);
// sketchd.NoTime keeps everything.
type retained struct {
	base  int64
	tiers []tierRetained
}

type tierRetained struct {
	granularity int64 // ns
	from        int64
}

// retained reads t's horizons from the reader; none without a
// RetentionReader.
func (q *Querier) retained(t Target) retained {
	r := retained{base: sketchd.NoTime}
	rr, ok := q.r.(RetentionReader)
	if !ok {
		return r
	}
	r.base = rr.RetainedFrom(t.ID, 0)
	for _, ro := range t.Spec.Rollups {
		r.tiers = append(r.tiers, tierRetained{int64(ro.Granularity), rr.RetainedFrom(t.ID, ro.Granularity.Std())})
	}
	return r
}

// of is the horizon of the resolution that serves s.
func (r *retained) of(s Span) int64 {
	if !s.Tier {
		return r.base
	}
	for _, t := range r.tiers {
		if t.granularity == s.Granularity {
			return t.from
		}
	}
	return sketchd.NoTime
}

// appendRetained appends what, besides a commit, moves the result of a
// query of t whose scan range starts at from: each resolution's horizon
// where it is past from (max(horizon, from): a range all retained keys
// the same whatever the clock), and the tier cursors' version.
func (q *Querier) appendRetained(b []byte, t Target, from int64) []byte {
	if rr, ok := q.r.(RetentionReader); ok {
		b = binary.AppendVarint(b, max(rr.RetainedFrom(t.ID, 0), from))
		for _, ro := range t.Spec.Rollups {
			b = binary.AppendVarint(b, max(rr.RetainedFrom(t.ID, ro.Granularity.Std()), from))
		}
	}
	if tv, ok := q.r.(TierVersioner); ok && len(t.Spec.Rollups) > 0 {
		b = binary.AppendUvarint(b, tv.TierVersion(t.ID))
	}
	return b
}

// resolution is p's spans as the result names them: each cut at its
// resolution's horizon, the part before it Expired, and adjacent spans of
// the same resolution merged.
func (p *plan) resolution() []Span {
	var out []Span
	add := func(s Span) {
		if n := len(out); n > 0 && out[n-1].To == s.From && out[n-1].Granularity == s.Granularity && out[n-1].Tier == s.Tier && out[n-1].Expired == s.Expired {
			out[n-1].To = s.To
			return
		}
		out = append(out, s)
	}
	for _, s := range p.spans {
		if h := p.ret.of(s); h > s.From {
			e := s
			e.To, e.Expired = min(s.To, h), true
			add(e)
			if h >= s.To {
				continue
			}
			s.From = h
		}
		add(s)
	}
	return out
}

// finish sets what a result of p says of its range as a whole, whatever
// computed its windows (the window cache, an edge window's parts, the
// store): its resolution, RetainedFrom, and which windows lie in expired
// parts.
func (p *plan) finish(res *Result) {
	res.Resolution = p.resolution()
	res.RetainedFrom = sketchd.NoTime
	if p.ret.base > p.geom.scanFrom() {
		res.RetainedFrom = p.ret.base
	}
	var expired [][2]int64 // the expired parts, merged where they touch
	for _, s := range res.Resolution {
		if !s.Expired {
			continue
		}
		if n := len(expired); n > 0 && expired[n-1][1] == s.From {
			expired[n-1][1] = s.To
			continue
		}
		expired = append(expired, [2]int64{s.From, s.To})
	}
	if len(expired) == 0 {
		return
	}
	for gi := range res.Groups {
		markExpired(res.Groups[gi].Windows, expired)
	}
}

// markExpired sets Incomplete on the windows (starts and ends ascending)
// that overlap an expired part, and Expired on those inside one.
func markExpired(wins []Window, expired [][2]int64) {
	j := 0
	for i := range wins {
		w := &wins[i]
		for j < len(expired) && expired[j][1] <= w.Start {
			j++
		}
		for k := j; k < len(expired) && expired[k][0] < w.End; k++ {
			w.Incomplete = true
			if expired[k][0] <= w.Start && w.End <= expired[k][1] {
				w.Expired = true
			}
		}
	}
}
