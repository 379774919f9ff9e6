package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// serviceVersion is the micro service's version: the cluster protocol's,
// raised when instances of two versions could not share a cluster.
const serviceVersion = "1.0.0"

// metaInstance is the metadata key of an instance's id.
const metaInstance = "instance"

// ServiceName is the micro service every ready instance of a cluster runs.
func ServiceName(cluster string) string { return "sketchd-" + cluster }

// Announcement is a running discovery service: the instance is visible to
// Discover until Stop.
type Announcement struct {
	svc micro.Service
}

// Announce runs the micro service sketchd-<cluster> with the instance id
// in its metadata. An instance announces itself once it is ready (every
// changelog restored) and stops while it restores or its store fails.
func Announce(nc *nats.Conn, cluster, instance string) (*Announcement, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName(cluster),
		Version:     serviceVersion,
		Description: "sketchd instance of cluster " + cluster,
		Metadata:    map[string]string{metaInstance: instance},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: announce %s: %w", instance, err)
	}
	return &Announcement{svc: svc}, nil
}

// Stop withdraws the announcement; safe to call twice.
func (a *Announcement) Stop() error {
	if a.svc.Stopped() {
		return nil
	}
	return a.svc.Stop()
}

// Member is an instance found by Discover.
type Member struct {
	Instance string // the sketchd instance id
	Service  string // the micro service's id (one per Announce)
	Version  string
}

// Discover pings $SRV.PING.sketchd-<cluster> and gathers replies for
// gather (or until ctx is done), returning the members sorted by instance
// id, one per instance (an instance announced twice, e.g. across a
// restart, counts once). Replies that do not parse are ignored.
func Discover(ctx context.Context, nc *nats.Conn, cluster string, gather time.Duration) ([]Member, error) {
	parent := ctx
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("cluster: discover: %w", err)
	}
	defer sub.Unsubscribe()
	subject, err := micro.ControlSubject(micro.PingVerb, ServiceName(cluster), "")
	if err != nil {
		return nil, fmt.Errorf("cluster: discover: %w", err)
	}
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("cluster: discover: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, gather)
	defer cancel()
	seen := map[string]Member{}
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if perr := parent.Err(); perr != nil {
				return nil, perr
			}
			if errors.Is(err, nats.ErrNoResponders) {
				break // no instance runs the service
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("cluster: discover: %w", err)
			}
			break // the gather window ended
		}
		var p micro.Ping
		if json.Unmarshal(msg.Data, &p) != nil || p.Metadata[metaInstance] == "" {
			continue
		}
		id := p.Metadata[metaInstance]
		seen[id] = Member{Instance: id, Service: p.ID, Version: p.Version}
	}
	members := make([]Member, 0, len(seen))
	for _, m := range seen {
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.Instance, b.Instance) })
	return members, nil
}

// Instances returns the members' instance ids, in order: the view Assign
// takes.
func Instances(members []Member) []string {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.Instance
	}
	return ids
}

// WatchMembers discovers the cluster's members every o.DiscoveryInterval
// (gathering for o.DiscoveryGather) and sends the view (sorted instance
// ids, what Assign takes) whenever it differs from the last one sent,
// starting with the first. A failed ping is logged and the view kept. The
// goroutine stops when ctx is done, and closes the channel; the caller
// must keep receiving until then.
func WatchMembers(ctx context.Context, nc *nats.Conn, o Options, log *slog.Logger) <-chan []string {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out := make(chan []string)
	go func() {
		defer close(out)
		t := time.NewTicker(o.DiscoveryInterval)
		defer t.Stop()
		var last []string
		sent := false
		for {
			ms, err := Discover(ctx, nc, o.Name, o.DiscoveryGather)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				log.Warn("cluster discovery failed", "cluster", o.Name, "err", err)
			default:
				if view := Instances(ms); !sent || !slices.Equal(view, last) {
					select {
					case out <- view:
						last, sent = view, true
					case <-ctx.Done():
						return
					}
				}
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
