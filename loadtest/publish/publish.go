// Package publish sends generated events (loadtest/gen) to NATS, core or
// JetStream, at a fixed rate or flat out, for a duration or a count, in
// wall-clock or backfilled event time, keeping the exact truth when asked.
package publish

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd/internal/gen"
)

// Options say what to publish, where and how fast.
type Options struct {
	Subject string
	// JetStream publishes with acks (asynchronously, at most MaxPending in
	// flight) to the stream that captures Subject; false is core NATS.
	JetStream bool
	// MaxPending bounds unacknowledged JetStream publishes. Default 4096.
	MaxPending int
	// Rate is events per second; 0 publishes flat out.
	Rate float64
	// Count stops after this many events; Duration after this long. At
	// least one must be set; whichever comes first ends the run.
	Count    int
	Duration time.Duration
	// From, when set, backfills: event i is generated at event time
	// From + i·Step instead of the wall clock (jitter and lateness apply on
	// top). Step defaults to 1ms.
	From time.Time
	Step time.Duration
	// Pool, when > 0, generates Pool events up front and publishes them in
	// a cycle, so that generation costs nothing during the run (their
	// times are those of generation; no truth). Use it to measure
	// consumers.
	Pool int
	// Gen shapes the events; Track > 0 keeps the truth per pane of that
	// width (not with Pool).
	Gen   gen.Options
	Track time.Duration
}

// Result is what a run published.
type Result struct {
	Published uint64 // messages sent (and acked, for JetStream)
	Invalid   uint64 // of which invalid (not counted with Pool)
	Late      uint64 // of which dated late (not counted with Pool)
	Bytes     uint64
	Elapsed   time.Duration
	// First and Last are the event times passed to the generator for the
	// first and the last event.
	First, Last time.Time
	Truth       *gen.Truth // nil unless Options.Track > 0
}

// Rate returns the events per second achieved.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Published) / r.Elapsed.Seconds()
}

// ErrNoBound is returned when neither Count nor Duration is set.
var ErrNoBound = errors.New("publish: set Count or Duration")

// Run publishes until ctx is done, Count events are sent or Duration has
// passed. For JetStream it waits (at most 30s) for the outstanding acks
// before returning.
func Run(ctx context.Context, nc *nats.Conn, o Options) (Result, error) {
	if o.Count <= 0 && o.Duration <= 0 {
		return Result{}, ErrNoBound
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 4096
	}
	if o.Step <= 0 {
		o.Step = time.Millisecond
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	g := gen.New(o.Gen)
	if o.Track > 0 && o.Pool <= 0 {
		g.Track(o.Track)
	}
	var pool [][]byte
	if o.Pool > 0 {
		now := time.Now()
		pool = make([][]byte, o.Pool)
		for i := range pool {
			b, _ := g.Next(now)
			pool[i] = append([]byte(nil), b...)
		}
	}

	var js jetstream.JetStream
	var pubErrs atomic.Uint64
	var firstErr atomic.Pointer[error]
	if o.JetStream {
		var err error
		js, err = jetstream.New(nc,
			jetstream.WithPublishAsyncMaxPending(o.MaxPending),
			jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
				pubErrs.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}))
		if err != nil {
			return Result{}, fmt.Errorf("publish: %w", err)
		}
	}

	var res Result
	start := time.Now()
	next := func(i int) []byte {
		if pool != nil {
			return pool[i%len(pool)]
		}
		now := time.Now()
		if !o.From.IsZero() {
			now = o.From.Add(time.Duration(i) * o.Step)
		}
		if i == 0 {
			res.First = now
		}
		res.Last = now
		b, _ := g.Next(now)
		return b
	}
	send := func(b []byte) error {
		res.Bytes += uint64(len(b))
		if js == nil {
			return nc.Publish(o.Subject, b)
		}
		// The async publisher keeps the message until it is acked.
		_, err := js.PublishAsync(o.Subject, append([]byte(nil), b...), jetstream.WithStallWait(30*time.Second))
		return err
	}
	var runErr error
	for i := 0; o.Count <= 0 || i < o.Count; i++ {
		if o.Rate > 0 {
			// Pace by the time elapsed, not by ticks, so that the rate does
			// not drift; sleep while more than a millisecond ahead.
			if ahead := time.Until(start.Add(time.Duration(float64(i) / o.Rate * 1e9))); ahead > time.Millisecond {
				select {
				case <-ctx.Done():
				case <-time.After(ahead):
				}
			}
		}
		if (o.Rate > 0 || i%256 == 0) && ctx.Err() != nil {
			break
		}
		if err := send(next(i)); err != nil {
			runErr = fmt.Errorf("publish %d: %w", i, err)
			break
		}
		res.Published++
	}
	if js != nil {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			if runErr == nil {
				runErr = fmt.Errorf("publish: %d JetStream acks outstanding after 30s", js.PublishAsyncPending())
			}
		}
		res.Published -= pubErrs.Load()
		if e := firstErr.Load(); e != nil && runErr == nil {
			runErr = fmt.Errorf("publish: %d JetStream publishes failed, the first: %w", pubErrs.Load(), *e)
		}
	} else if err := nc.Flush(); err != nil && runErr == nil {
		runErr = fmt.Errorf("publish: flush: %w", err)
	}
	res.Elapsed = time.Since(start)
	if pool == nil {
		_, res.Invalid, res.Late = g.Counts()
	}
	res.Truth = g.Truth
	return res, runErr
}
