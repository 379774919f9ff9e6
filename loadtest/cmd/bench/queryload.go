package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/loadtest/publish"
	"github.com/sketchd/sketchd/loadtest/querymix"
)

// timed runs one query-load tool with sketchd's /metrics scraped once a
// second beside it, and joins the scrapes with the tool's requests into
// the result's timeline.
func (r *runner) timed(ctx context.Context, run func() (QueryLoad, error)) (QueryLoad, error) {
	s := startSampler(ctx, r.api.metrics, time.Second)
	q, err := run()
	samples, failed := s.finish()
	q.Timeline = BuildTimeline(samples, failed, q.requests, q.requests != nil)
	q.CPU = phaseCPU(q.tool, samples, runtime.NumCPU())
	return q, err
}

// queryLoad runs vegeta, then k6, at the query rate while a publisher
// ingests LiveRate events/s into pv.
func (r *runner) queryLoad(ctx context.Context) error {
	res := r.res
	mix := querymix.Mix("pv")
	m, err := r.api.metrics(ctx)
	if err != nil {
		return err
	}
	base := m.Processed("pv")
	liveCtx, stopLive := context.WithCancel(ctx)
	defer stopLive()
	total := 2*r.c.QueryDur + 5*time.Minute // an upper bound; stopped when the tools finish
	type pubDone struct {
		res publish.Result
		err error
	}
	liveDone := make(chan pubDone, 1)
	liveStart := time.Now()
	go func() {
		p, err := publish.Run(liveCtx, r.nc, publish.Options{Subject: "bench.pv", JetStream: true, Rate: float64(r.c.LiveRate),
			Duration: total, Gen: gen.Options{Seed: r.c.Seed + 3}})
		liveDone <- pubDone{p, err}
	}()
	// Let ingest settle for a moment before measuring queries.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Second):
	}
	n := 10
	if r.c.Quick {
		n = 5
	}
	r.phase("3. service times, then vegeta at a low rate")
	if res.Service, err = serviceTimes(ctx, r.api, mix, n); err != nil {
		return err
	}
	low := LowRate(res.Service)
	r.logf("   vegeta at %d req/s (half of one core's capacity at the mean service time)", low)
	lowDur := 20 * time.Second
	if r.c.Quick {
		lowDur = 5 * time.Second
	}
	lr, err := r.timed(ctx, func() (QueryLoad, error) {
		return runVegeta(ctx, r.p, r.tools["vegeta"].path, r.dir, "", r.base, mix, low, lowDur)
	})
	if err != nil {
		return fmt.Errorf("vegeta at %d/s: %w", low, err)
	}
	res.LowRate = &lr
	r.phase(fmt.Sprintf("3. vegeta at %d req/s", r.c.QueryRate))
	heapBefore, heapErr := r.heapSnapshot(ctx, "heap-before-vegeta")
	prof := r.profileDuring(ctx, fmt.Sprintf("cpu, vegeta %d req/s", r.c.QueryRate), r.c.QueryDur)
	v, err := r.timed(ctx, func() (QueryLoad, error) {
		return runVegeta(ctx, r.p, r.tools["vegeta"].path, r.dir, "", r.base, mix, r.c.QueryRate, r.c.QueryDur)
	})
	if err != nil {
		return fmt.Errorf("vegeta: %w", err)
	}
	res.Vegeta = &v
	pr := <-prof
	r.addProfile(pr.p, pr.err)
	r.memoryProfiles(ctx, fmt.Sprintf("vegeta %d req/s", r.c.QueryRate), heapBefore, heapErr)
	if t := r.tools["k6"]; t != nil {
		r.phase(fmt.Sprintf("3. k6 at %d req/s", r.c.QueryRate))
		heapBefore, heapErr := r.heapSnapshot(ctx, "heap-before-k6")
		k, err := r.timed(ctx, func() (QueryLoad, error) {
			return runK6(ctx, r.p, t.path, r.dir, "", r.base, filepath.Join(r.repo, "loadtest", "k6", "queries.js"), mix, r.c.QueryRate, r.c.QueryDur, r.c.K6Requests)
		})
		if err != nil {
			return fmt.Errorf("k6: %w", err)
		}
		res.K6 = &k
		r.memoryProfiles(ctx, fmt.Sprintf("k6 %d req/s", r.c.QueryRate), heapBefore, heapErr)
		r.phase(fmt.Sprintf("3. dashboard: %d users refreshing every 5s", r.c.DashVUs))
		first, err := dashboardFirstLoad(ctx, r.api, querymix.DashboardOf("pv"))
		if err != nil {
			return fmt.Errorf("dashboard first load: %w", err)
		}
		r.logf("   dashboard first load: %d questions, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d errors", first.Requests, first.P50, first.P99, first.Max, first.Errors)
		prof := r.profileDuring(ctx, "cpu, dashboard", r.c.DashDur)
		d, err := r.timed(ctx, func() (QueryLoad, error) {
			return runDashboard(ctx, r.p, t.path, r.dir, r.base, filepath.Join(r.repo, "loadtest", "k6", "dashboard.js"),
				querymix.DashboardOf("pv"), r.c.DashVUs, r.c.DashDur)
		})
		if err != nil {
			return fmt.Errorf("k6 dashboard: %w", err)
		}
		d.FirstLoad = &first
		res.Dashboard = &d
		pr := <-prof
		r.addProfile(pr.p, pr.err)
	}
	// Last, so that the phases before keep their timing: the k6 phase's
	// ranges move with the clock, and what it computes cold depends on
	// how long after vegeta's it runs.
	if res.Floor, err = r.floor(ctx); err != nil {
		return err
	}
	stopLive()
	ld := <-liveDone
	if ld.err != nil && !errors.Is(ld.err, context.Canceled) {
		return fmt.Errorf("live ingest: %w", ld.err)
	}
	live := Ingest{Stream: "pv", Events: int(ld.res.Published), PubRate: ld.res.Rate()}
	live.Commands = []string{fmt.Sprintf("go run ./loadtest/cmd/loadgen --nats-url %s --subject bench.pv --jetstream --rate %d --duration <load>", r.natsURL, r.c.LiveRate)}
	// How far behind sketchd was when the load ended.
	m, err = r.api.metrics(ctx)
	if err != nil {
		return err
	}
	behind := float64(ld.res.Published) - (m.Processed("pv") - base)
	done, m, err := r.waitProcessed(ctx, "pv", base, int(ld.res.Published), 2*time.Minute)
	if err != nil {
		return fmt.Errorf("live ingest: %w", err)
	}
	live.Processed = int(m.Processed("pv") - base)
	live.Elapsed = done.Sub(liveStart)
	live.Rate = float64(live.Processed) / live.Elapsed.Seconds()
	res.Live = live
	res.Notes = append(res.Notes, fmt.Sprintf("When the query load ended sketchd was %.0f events behind the live publisher.", max(0, behind)))
	if res.Drain, res.DrainRequests, err = r.waitHTTPIdle(ctx); err != nil {
		return err
	}
	r.logf("   sketchd answered %d more requests for %s after the load tools exited", res.DrainRequests, res.Drain.Round(time.Millisecond))
	return nil
}
