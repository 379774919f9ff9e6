package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/loadtest/publish"
)

// eventSize returns the average size of the generated events.
func eventSize(seed uint64) int {
	g := gen.New(gen.Options{Seed: seed})
	now := time.Now()
	total := 0
	const n = 10_000
	for range n {
		b, _ := g.Next(now)
		total += len(b)
	}
	return (total + n/2) / n
}

// waitProcessed polls sketchd's metrics until stream has processed n
// events more than base (counting core drops as processed), and returns the
// time it saw the last of them and the final metrics. It gives up when
// nothing moves for 20s or after timeout.
func (r *runner) waitProcessed(ctx context.Context, stream string, base float64, n int, timeout time.Duration) (time.Time, Metrics, error) {
	deadline := time.Now().Add(timeout)
	last, lastMove := -1.0, time.Now()
	for {
		m, err := r.api.metrics(ctx)
		if err != nil {
			return time.Time{}, nil, err
		}
		got := m.Processed(stream) + m.Sum("sketchd_messages_dropped_total", "stream", stream) - base
		now := time.Now()
		if got >= float64(n) {
			return now, m, nil
		}
		if got > last {
			last, lastMove = got, now
		}
		switch {
		case now.Sub(lastMove) > 20*time.Second:
			return now, m, fmt.Errorf("stream %s: stuck at %.0f of %d events for 20s", stream, got, n)
		case now.After(deadline):
			return now, m, fmt.Errorf("stream %s: %.0f of %d events after %s", stream, got, n, timeout)
		}
		select {
		case <-ctx.Done():
			return now, m, ctx.Err()
		case <-r.exited:
			return now, m, errors.New("sketchd exited (see its log)")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitAcked waits until sketchd has acked every message of the
// JetStream stream jsStream: it acks only after the state holding them is
// committed, so queries then see all of them.
func (r *runner) waitAcked(ctx context.Context, stream, jsStream string) error {
	js, err := jetstream.New(r.nc)
	if err != nil {
		return err
	}
	s, err := js.Stream(ctx, jsStream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	last := float64(info.State.LastSeq)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		// sketchd's only consumer of the stream.
		lister := s.ListConsumers(ctx)
		acked := false
		for ci := range lister.Info() {
			acked = acked || float64(ci.AckFloor.Stream) >= last
		}
		if err := lister.Err(); err != nil {
			return err
		}
		if acked {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("stream %s: sequence %.0f not acked (committed) within 60s", stream, last)
}

func (r *runner) ingestCore(ctx context.Context) (Ingest, error) {
	in := Ingest{Stream: "core", Events: r.c.CoreN}
	m, err := r.api.metrics(ctx)
	if err != nil {
		return in, err
	}
	base := m.Processed("core") + m.Sum("sketchd_messages_dropped_total", "stream", "core")
	baseApplied, baseDropped := m.Applied("core"), m.Sum("sketchd_messages_dropped_total", "stream", "core")
	in.Commands = []string{fmt.Sprintf("go run ./loadtest/cmd/loadgen --nats-url %s --subject bench.core --count %d   # flat out; the runner publishes a pre-generated pool in process",
		r.natsURL, r.c.CoreN)}
	start := time.Now()
	pub, err := publish.Run(ctx, r.nc, publish.Options{Subject: "bench.core", Count: r.c.CoreN, Pool: min(r.c.CoreN, 100_000),
		Gen: gen.Options{Seed: r.c.Seed}})
	if err != nil {
		return in, err
	}
	in.PubRate = pub.Rate()
	done, m, err := r.waitProcessed(ctx, "core", base, r.c.CoreN, 5*time.Minute)
	if err != nil {
		return in, err
	}
	in.Elapsed = done.Sub(start)
	in.Applied = int(m.Applied("core") - baseApplied)
	in.Dropped = int(m.Sum("sketchd_messages_dropped_total", "stream", "core") - baseDropped)
	in.Processed = r.c.CoreN - in.Dropped
	in.Rate = float64(in.Processed) / in.Elapsed.Seconds()
	return in, nil
}

func (r *runner) ingestJS(ctx context.Context) (Ingest, error) {
	in := Ingest{Stream: "js", Events: r.c.JSN}
	js, err := jetstream.New(r.nc)
	if err != nil {
		return in, err
	}
	// The JetStream stream sketchd would create, filled before sketchd
	// reads it: what is timed is consumption, as with nats bench js consume.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SKETCHD_JS", Subjects: []string{"bench.js"},
		Storage: jetstream.FileStorage, MaxAge: 24 * time.Hour, Duplicates: 2 * time.Minute}); err != nil {
		return in, err
	}
	pub, err := publish.Run(ctx, r.nc, publish.Options{Subject: "bench.js", JetStream: true, Count: r.c.JSN,
		Pool: min(r.c.JSN, 100_000), Gen: gen.Options{Seed: r.c.Seed + 1}})
	if err != nil {
		return in, err
	}
	in.PubRate = pub.Rate()
	in.Commands = []string{
		fmt.Sprintf("go run ./loadtest/cmd/loadgen --nats-url %s --subject bench.js --jetstream --count %d   # into the stream SKETCHD_JS, before sketchd reads it", r.natsURL, r.c.JSN),
		fmt.Sprintf("curl -X POST %s/v1/streams -H 'Content-Type: application/json' -d @js-stream.json   # then time until all are processed", r.base),
	}
	start := time.Now()
	body, code, err := r.api.do(ctx, "POST", "/v1/streams", []byte(jsStreamJSON))
	if err != nil {
		return in, err
	}
	if code != 201 {
		return in, fmt.Errorf("create stream js: %d: %s", code, body)
	}
	done, m, err := r.waitProcessed(ctx, "js", 0, r.c.JSN, 5*time.Minute)
	if err != nil {
		return in, err
	}
	in.Elapsed = done.Sub(start)
	in.Applied = int(m.Applied("js"))
	in.Processed = int(m.Processed("js"))
	in.Rate = float64(in.Processed) / in.Elapsed.Seconds()
	return in, nil
}

// backfill publishes the accuracy data set to pv over BackSpan of event
// time, ending 2 minutes ago, with truth; it measures the ingest rate with
// publishing and consuming at once, checks sketchd's accounting, and waits
// until the last event is committed.
func (r *runner) backfill(ctx context.Context) (*gen.Truth, error) {
	res := r.res
	in := Ingest{Stream: "pv", Events: r.c.Backfill}
	m, err := r.api.metrics(ctx)
	if err != nil {
		return nil, err
	}
	base := m.Processed("pv")
	// What pv counted before (the 30-day backfill): subtracted below.
	counters := func(m Metrics) Accounting {
		return Accounting{
			SkInvalid:     uint64(m.Sum("sketchd_invalid_events_total", "stream", "pv")),
			SkTooLate:     uint64(m.Sum("sketchd_events_total", "stream", "pv", "outcome", "too_late")),
			SkApplied:     uint64(m.Applied("pv")),
			SkLateApplied: uint64(m.Sum("sketchd_events_total", "stream", "pv", "outcome", "late")),
			SkFuture:      uint64(m.Sum("sketchd_events_total", "stream", "pv", "outcome", "future")),
		}
	}
	before := counters(m)
	from := time.Now().Add(-r.c.BackSpan - 2*time.Minute)
	o := publish.Options{Subject: "bench.pv", JetStream: true, Count: r.c.Backfill, From: from,
		Step: r.c.BackSpan / time.Duration(r.c.Backfill), Track: time.Minute,
		Gen: gen.Options{Seed: r.c.Seed + 2, LateFraction: 0.01, InvalidFraction: 0.005}}
	in.Commands = []string{fmt.Sprintf("go run ./loadtest/cmd/loadgen --nats-url %s --subject bench.pv --jetstream --count %d --backfill %s --late-fraction 0.01 --invalid-fraction 0.005 --seed %d --truth truth.jsonl",
		r.natsURL, r.c.Backfill, r.c.BackSpan, o.Gen.Seed)}
	start := time.Now()
	pub, err := publish.Run(ctx, r.nc, o)
	if err != nil {
		return nil, err
	}
	in.PubRate = pub.Rate()
	done, m, err := r.waitProcessed(ctx, "pv", base, r.c.Backfill, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	in.Elapsed = done.Sub(start)
	after := counters(m)
	in.Applied = int(after.SkApplied - before.SkApplied)
	in.Processed = int(m.Processed("pv") - base)
	in.Rate = float64(in.Processed) / in.Elapsed.Seconds()
	res.Backfill = in
	r.logf("   backfill: published %.0f/s, processed %.0f/s", in.PubRate, in.Rate)

	truthEvents := uint64(0)
	for _, p := range pub.Truth.Panes {
		truthEvents += p.Events
	}
	res.PaneKeys = len(pub.Truth.Panes)
	res.Accounting = Accounting{
		Published: pub.Published, Invalid: pub.Invalid, Late: pub.Late, Valid: pub.Published - pub.Invalid,
		SkInvalid:     after.SkInvalid - before.SkInvalid,
		SkTooLate:     after.SkTooLate - before.SkTooLate,
		SkApplied:     after.SkApplied - before.SkApplied,
		SkLateApplied: after.SkLateApplied - before.SkLateApplied,
		SkFuture:      after.SkFuture - before.SkFuture,
		TruthEvent:    truthEvents,
	}
	if err := r.waitAcked(ctx, "pv", "SKETCHD_PV"); err != nil {
		return nil, err
	}
	res.AccuracyFrom = pub.First.Truncate(time.Hour).Add(time.Hour)
	res.AccuracyTo = pub.Last.Truncate(time.Hour)
	if hours := res.AccuracyTo.Sub(res.AccuracyFrom); hours > 24*time.Hour {
		res.AccuracyFrom = res.AccuracyTo.Add(-24 * time.Hour)
	}
	return pub.Truth, nil
}
