package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Changelog names one sketchd stream's changelog: the JetStream stream
// SKETCHD_CL_<CLUSTER>_<STREAM>_<REV> (REV: the stream's registry
// revision, so a re-created name never reads an old changelog), whose
// subjects are
//
//	sketchd.cl.<cluster>.<stream>.<rev>.<p>.c                      checkpoint record of partition p
//	sketchd.cl.<cluster>.<stream>.<rev>.<p>.p.<start>.<keyhash>    a pane of partition p
//
// with one message kept per subject (the newest version of each pane and
// checkpoint).
type Changelog struct {
	Cluster string
	Stream  string
	Rev     uint64
}

// Name is the JetStream stream's name.
func (c Changelog) Name() string {
	return fmt.Sprintf("SKETCHD_CL_%s_%s_%d", c.Cluster, c.Stream, c.Rev)
}

// prefix is every subject's head.
func (c Changelog) prefix() string {
	return "sketchd.cl." + c.Cluster + "." + c.Stream + "." + strconv.FormatUint(c.Rev, 10)
}

// Subjects is the filter of every record of every partition.
func (c Changelog) Subjects() string { return c.prefix() + ".>" }

// CheckpointSubject is partition p's checkpoint record's subject.
func (c Changelog) CheckpointSubject(p int) string {
	return c.prefix() + "." + strconv.Itoa(p) + ".c"
}

// PaneSubject is the subject of partition p's pane (key, start).
func (c Changelog) PaneSubject(p int, key string, start int64) string {
	return c.prefix() + "." + strconv.Itoa(p) + ".p." + strconv.FormatInt(start, 10) + "." + keyHash(key)
}

// parseSubject returns the partition of a changelog subject and whether it
// is a checkpoint record (else a pane).
func (c Changelog) parseSubject(subject string) (p int, checkpoint bool, err error) {
	rest, ok := strings.CutPrefix(subject, c.prefix()+".")
	if !ok {
		return 0, false, fmt.Errorf("%w: subject %q outside %s", ErrCorruptRecord, subject, c.Subjects())
	}
	part, kind, _ := strings.Cut(rest, ".")
	p, err = strconv.Atoi(part)
	if err != nil || p < 0 {
		return 0, false, fmt.Errorf("%w: subject %q: partition", ErrCorruptRecord, subject)
	}
	switch {
	case kind == "c":
		return p, true, nil
	case strings.HasPrefix(kind, "p."):
		return p, false, nil
	}
	return 0, false, fmt.Errorf("%w: subject %q: kind", ErrCorruptRecord, subject)
}

// EnsureChangelog creates (or updates) the changelog stream: one message
// per subject, atomic batches, per-message TTLs (a pane expires with its
// retention), direct gets, replicas R.
func EnsureChangelog(ctx context.Context, js jetstream.JetStream, c Changelog, replicas int) (jetstream.Stream, error) {
	var s jetstream.Stream
	err := retryAdmin(ctx, func(ctx context.Context) (err error) {
		s, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:               c.Name(),
			Description:        "sketchd changelog of " + c.Stream + " in cluster " + c.Cluster,
			Subjects:           []string{c.Subjects()},
			Storage:            jetstream.FileStorage,
			Replicas:           replicas,
			MaxMsgsPerSubject:  1,
			AllowAtomicPublish: true,
			AllowMsgTTL:        true,
			AllowDirect:        true,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: changelog %s: %w", c.Name(), err)
	}
	if err := waitLeader(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

// waitLeader waits until a just-created stream has a leader (a clustered
// stream answers no request before), polling its info until ctx is done.
func waitLeader(ctx context.Context, s jetstream.Stream) error {
	for {
		info, err := s.Info(ctx)
		if err == nil && (info.Cluster == nil || info.Cluster.Leader != "") {
			return nil
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return fmt.Errorf("cluster: stream %s has no leader: %w", s.CachedInfo().Config.Name, ctx.Err())
		}
	}
}
