package query

// Partitioned streams. Each partition of a stream stores its panes under
// its own ID (docs/scale-out.md §2.1), and one key's pane of one start may
// exist in several partitions. The querier reads such a stream through
// partitionReader, which makes the partitions look like one stream: keys
// are the union of the partitions' key indexes, in key order, and the panes
// of one key and start are merged into one record before the plan sees
// them. Every cache above (decoded panes, rollup blocks, windows, results)
// then holds whole-stream values, exactly as for an unpartitioned stream.
// The cost is N index scans per key range, N pane scans per read, and a
// decode-merge-encode of every aggregate of a pane present in more than one
// partition.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

// reader returns what reads t's panes: q.r, or a partitionReader over its
// partitions.
func (q *Querier) reader(t Target) PaneReader {
	if len(t.Partitions) == 0 {
		return q.r
	}
	return partitionReader{r: q.r, ids: t.Partitions}
}

// partitionReader reads the partitions ids of one stream as one stream. The
// streamID its methods get is ignored.
type partitionReader struct {
	r   PaneReader
	ids []uint32
}

// scanChunk is how many keys one merged read takes at a time: the panes of
// a chunk are held until every partition has been read.
const scanChunk = 64

// Keys calls fn once for each key with a pane in [from, to) in any
// partition, in key order.
func (pr partitionReader) Keys(ctx context.Context, _ uint32, from, to int64, fn func(key string) error) error {
	var keys []string
	seen := map[string]bool{}
	for _, id := range pr.ids {
		err := pr.r.Keys(ctx, id, from, to, func(k string) error {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	slices.SortFunc(keys, strings.Compare)
	for _, k := range keys {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// ScanPanes calls fn for each pane of keys starting in [from, to), merged
// over the partitions: the panes of a key consecutively, in start order.
func (pr partitionReader) ScanPanes(ctx context.Context, _ uint32, keys []string, from, to int64, fn func(sketchd.PaneRecord) error) error {
	for lo := 0; lo < len(keys); lo += scanChunk {
		chunk := keys[lo:min(lo+scanChunk, len(keys))]
		byKey := make(map[string][]sketchd.PaneRecord, len(chunk))
		for _, id := range pr.ids {
			err := pr.r.ScanPanes(ctx, id, chunk, from, to, func(r sketchd.PaneRecord) error {
				byKey[r.Key] = append(byKey[r.Key], r)
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, k := range chunk {
			if err := emitMerged(byKey[k], fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// emitMerged sorts one key's panes of every partition by start (stable:
// partition order within a start) and gives fn one record per start.
func emitMerged(recs []sketchd.PaneRecord, fn func(sketchd.PaneRecord) error) error {
	slices.SortStableFunc(recs, func(a, b sketchd.PaneRecord) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].Start == recs[i].Start {
			j++
		}
		r, err := mergePanes(recs[i:j])
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// mergePanes merges the records of one key and start: events add up, the
// pane is final when every part is, and each aggregate's sketches merge in
// partition order.
func mergePanes(recs []sketchd.PaneRecord) (sketchd.PaneRecord, error) {
	out := recs[0]
	if len(recs) == 1 {
		return out, nil
	}
	out.Sketches = make([][]byte, len(recs[0].Sketches))
	for _, r := range recs[1:] {
		out.Events += r.Events
		out.Final = out.Final && r.Final
		out.Applied = max(out.Applied, r.Applied)
		if len(r.Sketches) != len(out.Sketches) {
			return out, fmt.Errorf("pane %d of key %q: partitions hold %d and %d sketches: %w", out.Start, out.Key, len(out.Sketches), len(r.Sketches), sketch.ErrCorrupt)
		}
	}
	for ai := range out.Sketches {
		acc, err := sketch.Decode(recs[0].Sketches[ai])
		if err != nil {
			return out, fmt.Errorf("pane %d of key %q: %w", out.Start, out.Key, err)
		}
		for _, r := range recs[1:] {
			s, err := sketch.Decode(r.Sketches[ai])
			if err != nil {
				return out, fmt.Errorf("pane %d of key %q: %w", out.Start, out.Key, err)
			}
			if err := acc.Merge(s); err != nil {
				return out, fmt.Errorf("pane %d of key %q: %w", out.Start, out.Key, err)
			}
		}
		if out.Sketches[ai], err = acc.AppendBinary(nil); err != nil {
			return out, err
		}
	}
	return out, nil
}
