package cluster

// How a mirror's run starts its consumer again, from the store's applied
// sequences (reload): when Release asks for a rewind, when the watchdog
// finds the consumer stalled (stall.go), and after reading the changelog
// failed, with backoff. Only the store failing, the changelog deleted or
// the NATS connection closed end a run.

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// restart reasons (sketchd_mirror_restarts_total{reason}).
const (
	restartStalled = iota
	restartError
	restartReasons
)

// Retry backoff after a failed read: doubling from retryFirst up to
// retryMax; back to retryFirst once a consumer delivered a message.
const (
	retryFirst = 500 * time.Millisecond
	retryMax   = 30 * time.Second
)

func (m *Mirror) run(ctx context.Context, follow bool) error {
	defer m.readers.Wait()
	select {
	case <-m.rewind: // a Release while no mirror ran
		if err := m.reload(ctx); err != nil {
			return err
		}
	default:
	}
	wait := retryFirst
	for {
		received := m.received.Load()
		err := m.consume(ctx, follow)
		switch {
		case err != nil && ctx.Err() != nil:
			return m.ended(ctx, follow)
		case errors.Is(err, errRewind), errors.Is(err, errStalled):
		case errors.Is(err, errReading) && !terminal(err):
			if m.received.Load() != received {
				wait = retryFirst
			}
			m.restarts[restartError].Add(1)
			m.log.Warn("changelog mirror failed; retrying", "err", err, "retry_in", wait)
			if !sleepCtx(ctx, wait) {
				return m.ended(ctx, follow)
			}
			wait = min(2*wait, retryMax)
		default:
			return err
		}
		if err := m.reload(ctx); err != nil {
			return err
		}
	}
}

// ended is what a run returns once ctx is done: nil for Run, the
// context's error for CatchUp.
func (m *Mirror) ended(ctx context.Context, follow bool) error {
	if follow {
		return nil
	}
	return ctx.Err()
}

// errRewind: Release asked the consumer to start again from the store.
var errRewind = errors.New("cluster: mirror rewind")

// errReading wraps the errors of reading the changelog (its stream info,
// the consumer's create, the iterator), which a run retries unless they
// are terminal.
var errReading = errors.New("cluster: mirror: reading the changelog")

// terminal: retrying cannot help (the changelog is gone, or the NATS
// connection closed for good).
func terminal(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, jetstream.ErrConnectionClosed)
}
