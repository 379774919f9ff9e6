package ingest

// The ownership metrics of a cluster stream (docs/operations.md,
// "Metrics"): which partitions this instance owns and under which epoch,
// its claims and releases, and its commits the changelog's fence refused.
// Counters are atomics the controller and the owners' committers bump;
// the owned partitions are read from clusterStream.owned at scrape time.
// Registered on the registerer JoinCluster got, beside the mirror's
// metrics, with the stream as a constant label; unregistered when the
// stream stops here.

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Claim results (sketchd_partition_claims_total's result label).
const (
	claimOK = iota
	claimFailed
	claimTimeout
	claimResults
)

var claimResultNames = [claimResults]string{"ok", "failed", "timeout"}

// Release reasons (sketchd_partition_releases_total's reason label).
const (
	releaseRebalance = iota // the assignment gave the partition to another instance
	releaseFenced           // a commit met another owner's claim
	releaseShutdown         // this instance stops
	releaseRemoved          // the stream was deleted, or replaced by another revision
	releaseReasons
)

var releaseReasonNames = [releaseReasons]string{"rebalance", "fenced", "shutdown", "removed"}

// ownCounters are a cluster stream's ownership counters.
type ownCounters struct {
	claims   [claimResults]atomic.Uint64
	releases [releaseReasons]atomic.Uint64
	fenced   atomic.Uint64 // commits the changelog refused: another owner's epoch
}

// countClaim counts a claim's outcome; a claim cut short because the
// stream stops here is not counted.
func (c *ownCounters) countClaim(ctx context.Context, err error) {
	switch {
	case err == nil:
		c.claims[claimOK].Add(1)
	case ctx.Err() != nil:
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		c.claims[claimTimeout].Add(1)
	default:
		c.claims[claimFailed].Add(1)
	}
}

type ownCollector struct {
	cs                                    *clusterStream
	owned, epoch, claims, releases, fence *prometheus.Desc
}

func newOwnCollector(cs *clusterStream) *ownCollector {
	l := prometheus.Labels{"stream": cs.info.Spec.Name}
	return &ownCollector{cs: cs,
		owned: prometheus.NewDesc("sketchd_partition_owned",
			"1 while this instance owns the partition (its runner ingests it and commits through the changelog), else 0.", []string{"partition"}, l),
		epoch: prometheus.NewDesc("sketchd_partition_owner_epoch",
			"The claim epoch this instance commits the partition under (the changelog's fence; each claim adds one), 0 when it does not own it.", []string{"partition"}, l),
		claims: prometheus.NewDesc("sketchd_partition_claims_total",
			"Claims of the stream's partitions this instance made, by result: ok (owned), timeout (the mirror did not reach the partition's last record within 10 s, a JetStream request timed out, or the claim's record went unanswered, resent, for twice the publish timeout), failed (any other error; retried every second).", []string{"result"}, l),
		releases: prometheus.NewDesc("sketchd_partition_releases_total",
			"Partitions of the stream this instance stopped owning, by reason: rebalance (assigned to another instance; final commit), fenced (a commit met another owner's claim; dropped without a commit), shutdown (the instance stops; final commit), removed (the stream was deleted or re-created).", []string{"reason"}, l),
		fence: prometheus.NewDesc("sketchd_commits_fenced_total",
			"Commits of this instance the changelog refused because another instance claimed the partition since (a later epoch); each drops the partition here without a commit or an ack.", nil, l),
	}
}

func (c *ownCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.owned, c.epoch, c.claims, c.releases, c.fence} {
		ch <- d
	}
}

func (c *ownCollector) Collect(ch chan<- prometheus.Metric) {
	cs := c.cs
	epochs := cs.ownedEpochs()
	for p := range cs.info.Partitions {
		part := strconv.Itoa(p)
		e, owned := epochs[p]
		ch <- prometheus.MustNewConstMetric(c.owned, prometheus.GaugeValue, boolGauge(owned), part)
		ch <- prometheus.MustNewConstMetric(c.epoch, prometheus.GaugeValue, float64(e), part)
	}
	for i := range claimResults {
		ch <- prometheus.MustNewConstMetric(c.claims, prometheus.CounterValue, float64(cs.counts.claims[i].Load()), claimResultNames[i])
	}
	for i := range releaseReasons {
		ch <- prometheus.MustNewConstMetric(c.releases, prometheus.CounterValue, float64(cs.counts.releases[i].Load()), releaseReasonNames[i])
	}
	ch <- prometheus.MustNewConstMetric(c.fence, prometheus.CounterValue, float64(cs.counts.fenced.Load()))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ownedEpochs returns the epoch of each partition owned here.
func (cs *clusterStream) ownedEpochs() map[int]uint64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make(map[int]uint64, len(cs.owned))
	for p, r := range cs.owned {
		if r.own != nil {
			out[p] = r.own.epoch
		}
	}
	return out
}

// registerOwnMetrics registers cs's ownership metrics on reg (nil: none)
// and returns their unregistration.
func (cs *clusterStream) registerOwnMetrics(reg prometheus.Registerer) (func(), error) {
	if reg == nil {
		return func() {}, nil
	}
	c := newOwnCollector(cs)
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return func() { reg.Unregister(c) }, nil
}
