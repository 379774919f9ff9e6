package ingest

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sketchd/sketchd/internal/syncbuf"
)

// TestDeleteConsumerLogsUnanswered: a consumer delete the server leaves
// unanswered (here a subscriber on the JetStream API subject that never
// replies) is asked again after consumerDeleteAttempt, and each
// unanswered attempt is logged and counted, so an operator can tell a slow delete from
// a stuck one; when the caller's context ends, the error is returned.
func TestDeleteConsumerLogsUnanswered(t *testing.T) {
	s := runNATS(t)
	nc := connect(t, s.ClientURL())
	const prefix = "swallowed"
	sub, err := nc.Subscribe(prefix+".CONSUMER.DELETE.>", func(m *nats.Msg) {}) // never answers
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	js, err := jetstream.NewWithAPIPrefix(nc, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), consumerDeleteAttempt+time.Second)
	defer cancel()
	var unanswered atomic.Uint64
	ok, err := deleteConsumer(ctx, log, &unanswered, js, "pv", "durable")
	if ok || err == nil {
		t.Fatalf("deleteConsumer = %v, %v; want not ok and the context's error", ok, err)
	}
	if n := unanswered.Load(); n != 1 {
		t.Errorf("counted %d unanswered attempts, want 1", n)
	}
	got := logs.String()
	if n := strings.Count(got, "JetStream consumer delete unanswered"); n != 1 {
		t.Fatalf("logged %d unanswered attempts, want 1 (one 3 s attempt in 4 s):\n%s", n, got)
	}
	if !strings.Contains(got, `"attempt":1`) {
		t.Errorf("the log names no attempt:\n%s", got)
	}
}
