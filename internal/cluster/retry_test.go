package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRetryAdmin: an unanswered admin request (a timed-out attempt, no
// responders) or one refused for want of peers online is sent again; another error, or the caller's deadline, ends
// it.
func TestRetryAdmin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := 0
	err := retryAdmin(ctx, func(actx context.Context) error {
		calls++
		if _, ok := actx.Deadline(); !ok {
			t.Error("an attempt without a deadline")
		}
		switch calls {
		case 1:
			return context.DeadlineExceeded
		case 2:
			return nats.ErrNoResponders
		case 3: // as nats.go returns it while the cluster forms
			return fmt.Errorf("create: %w", &jetstream.APIError{Code: 500, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"})
		case 4: // a KV write while the bucket's leader changes
			return fmt.Errorf("create: %w", jetstream.ErrNoStreamResponse)
		}
		return nil
	})
	if err != nil || calls != 5 {
		t.Errorf("unanswered three times, no peers once, then answered: %v after %d calls, want nil after 5", err, calls)
	}

	refused := errors.New("stream name already in use with a different configuration")
	calls = 0
	if err := retryAdmin(ctx, func(context.Context) error { calls++; return refused }); !errors.Is(err, refused) || calls != 1 {
		t.Errorf("a refusal: %v after %d calls, want it after 1", err, calls)
	}

	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if err := retryAdmin(short, func(context.Context) error { return nats.ErrNoResponders }); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("never answered: %v, want the last error once the caller's deadline passed", err)
	}
}
