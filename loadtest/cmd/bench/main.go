// Command bench is sketchd's benchmark runner. In one run it installs the
// tools it lacks (natscli, vegeta, k6), builds sketchd, starts it on
// loopback ports with a temporary data dir, and measures: the transport's
// ceiling (nats bench, core and JetStream), sketchd's sustained ingest rate
// for the four-aggregate stream (core and JetStream) and its ratio to the
// ceiling, query latency under vegeta and k6 at a fixed rate while events
// are ingested, the accuracy of the answers against the generator's exact
// truth, and RSS and disk per million events. It writes docs/benchmarks.md.
//
//	go run ./loadtest/cmd/bench            # full run, a few minutes
//	go run ./loadtest/cmd/bench --quick    # smaller counts, shorter loads
//
// Load only goes to loopback; every loop is bounded in count and time; every
// process it starts runs in its own process group and is killed on exit,
// error or signal.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sketchd/sketchd/internal/defaults"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Config is what a run measures and how much.
type Config struct {
	Quick   bool
	Out     string // report path; "" writes none
	Keep    bool   // keep the temp dir
	Install bool   // go install missing tools
	Strict  bool   // exit 1 when a target is missed
	SkipK6  bool
	// K6Requests has k6 write its per-request CSV at the query rate too
	// (--k6-requests): its phases then get latencies second by second, at
	// the cost of k6's CPU on the machine it measures.
	K6Requests bool `json:"k6_requests,omitempty"`
	// MemoryBox, when > 0, runs sketchd in a memory cgroup of this many
	// bytes below the runner's own (--memory-box): a small box, whose
	// limit sketchd's defaults take 3/4 of.
	MemoryBox int64 `json:"memory_box,omitempty"`
	CoreN     int   // events for the core ingest rate
	JSN       int   // events for the JetStream ingest rate
	CeilingN  int   // messages for nats bench
	Backfill  int   // events backfilled (with truth) over BackSpan
	BackSpan  time.Duration
	QueryRate int
	QueryDur  time.Duration
	LiveRate  int // events/s ingested while the query load runs
	// LongEvents are backfilled into pv over LongSpan before the BackSpan
	// of the accuracy backfill: the history the 30-day queries read.
	LongEvents int
	LongSpan   time.Duration
	// DashVUs users refresh the dashboard every 5 s for DashDur: three
	// minutes by default, so that the phase holds three clock moves and
	// three watermark moves, and the figures are those of a dashboard that
	// stays open, not mostly of its first minute (whose clock move no
	// ahead job can predict: Timeline.SplitFirstMinute).
	DashVUs int
	DashDur time.Duration
	Seed    uint64
}

func defaultConfig(quick bool) Config {
	c := Config{Quick: quick, Out: "docs/benchmarks.md", Install: true, Seed: 1,
		CoreN: 400_000, JSN: 400_000, CeilingN: 1_000_000, Backfill: 500_000, BackSpan: 25 * time.Hour,
		QueryRate: 1000, QueryDur: 30 * time.Second, LiveRate: 2_000,
		LongEvents: 200_000, LongSpan: 30 * 24 * time.Hour, DashVUs: 50, DashDur: 3 * time.Minute}
	if quick {
		c.CoreN, c.JSN, c.CeilingN, c.Backfill, c.LongEvents = 100_000, 100_000, 100_000, 100_000, 50_000
		c.QueryDur, c.DashDur = 8*time.Second, 15*time.Second
		c.Out = ""
	}
	return c
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "smaller counts and shorter loads (under 3 minutes once the tools are installed)")
	var o Config
	fs.StringVar(&o.Out, "out", "", "write the report here (default docs/benchmarks.md; with --quick none unless set)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temp dir (sketchd log, config, tool outputs)")
	noInstall := fs.Bool("no-install", false, "fail instead of go installing missing tools")
	fs.BoolVar(&o.Strict, "strict", false, "exit 1 when a target is missed (k6 thresholds, errors, ratio, accuracy)")
	fs.BoolVar(&o.SkipK6, "skip-k6", false, "skip k6 (it takes minutes to go install)")
	fs.BoolVar(&o.K6Requests, "k6-requests", false, "k6 writes its per-request CSV at the query rate too, for its timeline second by second (costs k6 CPU: for analysis, not targets)")
	resultsPath := fs.String("results", "", "also write the results as JSON to this file")
	render := fs.String("render", "", "do not run: render the report from a results JSON file (of --results) to --out")
	fs.IntVar(&o.CoreN, "core-events", 0, "events for the core ingest rate (default 400k, quick 100k)")
	fs.IntVar(&o.JSN, "js-events", 0, "events for the JetStream ingest rate (default 400k, quick 100k)")
	fs.IntVar(&o.CeilingN, "ceiling-msgs", 0, "messages per nats bench run (default 1M, quick 100k)")
	fs.IntVar(&o.Backfill, "backfill-events", 0, "events backfilled over 25h for the accuracy check (default 500k, quick 100k)")
	fs.IntVar(&o.QueryRate, "query-rate", 0, "requests per second of vegeta and k6 (default 1000)")
	fs.DurationVar(&o.QueryDur, "query-duration", 0, "duration of each load tool (default 30s, quick 8s)")
	fs.IntVar(&o.LiveRate, "live-rate", 0, "events per second ingested during the query load (default 2000, the demo's rate)")
	fs.IntVar(&o.LongEvents, "long-events", 0, "events backfilled over the 30 days before the accuracy backfill (default 200k, quick 50k)")
	fs.DurationVar(&o.DashDur, "dashboard-duration", 0, "duration of the dashboard scenario (default 3m, quick 15s)")
	box := fs.String("memory-box", "", "run sketchd in a memory cgroup with this limit (400MiB; Linux, needs the right to write the cgroup file system): a small box")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *render != "" {
		b, err := os.ReadFile(*render)
		if err != nil {
			return err
		}
		var res Results
		if err := json.Unmarshal(b, &res); err != nil {
			return fmt.Errorf("%s: %w", *render, err)
		}
		out := o.Out
		if out == "" {
			out = "docs/benchmarks.md"
		}
		return os.WriteFile(out, []byte(RenderMarkdown(&res)), 0o644)
	}
	c := defaultConfig(*quick)
	c.Keep, c.Strict, c.SkipK6, c.Install, c.K6Requests = o.Keep, o.Strict, o.SkipK6, !*noInstall, o.K6Requests
	if *box != "" {
		n, err := defaults.ParseBytes(*box)
		if err != nil {
			return fmt.Errorf("--memory-box: %w", err)
		}
		c.MemoryBox = n
	}
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	set(&c.CoreN, o.CoreN)
	set(&c.JSN, o.JSN)
	set(&c.CeilingN, o.CeilingN)
	set(&c.Backfill, o.Backfill)
	set(&c.QueryRate, o.QueryRate)
	set(&c.LiveRate, o.LiveRate)
	set(&c.LongEvents, o.LongEvents)
	if o.DashDur > 0 {
		c.DashDur = o.DashDur
	}
	if o.QueryDur > 0 {
		c.QueryDur = o.QueryDur
	}
	if o.Out != "" {
		c.Out = o.Out
	}
	// The whole run is bounded.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	r, err := newRunner(ctx, c, stdout, stderr)
	if err != nil {
		return err
	}
	defer r.close()
	res, err := r.runAll(ctx)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, summaryText(res))
	if *resultsPath != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*resultsPath, b, 0o644); err != nil {
			return err
		}
	}
	if c.Out != "" {
		if err := os.WriteFile(c.Out, []byte(RenderMarkdown(res)), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", c.Out)
	}
	if c.Strict {
		if missed := res.Missed(); len(missed) > 0 {
			return fmt.Errorf("targets missed: %v", missed)
		}
	}
	return nil
}
