package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/sketchd/sketchd/loadtest/querymix"
)

// The tools' floor: vegeta and k6 at the query rate on a request sketchd
// answers without reading anything (GET /healthz: its router, middleware
// and a small JSON body), during the same ingest as the query mix. What a
// tool measures there is what the connection, the tool itself and the
// machine's scheduling add to every request, so it is the least a query of
// the mix can show in that tool: the figure to read beside the 1-hour
// ranges' p99 target (10 ms), which is a few times the service time.

// floorMix is the floor's one request. Its range is not one of the mix's
// (querymix.Ranges), so the k6 script's per-range thresholds see nothing.
var floorMix = []querymix.Query{{Name: "healthz", Range: "floor", Path: "/healthz", Weight: 1}}

// floorDur returns how long each tool runs at the floor: half the query
// load's duration, at least 5 s.
func floorDur(c Config) time.Duration { return max(5*time.Second, c.QueryDur/2) }

// floor runs vegeta, then k6 (when there is one), at the query rate on
// floorMix, each timed like the query load.
func (r *runner) floor(ctx context.Context) ([]*QueryLoad, error) {
	d := floorDur(r.c)
	r.phase(fmt.Sprintf("3. the tools' floor: vegeta at %d req/s on /healthz", r.c.QueryRate))
	v, err := r.timed(ctx, func() (QueryLoad, error) {
		return runVegeta(ctx, r.p, r.tools["vegeta"].path, r.dir, "-floor", r.base, floorMix, r.c.QueryRate, d)
	})
	if err != nil {
		return nil, fmt.Errorf("vegeta floor: %w", err)
	}
	out := []*QueryLoad{&v}
	if t := r.tools["k6"]; t != nil {
		r.phase(fmt.Sprintf("3. the tools' floor: k6 at %d req/s on /healthz", r.c.QueryRate))
		k, err := r.timed(ctx, func() (QueryLoad, error) {
			return runK6(ctx, r.p, t.path, r.dir, "-floor", r.base, filepath.Join(r.repo, "loadtest", "k6", "queries.js"), floorMix, r.c.QueryRate, d, r.c.K6Requests)
		})
		if err != nil {
			return nil, fmt.Errorf("k6 floor: %w", err)
		}
		out = append(out, &k)
	}
	return out, nil
}

// renderFloor writes the floor's rows and what they mean, after the query
// load's table.
func renderFloor(p func(string, ...any), r *Results) {
	if len(r.Floor) == 0 {
		return
	}
	p("\nThe tools' floor: each tool at the same rate, during the same ingest, on `GET /healthz`, which sketchd\n")
	p("answers without reading anything (its router, middleware and a 16-byte JSON body): what the connection,\n")
	p("the tool itself and the machine's scheduling add to every request, the least a query can show in that tool.\n\n")
	p("| tool | request | requests | errors | p50 | p90 | p99 | max | CPU: the tool, sketchd (of one core) |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, q := range r.Floor {
		cpu := "–"
		if c := q.CPU; c != nil && c.Wall > 0 {
			cpu = fmt.Sprintf("%.0f%%, %.0f%%", 100*c.Tool/c.Wall, 100*c.Sketchd/c.Wall)
		}
		l := q.All
		p("| %s | /healthz, %d req/s for %s | %s | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s |\n", q.Tool, q.Rate, q.Duration,
			thousands(int64(l.Requests)), l.Errors, l.P50, l.P90, l.P99, l.Max, cpu)
	}
	for _, q := range r.Floor {
		mix := r.Vegeta
		if q.Tool == "k6" {
			mix = r.K6
		}
		if mix == nil {
			continue
		}
		if h, ok := mix.ByRange["1h"]; ok {
			p("\n%s: the mix's 1-hour p99 %.2f ms against the floor's %.2f ms.", q.Tool, h.P99, q.All.P99)
		}
	}
	p("\n")
}
