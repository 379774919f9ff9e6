package cluster

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/sketchd/sketchd/internal/defaults"
)

// Options configure cluster mode. Zero (or negative) values take the
// defaults of DefaultOptions; an empty Name means single-node mode, where
// nothing in this package runs.
type Options struct {
	// Name is the cluster's name (`cluster_name`): it names every NATS
	// asset the cluster shares (KV bucket, changelogs, micro service), so
	// two clusters on one NATS never share one. [A-Za-z0-9_-]{1,32}.
	Name string `yaml:"cluster_name" json:"cluster_name"`
	// Replicas is the R of every JetStream asset the cluster creates
	// (`cluster_replicas`). Default 3.
	Replicas int `yaml:"cluster_replicas" json:"cluster_replicas"`
	// FailoverTimeout is how long a silent owner keeps its partitions
	// (the pinned consumers' PinnedTTL, `failover_timeout`). Default 5s,
	// at least 1s.
	FailoverTimeout time.Duration `yaml:"failover_timeout" json:"failover_timeout"`
	// DiscoveryInterval is how often an instance pings the others
	// (`discovery_interval`). Default 1s.
	DiscoveryInterval time.Duration `yaml:"discovery_interval" json:"discovery_interval"`
	// DiscoveryGather is how long a ping gathers replies. Default 250ms;
	// it must be shorter than DiscoveryInterval.
	DiscoveryGather time.Duration `yaml:"-" json:"-"`
	// MaxBatchMsgs and MaxBatchBytes bound one atomic batch of the
	// changelog, its checkpoint record included. Defaults 999 (the server
	// allows 1000) and 8 MiB.
	MaxBatchMsgs  int `yaml:"-" json:"-"`
	MaxBatchBytes int `yaml:"-" json:"-"`
	// PublishTimeout bounds one changelog batch commit. Default 10s.
	PublishTimeout time.Duration `yaml:"-" json:"-"`
}

// DefaultOptions returns the defaults of every Options field (Name stays
// empty: single node).
func DefaultOptions() Options {
	return Options{
		Replicas:          3,
		FailoverTimeout:   5 * time.Second,
		DiscoveryInterval: time.Second,
		DiscoveryGather:   250 * time.Millisecond,
		MaxBatchMsgs:      999,
		MaxBatchBytes:     8 << 20,
		PublishTimeout:    10 * time.Second,
	}
}

// serverMaxBatch is nats-server's default limit of messages in one atomic
// batch (ADR-50).
const serverMaxBatch = 1000

var clusterNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ErrInvalidOptions wraps every Options validation error.
var ErrInvalidOptions = errors.New("cluster: invalid options")

// Normalize fills the unset fields of o from DefaultOptions and validates
// it. An empty Name is valid (single node).
func (o Options) Normalize() (Options, error) {
	o = defaults.Fill(o, DefaultOptions())
	switch {
	case o.Name != "" && !clusterNameRe.MatchString(o.Name):
		return o, fmt.Errorf("%w: cluster_name %q: want 1-32 of [A-Za-z0-9_-]", ErrInvalidOptions, o.Name)
	case o.Replicas > 5:
		return o, fmt.Errorf("%w: cluster_replicas %d: JetStream allows 1-5", ErrInvalidOptions, o.Replicas)
	case o.FailoverTimeout < time.Second:
		return o, fmt.Errorf("%w: failover_timeout %s: at least 1s", ErrInvalidOptions, o.FailoverTimeout)
	case o.DiscoveryGather >= o.DiscoveryInterval:
		return o, fmt.Errorf("%w: discovery gather %s must be shorter than discovery_interval %s", ErrInvalidOptions, o.DiscoveryGather, o.DiscoveryInterval)
	case o.MaxBatchMsgs < 2 || o.MaxBatchMsgs >= serverMaxBatch:
		return o, fmt.Errorf("%w: batch of %d messages: want 2-%d", ErrInvalidOptions, o.MaxBatchMsgs, serverMaxBatch-1)
	}
	return o, nil
}
