package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/internal/ingest"
)

const (
	demoStreamName = "demo"
	demoSubject    = "demo.pageviews"
)

// demoStream is the stream --demo defines: page views by country and
// device with all four sketch kinds.
func demoStream() sketchd.Stream {
	s := sketchd.DefaultStream()
	s.Name = demoStreamName
	s.Subject = demoSubject
	s.Time = sketchd.TimeSpec{Field: "ts", Format: sketchd.TimeRFC3339}
	s.GroupBy = []string{"country", "device"}
	s.Granularity = sketchd.Duration(time.Minute)
	s.MaxOutOfOrderness = sketchd.Duration(5 * time.Second)
	s.AllowedLateness = sketchd.Duration(time.Minute)
	s.IdleTimeout = sketchd.Duration(10 * time.Second)
	s.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user_id"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url", TopK: 10},
		"latency": {Sketch: sketchd.KindTDigest, Field: "latency_ms"},
		"sample":  {Sketch: sketchd.KindReservoir, Size: 16},
	}
	s.Normalize()
	return s
}

// runDemo publishes synthetic page views (1% too late, 0.5% invalid) at
// rate events per second until ctx is done.
func runDemo(ctx context.Context, conn *ingest.ConnState, rate int, log *slog.Logger) {
	g := gen.New(gen.Options{Seed: uint64(time.Now().UnixNano()), LateFraction: 0.01, InvalidFraction: 0.005})
	const tick = 20 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	perTick := float64(rate) * tick.Seconds()
	owed := 0.0
	for {
		select {
		case <-ctx.Done():
			all, invalid, late := g.Counts()
			log.Info("demo stopped", "published", all, "invalid", invalid, "late", late)
			return
		case now := <-t.C:
			owed += perTick
			for ; owed >= 1; owed-- {
				b, _ := g.Next(now)
				if err := conn.Current().Publish(demoSubject, b); err != nil {
					log.Warn("demo publish", "err", err)
					return
				}
			}
		}
	}
}
