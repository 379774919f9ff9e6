package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/loadtest/publish"
)

// TierStatus is one rollup tier of GET /v1/streams/{s}.
type TierStatus struct {
	Granularity string    `json:"granularity"`
	BuiltTo     time.Time `json:"built_to"`
	ReadyTo     time.Time `json:"ready_to"`
}

// longBackfill publishes LongEvents into pv dated evenly over the LongSpan
// before the accuracy backfill's span (which starts BackSpan + 2 minutes
// ago), no late or invalid ones, and waits until sketchd has processed
// them. The accuracy backfill then continues the same event time, so its
// windows and counters are untouched (the runner subtracts what this one
// counted).
func (r *runner) longBackfill(ctx context.Context) (Ingest, error) {
	in := Ingest{Stream: "pv", Events: r.c.LongEvents}
	if r.c.LongEvents <= 0 {
		return in, nil
	}
	m, err := r.api.metrics(ctx)
	if err != nil {
		return in, err
	}
	base := m.Processed("pv")
	end := time.Now().Add(-r.c.BackSpan - 5*time.Minute)
	from := end.Add(-r.c.LongSpan)
	o := publish.Options{Subject: "bench.pv", JetStream: true, Count: r.c.LongEvents, From: from,
		Step: r.c.LongSpan / time.Duration(r.c.LongEvents), Gen: gen.Options{Seed: r.c.Seed + 4}}
	in.Commands = []string{fmt.Sprintf("go run ./loadtest/cmd/loadgen --nats-url %s --subject bench.pv --jetstream --count %d --backfill %s --seed %d   # ending %s before now",
		r.natsURL, r.c.LongEvents, r.c.LongSpan, o.Gen.Seed, r.c.BackSpan+5*time.Minute)}
	start := time.Now()
	pub, err := publish.Run(ctx, r.nc, o)
	if err != nil {
		return in, err
	}
	in.PubRate = pub.Rate()
	done, m, err := r.waitProcessed(ctx, "pv", base, r.c.LongEvents, 10*time.Minute)
	if err != nil {
		return in, err
	}
	in.Elapsed = done.Sub(start)
	in.Processed = int(m.Processed("pv") - base)
	in.Applied = int(m.Applied("pv"))
	in.Rate = float64(in.Processed) / in.Elapsed.Seconds()
	r.logf("   30-day backfill: published %.0f/s, processed %.0f/s", in.PubRate, in.Rate)
	return in, nil
}

// waitTiers waits (at most 5 minutes) until pv's rollup tiers are built up
// to their last whole pane before the accuracy backfill's end, so the
// 30-day queries read tiers, and returns their status. A tier that does
// not get there is reported, not an error.
func (r *runner) waitTiers(ctx context.Context) ([]TierStatus, error) {
	want := r.res.AccuracyTo
	rollups, built, err := r.waitRollups(ctx, "pv", 5*time.Minute, func(t TierStatus) bool {
		g, err := time.ParseDuration(t.Granularity)
		if err != nil {
			g = 24 * time.Hour // "1d"
		}
		return !t.BuiltTo.Before(want.Truncate(g))
	})
	if err != nil {
		return nil, err
	}
	if !built {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("pv's rollup tiers were not built to %s within 5 minutes: %+v", want.Format(time.RFC3339), rollups))
	}
	r.logf("   rollup tiers: %+v", rollups)
	return rollups, nil
}

// waitRollups polls the rollup tiers of stream (GET /v1/streams/{stream})
// until every one is built by the measure of built, or timeout passes,
// and returns the last status and whether they were all built.
func (r *runner) waitRollups(ctx context.Context, stream string, timeout time.Duration, built func(TierStatus) bool) ([]TierStatus, bool, error) {
	var st struct {
		Rollups []TierStatus `json:"rollups"`
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := r.api.getJSON(ctx, "/v1/streams/"+stream, &st); err != nil {
			return nil, false, err
		}
		all := len(st.Rollups) > 0
		for _, t := range st.Rollups {
			all = all && built(t)
		}
		if all || time.Now().After(deadline) {
			return st.Rollups, all, nil
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
