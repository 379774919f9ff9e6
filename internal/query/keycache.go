package query

import (
	"context"
	"time"
)

// tierKeyCache keeps the keys of the key index of final spans: built
// rollup-tier spans (their panes are final and written once: tiers.go) and
// spans of the stream's own panes that end where windows are final
// (WindowFinalAt at the target's watermark: no event can add a key there);
// and the keys of other spans of the stream's panes as of the target's
// last commit (Target.LastCommit: the state answers read), which the
// panels of a dashboard over the last hour share until the next commit.
// Their keys do not change; reading the key index again (a seek per key
// and partition, and, where the span cuts a partition, a pane of the key
// in the span: from the store's pane memo, else a seek into the panes,
// internal/store panememo.go) was a third of the CPU of 30-day queries at
// load, whose windows' edges are base spans. The stream's generation
// (Forget) is in the key. Like the other caches, an entry may outlive
// retention dropping the partition it lists: the answer then has the
// group, with empty windows.
type tierKeyCache = boundedMap[tierSpanKey, []string]

type tierSpanKey struct {
	stream   uint32
	gen      uint64
	tier     int64 // 0: the stream's own panes
	from, to int64
	commit   int64 // a span that is not final: the target's last commit
}

// Bounds: spans of more keys are not cached (the heavy queries the cost
// check refuses); past maxTierSpans entries the cache starts over.
const (
	maxTierSpanKeys = 4096
	maxTierSpans    = 4096
)

// spanKeysCached calls fn for each key of the span s of p: from the cache
// when the span is final and cached, else from the key index of its
// resolution (then cached when final, unless fn stopped it or it has more
// than maxTierSpanKeys keys).
func (q *Querier) spanKeysCached(ctx context.Context, tr TierReader, p *plan, s Span, fn func(key string) error) error {
	read := func(fn func(string) error) error {
		if s.Tier {
			return tr.TierKeys(ctx, p.target.ID, time.Duration(s.Granularity), s.From, s.To, fn)
		}
		return q.reader(p.target).Keys(ctx, p.target.ID, s.From, s.To, fn)
	}
	k := tierSpanKey{stream: p.target.ID, gen: p.gen, from: s.From, to: s.To}
	if !s.Tier && !p.target.Spec.WindowFinalAt(s.To, p.target.Watermark) {
		// Its keys change only with a commit: kept for the target's last
		// one (the dashboard's panels share the last hour's span).
		if p.target.LastCommit == 0 {
			return read(fn)
		}
		k.commit = p.target.LastCommit
	}
	if s.Tier {
		k.tier = s.Granularity
	}
	if keys, ok := q.tierKeys.get(k); ok {
		for _, key := range keys {
			if err := fn(key); err != nil {
				return err
			}
		}
		return nil
	}
	keys, cacheable := []string{}, true
	err := read(func(key string) error {
		if cacheable {
			if len(keys) < maxTierSpanKeys {
				keys = append(keys, key)
			} else {
				cacheable, keys = false, nil
			}
		}
		return fn(key)
	})
	if err == nil && cacheable {
		q.tierKeys.put(k, keys)
	}
	return err
}
