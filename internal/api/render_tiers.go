package api

import (
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// rollupJSON is one rollup tier's build progress in the stream status.
type rollupJSON struct {
	Granularity sketchd.Duration `json:"granularity"`
	// BuiltTo: the tier's panes before it are stored (null before the
	// first); ReadyTo: how far its source panes are final.
	BuiltTo *string `json:"built_to"`
	ReadyTo *string `json:"ready_to"`
}

func renderRollups(rs []sketchd.RollupStatus) []rollupJSON {
	if len(rs) == 0 {
		return nil
	}
	out := make([]rollupJSON, len(rs))
	for i, r := range rs {
		out[i] = rollupJSON{Granularity: r.Granularity, BuiltTo: timePtr(r.BuiltTo), ReadyTo: timePtr(r.ReadyTo)}
	}
	return out
}

// resolutionJSON is a part of an answer's range and the resolution that
// served it: "panes" (the stream's own) or "rollup" (a stored tier); or
// "expired", a part before the retention of the resolution (granularity)
// that would serve it: its events are no longer kept.
type resolutionJSON struct {
	From        string           `json:"from"`
	To          string           `json:"to"`
	Granularity sketchd.Duration `json:"granularity"`
	Source      string           `json:"source"`
}

func renderResolution(spans []query.Span) []resolutionJSON {
	out := make([]resolutionJSON, len(spans))
	for i, s := range spans {
		out[i] = resolutionJSON{From: rfc3339(s.From), To: rfc3339(s.To), Granularity: sketchd.Duration(s.Granularity), Source: s.Source()}
	}
	return out
}
