package ingest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// The ingest benchmarks publish b.N events (one per message, ~120 bytes)
// to an in-process nats-server and measure the time until they are all
// consumed: by a bare subscriber that does nothing (the transport's
// ceiling), and by sketchd (decode, route, four sketches, commits). Compare
// events/s within one run:
//
//	go test ./internal/ingest -run '^$' -bench Ingest -benchtime 100000x
//
// (A run with -benchtime 200000x used to hang now and then, in the first
// round (b.N = 1) of the bare core subscriber: the message was published
// before the server had registered the subscription, so it was lost and
// the benchmark waited for it forever; benchmarks get no -timeout. The
// subscription is now flushed first, and every wait has a deadline.)

// maxBenchPayloads bounds the distinct payloads a benchmark generates.
// They are in time order; a longer run cycles through them again, and the
// repeats are too late for sketchd (dead-lettered): up to 2M events the
// benchmarks measure on-time events only.
const maxBenchPayloads = 2_000_000

func benchPayloads(n int) [][]byte {
	evs := genEvents(7, n)
	out := make([][]byte, n)
	for i, e := range evs {
		out[i] = e.json()
	}
	return out
}

func reportRate(b *testing.B, n int, start time.Time) {
	el := time.Since(start)
	b.ReportMetric(float64(n)/el.Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkIngestCoreBareSubscriber(b *testing.B) {
	ns := runNATS(b)
	nc, pub := connect(b, ns.ClientURL()), connect(b, ns.ClientURL())
	payloads := benchPayloads(min(b.N, maxBenchPayloads))
	var got atomic.Int64
	done := make(chan struct{})
	sub, err := nc.Subscribe("bench.core", func(*nats.Msg) {
		if got.Add(1) == int64(b.N) {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	// The server must know the subscription before anything is published
	// (core NATS drops messages nobody subscribes to).
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	for i := range b.N {
		if err := pub.Publish("bench.core", payloads[i%len(payloads)]); err != nil {
			b.Fatal(err)
		}
	}
	waitDone(b, done, func() string { return fmt.Sprintf("received %d of %d", got.Load(), b.N) })
	reportRate(b, b.N, start)
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
}

// waitDone waits for done, failing the benchmark after a deadline (the
// testing package gives benchmarks no -timeout).
func waitDone(b *testing.B, done <-chan struct{}, state func() string) {
	b.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("timed out: %s", state())
	}
}

func BenchmarkIngestCoreSketchd(b *testing.B) {
	ns := runNATS(b)
	nc, pub := connect(b, ns.ClientURL()), connect(b, ns.ClientURL())
	db := openStore(b, b.TempDir())
	spec := pageviews("benchcore", false)
	m := newManager(b, nc, db, Options{FlushInterval: time.Second, CorePendingMsgs: -1, CorePendingBytes: -1})
	ctx := context.Background()
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	payloads := benchPayloads(min(b.N, maxBenchPayloads))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := pub.Publish(spec.Subject, payloads[i%len(payloads)]); err != nil {
			b.Fatal(err)
		}
	}
	waitApplied(b, m, spec.Name, b.N)
	reportRate(b, b.N, start)
}

func BenchmarkIngestJetStreamBareConsumer(b *testing.B) {
	ns := runNATS(b)
	nc := connect(b, ns.ClientURL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.js"}})
	if err != nil {
		b.Fatal(err)
	}
	publishJS(b, js, "bench.js", b.N)
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bare", AckPolicy: jetstream.AckAllPolicy, MaxAckPending: 1_000_000})
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	cc, err := c.Consume(func(m jetstream.Msg) {
		if n := got.Add(1); n%1000 == 0 || n == int64(b.N) {
			_ = m.Ack()
			if n == int64(b.N) {
				close(done)
			}
		}
	}, jetstream.PullMaxMessages(4096))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	waitDone(b, done, func() string { return fmt.Sprintf("received %d of %d", got.Load(), b.N) })
	reportRate(b, b.N, start)
}

func BenchmarkIngestJetStreamSketchd(b *testing.B) {
	ns := runNATS(b)
	nc := connect(b, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := openStore(b, b.TempDir())
	spec := pageviews("benchjs", true)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: spec.JetStreamStream, Subjects: []string{spec.Subject}}); err != nil {
		b.Fatal(err)
	}
	publishJS(b, js, spec.Subject, b.N)
	m := newManager(b, nc, db, Options{FlushInterval: time.Second})
	b.ResetTimer()
	start := time.Now()
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()
	waitApplied(b, m, spec.Name, b.N)
	reportRate(b, b.N, start)
}

// publishJS fills a JetStream stream before the timer starts.
func publishJS(b *testing.B, js jetstream.JetStream, subject string, n int) {
	b.Helper()
	publishPayloads(b, js, subject, cycle(benchPayloads(min(n, maxBenchPayloads)), n))
}

// cycle returns n payloads taken from pool in turn.
func cycle(pool [][]byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = pool[i%len(pool)]
	}
	return out
}

// waitApplied waits until n events are counted in any class (the
// benchmarks publish valid events only) or dropped, and fails on a drop:
// a dropped message is never applied.
func waitApplied(b *testing.B, m *Manager, name string, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := m.Get(context.Background(), name)
		if err != nil {
			b.Fatal(err)
		}
		c := st.Counters
		if c.OnTime+c.Late+c.TooLate+c.Future+st.Dropped >= uint64(n) {
			if st.Dropped > 0 {
				b.Fatalf("%d of %d messages dropped", st.Dropped, n)
			}
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %+v of %d", c, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
