package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/loadtest/publish"
)

// TierCost is what two rollup tiers cost ingestion (issue #14's target:
// at most 10% of the ingest rate, against the same run without tiers).
// The same JetStream backlog, Events generated page views spread evenly
// over Span of event time (the accuracy backfill's density: a few events
// a key and pane, so that panes turn final while it is read and the
// tiers' builder works, per final pane: its worst case here), is ingested
// by eight streams created one after the other over their own pre-filled
// copy of it, in two rounds of four: without tiers, with pv's two tiers
// (1h for 90 days, 1d for 3 years), with them again, without them again
// (A B B A, so that a drift over the phase weighs on both kinds alike; two
// rounds, as two runs of one kind differed by up to 18% in one phase).
// A round's four copies are published before its first run. Each stream is
// deleted after its run, and each run starts once the store is at rest
// (waitCompactions), so that every run finds the store as the first did.
//
// At the live stream's density (LiveRate events/s, some 2,000 a key and
// 1-minute pane) the builder has about 500 times less to do per event;
// a backlog of live events would need hours of event time (millions of
// events) before a 1-hour tier pane is final, so it is not measured here.
type TierCost struct {
	Events int           `json:"events"`
	Span   time.Duration `json:"span"`
	Runs   []TierRun     `json:"runs"`
}

// TierRun is one stream of the TierCost phase.
type TierRun struct {
	Stream string `json:"stream"`
	Tiers  int    `json:"tiers"`
	// Elapsed is from creating the stream to its last event processed,
	// Rate the events processed per second over it: the ingest rate.
	Elapsed time.Duration `json:"elapsed"`
	Rate    float64       `json:"rate"`
	// Done is from creating the stream until every event was committed
	// (acked) and, with tiers, the tiers were built up to what the last
	// commit made final; CPU is sketchd's CPU seconds over it, so the
	// builder's work after the last event counts.
	Done time.Duration `json:"done"`
	CPU  float64       `json:"cpu"`
	// Deferred is how many of the builder's passes waited for the backlog
	// (sketchd_rollup_passes_deferred_total of the stream).
	Deferred float64 `json:"deferred,omitempty"`
}

// TierCostGoal is the least ingest rate with two tiers, as a share of the
// rate without.
const TierCostGoal = 0.90

// tierCostRounds are the phase's streams, in the order they run.
var tierCostRounds = [][]struct {
	name  string
	tiers bool
}{
	{{"tiers0a", false}, {"tiers2b", true}, {"tiers2c", true}, {"tiers0d", false}},
	{{"tiers0e", false}, {"tiers2f", true}, {"tiers2g", true}, {"tiers0h", false}},
}

// tierCost runs the TierCost phase.
func (r *runner) tierCost(ctx context.Context) (*TierCost, error) {
	tc := &TierCost{Events: r.c.JSN, Span: r.c.BackSpan}
	js, err := jetstream.New(r.nc)
	if err != nil {
		return nil, err
	}
	for _, round := range tierCostRounds {
		for _, s := range round {
			if err := r.prefillTierStream(ctx, js, s.name, tc.Events, tc.Span); err != nil {
				return nil, err
			}
		}
		for _, s := range round {
			run, err := r.tierRun(ctx, s.name, s.tiers, tc.Events)
			if err != nil {
				return nil, err
			}
			r.logf("   %s: %.0f events/s, done in %s, %.2f CPU s, %.0f builder passes deferred", s.name, run.Rate, run.Done.Round(time.Millisecond), run.CPU, run.Deferred)
			tc.Runs = append(tc.Runs, run)
			if err := r.deleteTierStream(ctx, js, s.name); err != nil {
				return tc, err
			}
		}
	}
	// The last deletion's compactions are this phase's, not the next one's.
	return tc, r.waitCompactions(ctx)
}

// deleteTierStream deletes a run's stream, and its JetStream stream with it
// (the runner created it, so sketchd keeps it: it deletes only its
// consumer): the next run, and the later phases, find the store, the NATS
// server and the disk as before.
func (r *runner) deleteTierStream(ctx context.Context, js jetstream.JetStream, name string) error {
	if body, code, err := r.api.do(ctx, "DELETE", "/v1/streams/"+name, nil); err != nil || code != 204 {
		return fmt.Errorf("delete stream %s: %d %s: %v", name, code, body, err)
	}
	if err := js.DeleteStream(ctx, "SKETCHD_"+strings.ToUpper(name)); err != nil {
		return fmt.Errorf("delete JetStream stream of %s: %w", name, err)
	}
	return nil
}

// tierCount is the number of rollup tiers of a run with tiers or not.
func tierCount(tiers bool) int {
	if tiers {
		return 2
	}
	return 0
}

// prefillTierStream creates the JetStream stream sketchd's stream name
// reads and publishes the backlog into it: n events over span of event
// time, ending 2 minutes ago (the same events for every stream of a set:
// the same seed and start).
func (r *runner) prefillTierStream(ctx context.Context, js jetstream.JetStream, name string, n int, span time.Duration) error {
	subject := "bench." + name
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SKETCHD_" + strings.ToUpper(name), Subjects: []string{subject},
		Storage: jetstream.FileStorage, MaxAge: 24 * time.Hour, Duplicates: 2 * time.Minute}); err != nil {
		return fmt.Errorf("create JetStream stream for %s: %w", name, err)
	}
	from := time.Now().Add(-span - 2*time.Minute).Truncate(time.Minute)
	_, err := publish.Run(ctx, r.nc, publish.Options{Subject: subject, JetStream: true, Count: n, From: from,
		Step: span / time.Duration(n), Gen: gen.Options{Seed: r.c.Seed + 3}})
	return err
}

// tierRun creates one stream over its pre-filled backlog and times it.
func (r *runner) tierRun(ctx context.Context, name string, tiers bool, n int) (TierRun, error) {
	run := TierRun{Stream: name, Tiers: tierCount(tiers)}
	spec := tierStreamJSON(name, tiers)
	if err := r.waitCompactions(ctx); err != nil {
		return run, err
	}
	m, err := r.api.metrics(ctx)
	if err != nil {
		return run, err
	}
	cpu0 := m.Sum("process_cpu_seconds_total")
	start := time.Now()
	body, code, err := r.api.do(ctx, "POST", "/v1/streams", []byte(spec))
	if err != nil {
		return run, err
	}
	if code != 201 {
		return run, fmt.Errorf("create stream %s: %d: %s", name, code, body)
	}
	done, _, err := r.waitProcessed(ctx, name, 0, n, 5*time.Minute)
	if err != nil {
		return run, err
	}
	run.Elapsed = done.Sub(start)
	run.Rate = float64(n) / run.Elapsed.Seconds()
	if err := r.waitAcked(ctx, name, "SKETCHD_"+strings.ToUpper(name)); err != nil {
		return run, err
	}
	if tiers {
		if err := r.waitBuilt(ctx, name); err != nil {
			return run, err
		}
	}
	run.Done = time.Since(start)
	if m, err = r.api.metrics(ctx); err != nil {
		return run, err
	}
	run.CPU = m.Sum("process_cpu_seconds_total") - cpu0
	run.Deferred = m.Sum("sketchd_rollup_passes_deferred_total", "stream", name)
	return run, nil
}

// tierStreamJSON is the four-aggregate stream of the JetStream ingest
// phase (jsStreamJSON) reading bench.<name>, with pv's retention, and
// with pv's two rollup tiers when tiers is set.
func tierStreamJSON(name string, tiers bool) string {
	rollups := ""
	if tiers {
		rollups = `, "rollups": [{"granularity": "1h", "retention": "90d"}, {"granularity": "1d", "retention": "1095d"}]`
	}
	return fmt.Sprintf(`{"name": %q, "subject": "bench.%s", "jetstream": true,
 "time": {"field": "ts", "format": "rfc3339"}, "group_by": ["country", "device"], "granularity": "1m",
 "max_out_of_orderness": "10s", "allowed_lateness": "1m", "idle_timeout": "30s", "late": "dead_letter",
 "aggregates": {"users": {"sketch": "hll", "field": "user_id"}, "urls": {"sketch": "cms", "field": "url"},
   "latency": {"sketch": "tdigest", "field": "latency_ms"}, "sample": {"sketch": "reservoir"}}, "retention": "32d"%s}`, name, name, rollups)
}

// waitCompactions waits until no Badger compaction has run for a second
// (sketchd_store_compaction_tables 0 in scrapes a second apart), up to a
// minute, so that each run starts on a store at rest: the previous
// phase's or run's commits set off compactions that would otherwise weigh
// on the next run alone.
func (r *runner) waitCompactions(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	quiet := 0
	for quiet < 2 && time.Now().Before(deadline) {
		m, err := r.api.metrics(ctx)
		if err != nil {
			return err
		}
		if m.Sum("sketchd_store_compaction_tables") == 0 {
			quiet++
		} else {
			quiet = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

// waitBuilt waits until every rollup tier of stream is built up to what
// its source panes' last commit made final (built_to ≥ ready_to).
func (r *runner) waitBuilt(ctx context.Context, stream string) error {
	rollups, built, err := r.waitRollups(ctx, stream, 2*time.Minute, func(t TierStatus) bool {
		return !t.ReadyTo.IsZero() && !t.BuiltTo.Before(t.ReadyTo)
	})
	if err == nil && !built {
		err = fmt.Errorf("stream %s: rollup tiers not built within 2 minutes: %+v", stream, rollups)
	}
	return err
}

// means returns the mean ingest rate and CPU seconds per event of the
// runs with and without tiers.
func (tc *TierCost) means() (rate0, rate2, cpu0, cpu2 float64) {
	var n0, n2 float64
	for _, run := range tc.Runs {
		perEvent := run.CPU / float64(tc.Events)
		if run.Tiers == 0 {
			rate0, cpu0, n0 = rate0+run.Rate, cpu0+perEvent, n0+1
		} else {
			rate2, cpu2, n2 = rate2+run.Rate, cpu2+perEvent, n2+1
		}
	}
	return safeDiv(rate0, n0), safeDiv(rate2, n2), safeDiv(cpu0, n0), safeDiv(cpu2, n2)
}

// target is the TierCost goal: the mean ingest rate with two tiers at
// least TierCostGoal of the mean without.
func (tc *TierCost) target() Target {
	rate0, rate2, cpu0, cpu2 := tc.means()
	q := safeDiv(rate2, rate0)
	return Target{"ingest cost of two rollup tiers", fmt.Sprintf("ingest rate with tiers ≥ %.0f%% of the rate without (the same backlog, same run; the backfill's density)", 100*TierCostGoal),
		fmt.Sprintf("%s / %s = %.0f%% (CPU per event, tiers built: %.1f / %.1f µs = %.0f%%)", rate(rate2), rate(rate0), 100*q,
			1e6*cpu2, 1e6*cpu0, 100*safeDiv(cpu2, cpu0)), rate0 > 0 && q >= TierCostGoal}
}

// renderTierCost writes the phase's section.
func renderTierCost(p func(string, ...any), tc *TierCost) {
	p("### Ingest cost of rollup tiers\n\n")
	p("The same JetStream backlog, %s page views spread evenly over %s of event time (the accuracy\n", thousands(int64(tc.Events)), tc.Span)
	p("backfill's density: a few events a key and pane, so panes turn final while it is read and the tiers'\n")
	p("builder works, per final pane: its worst case here), ingested by %d streams created one after the\n", len(tc.Runs))
	p("other over their own pre-filled copy of it, without tiers and with pv's two (1h for 90 days, 1d for\n")
	p("3 years), in rounds of A B B A; each stream deleted after its run, and each run started once no Badger\n")
	p("compaction had run for a second (up to a minute). The rate is the events over the time from creating\n")
	p("the stream to its last event processed; done is until every event was committed and, with tiers, the\n")
	p("tiers were built up to what the last commit made final; CPU is sketchd's over that time (a stream\n")
	p("catching up defers its tiers' builds, at most 10 passes in a row: their work comes after). At the live\n")
	p("stream's density (some 2,000 events a key and pane) the builder has about 500 times less to do per\n")
	p("event; a live backlog would need hours of event time before a 1-hour tier pane is final, so it is not\n")
	p("measured here.\n\n")
	p("| stream | tiers | ingest rate | processed in | done in | CPU | CPU per event | builder passes deferred |\n|---|---|---|---|---|---|---|---|\n")
	for _, run := range tc.Runs {
		p("| %s | %d | %s | %s | %s | %.2f s | %.1f µs | %.0f |\n", run.Stream, run.Tiers, rate(run.Rate), run.Elapsed.Round(time.Millisecond),
			run.Done.Round(time.Millisecond), run.CPU, 1e6*run.CPU/float64(tc.Events), run.Deferred)
	}
	rate0, rate2, cpu0, cpu2 := tc.means()
	p("\nMeans: %s without tiers, %s with two (%.0f%%); CPU per event %.1f against %.1f µs (%.0f%%).\n",
		rate(rate0), rate(rate2), 100*safeDiv(rate2, rate0), 1e6*cpu2, 1e6*cpu0, 100*safeDiv(cpu2, cpu0))
	p("`go test ./internal/ingest -run '^$' -bench IngestTiers` measures the same in process, also with\n")
	p("about 150 events a key and pane.\n\n")
}
