package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// Registry is the cluster's list of stream specs: the KV bucket
// SKETCHD_<CLUSTER>_STREAMS, one key per stream name, the spec as JSON.
// A create-only write (keyCreate: create.go) decides which of several
// instances creating one name wins; every instance watches the bucket to
// start and stop runners.
type Registry struct {
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	bucket jetstream.Stream // the bucket's stream (Create reads a key's headers)
	prefix string           // the keys' subject prefix, "$KV.<bucket>."
	log    *slog.Logger
}

// Registry errors callers act on.
var (
	ErrStreamExists   = errors.New("cluster: stream already registered")
	ErrStreamNotFound = errors.New("cluster: stream not registered")
)

// RegistryBucket is the KV bucket of cluster name's stream specs.
func RegistryBucket(cluster string) string { return "SKETCHD_" + cluster + "_STREAMS" }

// OpenRegistry creates (or binds) the registry bucket of o.Name with
// o.Replicas replicas. o must be normalized and name a cluster.
func OpenRegistry(ctx context.Context, js jetstream.JetStream, o Options, log *slog.Logger) (*Registry, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("%w: no cluster_name", ErrInvalidOptions)
	}
	var kv jetstream.KeyValue
	err := retryAdmin(ctx, func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      RegistryBucket(o.Name),
			Description: "sketchd cluster " + o.Name + ": stream specs",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: registry bucket %s: %w", RegistryBucket(o.Name), err)
	}
	s, err := js.Stream(ctx, "KV_"+RegistryBucket(o.Name))
	if err == nil {
		err = waitLeader(ctx, s)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: registry bucket %s: %w", RegistryBucket(o.Name), err)
	}
	// The bucket is neither a mirror nor behind a JetStream domain or API
	// prefix (sketchd's jetstream.New has neither), so its keys'
	// subjects are nats.go's kv.pre.
	prefix := "$KV." + RegistryBucket(o.Name) + "."
	return &Registry{kv: kv, js: js, bucket: s, prefix: prefix, log: log}, nil
}

// Create registers spec under its name and returns the entry's revision
// (the changelog's name carries it, so a re-created name never reads an
// old changelog). Exactly one of several concurrent creators of a name
// gets nil, identical specs or not; the others get ErrStreamExists. An
// attempt that goes unanswered (the bucket's leader changing under the
// write, as on a cluster just started) is sent again with the same
// message id, so a resend tells its own landed write from another
// creator's (keyCreate). A name registered before Create began is
// refused by a read, without a write.
func (r *Registry) Create(ctx context.Context, spec sketchd.Stream) (uint64, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return 0, fmt.Errorf("cluster: encode spec %s: %w", spec.Name, err)
	}
	if exists, err := r.registered(ctx, spec.Name); err != nil {
		return 0, fmt.Errorf("cluster: register %s: %w", spec.Name, err)
	} else if exists {
		return 0, fmt.Errorf("%w: %s", ErrStreamExists, spec.Name)
	}
	c, err := newKeyCreate(r.js, r.bucket, r.prefix, spec.Name, b)
	if err != nil {
		return 0, fmt.Errorf("cluster: register %s: %w", spec.Name, err)
	}
	var rev uint64
	err = retryAdmin(ctx, func(ctx context.Context) (err error) {
		rev, err = c.attempt(ctx)
		return err
	})
	if isWrongLastSequence(err) {
		return 0, fmt.Errorf("%w: %s", ErrStreamExists, spec.Name)
	}
	if err != nil {
		return 0, fmt.Errorf("cluster: register %s: %w", spec.Name, err)
	}
	return rev, nil
}

// registered reports whether name is registered, as the bucket's leader
// has it (leaderget.go: a replica may be behind), retrying unanswered
// reads as Create retries its writes.
func (r *Registry) registered(ctx context.Context, name string) (bool, error) {
	var exists bool
	err := retryAdmin(ctx, func(ctx context.Context) error {
		m, err := leaderLast(ctx, r.js, r.bucket.CachedInfo().Config.Name, r.prefix+name) // leaderget.go
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		exists = err == nil && !deleteMarker(m)
		return err
	})
	return exists, err
}

// Get returns a registered spec and its revision.
func (r *Registry) Get(ctx context.Context, name string) (sketchd.Stream, uint64, error) {
	e, err := r.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return sketchd.Stream{}, 0, fmt.Errorf("%w: %s", ErrStreamNotFound, name)
	}
	if err != nil {
		return sketchd.Stream{}, 0, fmt.Errorf("cluster: get %s: %w", name, err)
	}
	spec, err := decodeSpec(e.Value())
	return spec, e.Revision(), err
}

// Delete removes a registered spec: the revision Get found, so that a
// name deleted and registered again meanwhile is not removed. A delete
// that goes unanswered (the bucket electing its leader) is sent again
// (retryAdmin); a resend the bucket refuses because that revision is gone
// finds the name deleted: by the attempt that landed unseen, or by
// another instance. Either way it is done.
func (r *Registry) Delete(ctx context.Context, name string) error {
	_, rev, err := r.Get(ctx, name)
	if err != nil {
		return err
	}
	err = retryAdmin(ctx, func(ctx context.Context) error {
		return r.kv.Delete(ctx, name, jetstream.LastRevision(rev))
	})
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		if _, _, gerr := r.Get(ctx, name); errors.Is(gerr, ErrStreamNotFound) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("cluster: delete %s: %w", name, err)
	}
	return nil
}

func decodeSpec(b []byte) (sketchd.Stream, error) {
	var s sketchd.Stream
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("cluster: registry entry: %w", err)
	}
	return s, nil
}

// SpecOp says what happened to a registered stream.
type SpecOp int

const (
	// SpecAdded: a stream was registered (or is, when the watch starts).
	SpecAdded SpecOp = iota + 1
	// SpecRemoved: a stream was deleted.
	SpecRemoved
	// SpecSynced: every stream registered when the watch started has been
	// reported; later events are changes.
	SpecSynced
)

// SpecEvent is one change to the registry.
type SpecEvent struct {
	Op       SpecOp
	Name     string
	Spec     sketchd.Stream // SpecAdded
	Revision uint64
	// Err is set when a registered entry does not decode; the event is
	// otherwise a SpecAdded with an empty Spec, for the caller to report.
	Err error
}

// Watch reports the registered streams, then SpecSynced, then every change,
// on the returned channel, until ctx is done; then the channel is closed.
// The caller must keep receiving (ingest.Manager acts on each event).
// Creating the watch is retried while it is not answered (retryable: a
// registry whose replicas have no leader yet, on a cluster just started)
// until setup is done.
func (r *Registry) Watch(ctx, setup context.Context) (<-chan SpecEvent, error) {
	w, err := r.kv.WatchAll(ctx)
	for err != nil && retryable(err) && setup.Err() == nil && ctx.Err() == nil {
		select {
		case <-setup.Done():
		case <-time.After(100 * time.Millisecond):
		}
		w, err = r.kv.WatchAll(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: watch registry: %w", err)
	}
	out := make(chan SpecEvent)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case <-ctx.Done():
				return
			case e, ok = <-w.Updates():
				if !ok {
					return
				}
			}
			ev := specEvent(e)
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// specEvent turns a watch update into an event; nil marks the end of the
// initial values.
func specEvent(e jetstream.KeyValueEntry) SpecEvent {
	if e == nil {
		return SpecEvent{Op: SpecSynced}
	}
	ev := SpecEvent{Name: e.Key(), Revision: e.Revision()}
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		ev.Op = SpecRemoved
	default:
		ev.Op = SpecAdded
		ev.Spec, ev.Err = decodeSpec(e.Value())
	}
	return ev
}
