package publish

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd/internal/gen"
)

func runServer(t testing.TB) *nats.Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestRunCoreBackfillWithTruth(t *testing.T) {
	nc := runServer(t)
	sub, err := nc.SubscribeSync("t.core")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	o := Options{Subject: "t.core", Count: 3000, From: from, Step: time.Second, Track: time.Minute,
		Gen: gen.Options{Seed: 9, InvalidFraction: 0.02, LateFraction: 0.02}}
	res, err := Run(context.Background(), nc, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 3000 || res.Invalid == 0 || res.Late == 0 || res.Truth == nil {
		t.Fatalf("result %+v", res)
	}
	if !res.First.Equal(from) || !res.Last.Equal(from.Add(2999*time.Second)) {
		t.Errorf("event times %v..%v, want %v..%v", res.First, res.Last, from, from.Add(2999*time.Second))
	}
	// The same seed regenerates the same events: what arrived is exactly
	// what the generator made, in order.
	g := gen.New(o.Gen)
	var bytesGot uint64
	for i := range 3000 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		want, _ := g.Next(from.Add(time.Duration(i) * time.Second))
		if !bytes.Equal(m.Data, want) {
			t.Fatalf("message %d: %s, want %s", i, m.Data, want)
		}
		bytesGot += uint64(len(m.Data))
	}
	if bytesGot != res.Bytes {
		t.Errorf("bytes %d, result says %d", bytesGot, res.Bytes)
	}
	var inTruth uint64
	for _, p := range res.Truth.Panes {
		inTruth += p.Events
	}
	if want := res.Published - res.Invalid - res.Late; inTruth != want {
		t.Errorf("truth holds %d events, want %d (published %d - invalid %d - late %d)",
			inTruth, want, res.Published, res.Invalid, res.Late)
	}
	if n := len(res.Truth.Panes); n < 50 {
		t.Errorf("a 50-minute backfill fills %d panes", n)
	}
}

func TestRunJetStreamPoolRate(t *testing.T) {
	nc := runServer(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.js"}})
	if err != nil {
		t.Fatal(err)
	}
	// 400 events at 4000/s take about 100 ms; the bound is the count.
	res, err := Run(ctx, nc, Options{Subject: "t.js", JetStream: true, Count: 400, Rate: 4000, Pool: 50,
		Gen: gen.Options{Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 400 || info.State.Msgs != 400 {
		t.Fatalf("published %d, stream holds %d; want 400", res.Published, info.State.Msgs)
	}
	if res.Elapsed < 50*time.Millisecond {
		t.Errorf("400 events at 4000/s took %v: not paced", res.Elapsed)
	}
}

func TestRunBounds(t *testing.T) {
	nc := runServer(t)
	if _, err := Run(context.Background(), nc, Options{Subject: "x"}); !errors.Is(err, ErrNoBound) {
		t.Errorf("no count, no duration: err %v, want ErrNoBound", err)
	}
	// A duration bounds an unbounded count; a canceled context stops it too.
	res, err := Run(context.Background(), nc, Options{Subject: "x", Duration: 50 * time.Millisecond, Rate: 1000, Pool: 10})
	if err != nil || res.Published == 0 || res.Published > 100 {
		t.Errorf("50ms at 1000/s: published %d, err %v", res.Published, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err = Run(ctx, nc, Options{Subject: "x", Count: 1_000_000})
	if err != nil || res.Published > 256 {
		t.Errorf("canceled: published %d, err %v", res.Published, err)
	}
}
