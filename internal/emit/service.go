// Package emit pushes the windows of streams that declare emit targets
// (sketchd.Emit) to NATS once they close: the query API's window answers,
// computed from the committed state, published in window order, with a
// cursor in the store so that a restart resumes where the last confirmed
// publish ended (see docs/emit.md).
//
// Goroutines: Service.Run lists the streams every Interval and keeps one
// emitter goroutine per stream with targets (emitter.run), started when the
// stream appears or its spec changes, stopped when it goes or Run ends.
// An emitter publishes its stream's targets one after the other; nothing
// of ingestion waits for it: it reads the stream status (an atomic
// snapshot), the store and the query caches, never a lock ingestion holds.
// A slow or unreachable target delays only its own stream's emission; the
// backlog stays in the store (bounded by retention), not in memory.
package emit

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
)

// Streams lists the streams with their status; ingest.Manager implements
// it.
type Streams interface {
	List(ctx context.Context) ([]sketchd.StreamStatus, error)
}

// Querier answers the windows to publish; *query.Querier implements it.
type Querier interface {
	QueryMulti(ctx context.Context, t query.Target, q query.Query, aggregates []string) ([]*query.Result, error)
}

// Store keeps the targets' cursors and the committed counters;
// *store.DB implements it.
type Store interface {
	EmitCursor(ctx context.Context, streamID uint32, subject string) (store.EmitCursor, bool, error)
	SetEmitCursor(ctx context.Context, streamID uint32, subject string, c store.EmitCursor) error
	Checkpoint(ctx context.Context, streamID uint32) (sketchd.Checkpoint, bool, error)
	FirstPaneAfter(ctx context.Context, streamID uint32, tier time.Duration, from int64) (int64, bool, error)
}

var _ Store = (*store.DB)(nil)

// Options tune emission. Zero values take the defaults of DefaultOptions.
type Options struct {
	// Interval is how often the streams are listed and each emitter looks
	// for windows to publish. Default 1s (the default flush interval).
	Interval time.Duration
	// BatchWindows bounds the windows one query asks for (halved while the
	// query's limits refuse it). Default 16.
	BatchWindows int
	// PublishTimeout bounds the wait for NATS to confirm a batch (JetStream
	// acks, or a core flush). Default 10s.
	PublishTimeout time.Duration
	// MaxPending bounds the messages published but not yet confirmed: a
	// batch waits for its confirmations every MaxPending messages. Default
	// 1024.
	MaxPending int
	// DuplicateWindow is the Nats-Msg-Id duplicate window of the JetStream
	// streams emit creates for targets no stream captures. Default 10m.
	DuplicateWindow time.Duration
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{Interval: time.Second, BatchWindows: 16, PublishTimeout: 10 * time.Second,
		MaxPending: 1024, DuplicateWindow: 10 * time.Minute}
}

// Service runs the emitters.
type Service struct {
	streams  Streams
	querier  Querier
	db       Store
	renderer *api.EmitRenderer
	conn     func() *nats.Conn
	log      *slog.Logger
	opts     Options

	mu       sync.Mutex
	emitters map[string]*emitter // by stream name
}

// New returns a Service; conn returns the current NATS connection.
func New(streams Streams, querier Querier, db Store, renderer *api.EmitRenderer, conn func() *nats.Conn, logger *slog.Logger, opts Options) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{streams: streams, querier: querier, db: db, renderer: renderer, conn: conn, log: logger,
		opts: defaults.Fill(opts, DefaultOptions()), emitters: map[string]*emitter{}}
}

// Run keeps an emitter per stream with targets until ctx is done, then
// stops them (each ends its publish in progress, or at its timeout).
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		s.sync(ctx)
		select {
		case <-ctx.Done():
			s.stopAll()
			return
		case <-t.C:
		}
	}
}

// sync starts, replaces and stops emitters to match the streams, and hands
// each its stream's status. Only Run calls it; an emitter being replaced
// is waited for (outside the lock, so Status does not wait) before the new
// one starts on the same cursors.
func (s *Service) sync(ctx context.Context) {
	sts, err := s.streams.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("emit: listing streams failed", "err", err)
		}
		return
	}
	want := map[string]*sketchd.StreamStatus{}
	for i := range sts {
		if st := &sts[i]; len(st.Spec.Emit) > 0 && st.State == "running" {
			want[st.Spec.Name] = st
		}
	}
	s.mu.Lock()
	var gone []*emitter
	for name, e := range s.emitters {
		if st := want[name]; st == nil || e.id != st.ID || !reflect.DeepEqual(e.spec, st.Spec) {
			e.cancel()
			gone = append(gone, e)
			delete(s.emitters, name)
		}
	}
	s.mu.Unlock()
	for _, e := range gone {
		<-e.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, st := range want {
		e := s.emitters[name]
		if e == nil {
			e = s.start(ctx, st)
			s.emitters[name] = e
		}
		e.offer(st)
	}
}

func (s *Service) stopAll() {
	s.mu.Lock()
	all := s.emitters
	s.emitters = map[string]*emitter{}
	s.mu.Unlock()
	for _, e := range all {
		e.cancel()
	}
	for _, e := range all {
		<-e.done
	}
}

// Status returns the progress of the named stream's targets (nil when it
// has no running emitter).
func (s *Service) Status(name string) []sketchd.EmitStatus {
	s.mu.Lock()
	e := s.emitters[name]
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	return e.status()
}

func (s *Service) all() []*emitter {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*emitter, 0, len(s.emitters))
	for _, e := range s.emitters {
		out = append(out, e)
	}
	return out
}
