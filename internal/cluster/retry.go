package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// adminAttempt bounds one JetStream admin request (create or update of a
// stream or bucket). On a cluster that has just started, or while the meta
// leader changes, such a request can go unanswered; without a bound per
// attempt it would wait for the caller's whole deadline (a minute in the
// tests, where it was seen on a loaded machine).
const adminAttempt = 10 * time.Second

// retryAdmin runs an idempotent admin request until it succeeds, fails
// for another reason than a timeout or no responders, or ctx is done,
// each attempt bounded by adminAttempt.
func retryAdmin(ctx context.Context, req func(ctx context.Context) error) error {
	return retryAttempts(ctx, adminAttempt, req)
}

// retryAttempts is retryAdmin with attempts bounded by attempt.
func retryAttempts(ctx context.Context, attempt time.Duration, req func(ctx context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := req(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !retryable(err) {
			return err
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return err
		}
	}
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retryable: the request was not answered (a timeout of the attempt, no
// responder while the JetStream API has no leader, or no acknowledgement
// from a stream whose leader changed under a write), or the meta leader
// does not see enough peers online yet to place the replicas (10005 "no
// suitable peers for placement", seen on a cluster just started on a
// loaded machine: TestMirrorMetrics).
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == errNoSuitablePeers)
}

// errNoSuitablePeers is JetStream's JSClusterNoPeersErr.
const errNoSuitablePeers jetstream.ErrorCode = 10005

// lastForSubject is the stream's last message on subject by direct get.
// Direct gets have no responder for a moment after the stream is created
// or a replica restarts (seen on a 3-node changelog right after its first
// commits: TestMirrorPendingPerPartition), so no responders is retried
// for up to 5 s or until ctx is done. Each attempt is bounded by
// adminAttempt: a lost request would otherwise wait for ctx's deadline.
func lastForSubject(ctx context.Context, s jetstream.Stream, subject string) (*jetstream.RawStreamMsg, error) {
	for try := 0; ; try++ {
		actx, cancel := context.WithTimeout(ctx, adminAttempt)
		m, err := s.GetLastMsgForSubject(actx, subject)
		cancel()
		if !errors.Is(err, nats.ErrNoResponders) || try == 50 || ctx.Err() != nil {
			return m, err
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return m, err
		}
	}
}
