// Command loadgen publishes synthetic page-view events (loadtest/gen) to
// NATS, core or JetStream, at a fixed rate or flat out, for a duration or a
// count, and can write the exact truth per pane and key to a file.
//
//	go run ./loadtest/cmd/loadgen --subject events.pageviews --rate 5000 --duration 1m
//	go run ./loadtest/cmd/loadgen --subject bench.pv --jetstream --count 1000000 \
//	    --backfill 24h --late-fraction 0.01 --invalid-fraction 0.005 --truth truth.jsonl
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/loadtest/publish"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	d := gen.Defaults()
	o := publish.Options{Gen: d}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server")
	fs.StringVar(&o.Subject, "subject", "events.pageviews", "subject to publish to")
	fs.BoolVar(&o.JetStream, "jetstream", false, "publish to JetStream (acked; a stream must capture the subject)")
	fs.Float64Var(&o.Rate, "rate", 0, "events per second (0: flat out)")
	fs.IntVar(&o.Count, "count", 0, "stop after this many events")
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long (count or duration required)")
	backfill := fs.Duration("backfill", 0, "date the events from now-backfill to now, evenly (needs --count), instead of the wall clock")
	truth := fs.String("truth", "", "write the exact truth per pane and key (JSON lines) to this file")
	fs.DurationVar(&o.Track, "granularity", time.Minute, "pane width of the truth (the stream's granularity)")
	fs.Uint64Var(&o.Gen.Seed, "seed", 1, "random seed (same seed, same events)")
	fs.IntVar(&o.Gen.Countries, "countries", d.Countries, "key cardinality: distinct countries (Zipf-skewed)")
	fs.IntVar(&o.Gen.Devices, "devices", d.Devices, "key cardinality: distinct devices (uniform)")
	fs.IntVar(&o.Gen.Users, "users", d.Users, "distinct user ids (Zipf-skewed)")
	fs.IntVar(&o.Gen.URLs, "urls", d.URLs, "item cardinality: distinct urls (Zipf-skewed)")
	fs.Float64Var(&o.Gen.Skew, "skew", d.Skew, "Zipf exponent (> 1)")
	fs.StringVar(&o.Gen.LatencyDist, "latency-dist", d.LatencyDist, "latency_ms distribution: lognormal, exponential or uniform")
	fs.Float64Var(&o.Gen.LatencyMu, "latency-mu", d.LatencyMu, "log of the latency scale (lognormal mu; exponential mean and uniform half-width are exp(mu))")
	fs.Float64Var(&o.Gen.LatencySigma, "latency-sigma", d.LatencySigma, "lognormal sigma")
	fs.DurationVar(&o.Gen.Jitter, "jitter", d.Jitter, "out-of-order jitter: event times up to this much before their generation time")
	fs.Float64Var(&o.Gen.LateFraction, "late-fraction", 0, "fraction of events dated --late-by in the past")
	fs.DurationVar(&o.Gen.LateBy, "late-by", d.LateBy, "how late the late events are")
	fs.Float64Var(&o.Gen.InvalidFraction, "invalid-fraction", 0, "fraction of malformed events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.Count <= 0 && o.Duration <= 0:
		return errors.New("set --count or --duration")
	case *backfill > 0 && o.Count <= 0:
		return errors.New("--backfill needs --count")
	case o.Gen.LatencyDist != "lognormal" && o.Gen.LatencyDist != "exponential" && o.Gen.LatencyDist != "uniform":
		return fmt.Errorf("--latency-dist %q: want lognormal, exponential or uniform", o.Gen.LatencyDist)
	}
	if *backfill > 0 {
		o.From = time.Now().Add(-*backfill)
		o.Step = *backfill / time.Duration(o.Count)
	}
	if *truth == "" {
		o.Track = 0
	}
	nc, err := nats.Connect(*url, nats.Name("sketchd-loadgen"))
	if err != nil {
		return fmt.Errorf("connect %s: %w", *url, err)
	}
	defer nc.Close()
	res, err := publish.Run(ctx, nc, o)
	fmt.Fprintf(stdout, "published %d events (%d invalid, %d late), %d bytes in %s: %.0f events/s\n",
		res.Published, res.Invalid, res.Late, res.Bytes, res.Elapsed.Round(time.Millisecond), res.Rate())
	if err != nil {
		return err
	}
	if *truth != "" {
		f, err := os.Create(*truth)
		if err != nil {
			return err
		}
		if err := res.Truth.WriteJSON(f); err != nil {
			_ = f.Close()
			return fmt.Errorf("truth: %w", err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "truth: %d panes×keys (%d late events left out) in %s\n", len(res.Truth.Panes), res.Truth.Late, *truth)
	}
	return nil
}
