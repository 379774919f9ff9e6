package api

import (
	"net/url"

	"github.com/sketchd/sketchd"
)

// alignDefaultRange makes the default range whole panes. A query covers
// whole panes (from rounded down, to up), so "the last hour" taken as
// [now - 1h, now) would cover 61 one-minute panes. When to is not given it
// is now rounded up to a pane boundary (the end of the current pane, still
// filling), and from, when not given either, one default range before it:
// 60 one-minute panes, or exactly 12 windows of step=5m. A given to (or
// from) is kept as given; the answer's from and to always say what was
// covered.
func alignDefaultRange(v url.Values, from, to *int64, g int64) {
	if _, given := v["to"]; given || g <= 0 {
		return
	}
	end := sketchd.PaneStart(*to-1, g) + g // now rounded up to a pane boundary
	shift := end - *to
	*to = end
	if _, given := v["from"]; !given {
		*from += shift
	}
}
