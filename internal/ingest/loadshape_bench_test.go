package ingest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/internal/panetest"
)

// BenchmarkIngestCoreLoadShape is the load runner's core-NATS ingest phase
// (docs/benchmarks.md, section 1-2) in process: the generator's page views
// (loadtest's pool of 100,000 events dated now, ~116 bytes of JSON, one per
// message) published flat out to an in-process nats-server, consumed by
// sketchd's stream of the runner (rfc3339 time, keyed by country and
// device, 1-minute panes, hll, cms, tdigest and reservoir at their
// defaults). The publisher, the server and sketchd share the cores, as in
// the runner. Take a profile with
//
//	nice -n 19 go test ./internal/ingest -run '^$' -bench IngestCoreLoadShape -benchtime 400000x -cpuprofile cpu.out
func BenchmarkIngestCoreLoadShape(b *testing.B) {
	ns := runNATS(b)
	nc, pub := connect(b, ns.ClientURL()), connect(b, ns.ClientURL())
	db := openStore(b, b.TempDir())
	spec := panetest.LoadShape("core", false)
	// No pending limit: a drop would end the run early and flatter it.
	m := newManager(b, nc, db, Options{FlushInterval: time.Second, CorePendingMsgs: -1, CorePendingBytes: -1})
	ctx := context.Background()
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	payloads := loadShapePool(min(b.N, 100_000))
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	for i := range b.N {
		if err := pub.Publish(spec.Subject, payloads[i%len(payloads)]); err != nil {
			b.Fatal(err)
		}
	}
	waitApplied(b, m, spec.Name, b.N)
	reportRate(b, b.N, start)
	// The machine is shared: the CPU the process spent per event (the
	// publisher and nats-server included) varies less than the rate.
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
}

// processCPU is the CPU time (user + system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngestJetStreamLoadShape is the runner's JetStream phase in
// process: the same pool in a JetStream stream filled before the timer
// starts; timed is sketchd consuming it (decode, sketches, commits, acks).
//
//	nice -n 19 go test ./internal/ingest -run '^$' -bench IngestJetStreamLoadShape -benchtime 400000x
func BenchmarkIngestJetStreamLoadShape(b *testing.B) {
	ns := runNATS(b)
	nc := connect(b, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := openStore(b, b.TempDir())
	spec := panetest.LoadShape("js", true)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: spec.JetStreamStream, Subjects: []string{spec.Subject}}); err != nil {
		b.Fatal(err)
	}
	publishPayloads(b, js, spec.Subject, cycle(loadShapePool(min(b.N, 100_000)), b.N))
	m := newManager(b, nc, db, Options{FlushInterval: time.Second})
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	waitApplied(b, m, spec.Name, b.N)
	reportRate(b, b.N, start)
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
}

// loadShapePool is loadtest/publish's pool: n events generated at one
// instant (the runner's seed, 1).
func loadShapePool(n int) [][]byte {
	g := gen.New(gen.Options{Seed: 1})
	now := time.Now()
	pool := make([][]byte, n)
	for i := range pool {
		b, _ := g.Next(now)
		pool[i] = append([]byte(nil), b...)
	}
	return pool
}
