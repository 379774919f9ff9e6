package store

import (
	"bytes"
	"cmp"
	"context"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/sketchd/sketchd"
)

// The open family's panes of many keys, read in one walk. A scan of the
// last minutes of every key of a stream (each question's open tail, once
// per commit: internal/query's tail memo) sought each key in open, and
// Badger's Iterator.Seek drops the iterator's current item without
// recycling it, with the buffers its value was copied into (Iterator.fill
// and Item.Value each copy a whole inline value): every key's first open
// pane was copied into new memory twice. In the load runner's k6 phase
// (a 20 s allocation profile of sketchd at 84c93d8) those copies were
// 170 MB of the 1,126 MB the process allocated, the largest part of what
// paced its GC cycles. A walk visits the keys in the family's order and
// steps to the next one with Next, which recycles the item, seeking only
// when the next key is more than openWalkSkip items on. It copies each
// pane it keeps once, into memory of the pane's size that the record the
// scan gives out then owns (a scan of every sketch does not copy it
// again), and the scan gives them out key by key in the caller's order as
// before. (One arena for a scan's panes, pooled, grew to 9-18 MB in the
// runner and was allocated afresh as often as not.)

// openWalkMin is the number of keys from which scanPanes reads the open
// panes with openWalk (fewer: a seek per key, openPanes), and
// openWalkParts the most partitions the range may span for it. A var so
// that the tests can compare both ways on the same data.
var openWalkMin = 16

const (
	openWalkParts = 3
	// openWalkSkip bounds the items a walk steps over (each copied by
	// Badger, into recycled memory) to reach the next key before it seeks
	// instead: a stream's keys that are not asked for cost at most this
	// many copies per key asked for.
	openWalkSkip = 8
)

// openWalk returns, for each of keys, the panes that open holds with
// lo <= start < to, by start ascending, each key and value copied into
// memory of its own (owned: it is a Prefix iterator of sp.pane over
// open's snapshot). Keys without an open pane in range are absent from
// the map.
func openWalk(ctx context.Context, it *badger.Iterator, seek *[]byte, sp space, keys []string, lo, to int64, reuse reuseFunc) (map[string][]openPane, error) {
	order := walkOrder(keys)
	out := make(map[string][]openPane, len(order))
	w := sp.width
	pFirst, pLast := partitionOf(lo, w), partitionOf(to-1, w)
	for p := pFirst; p <= pLast; p++ {
		plo := lo
		if p > pFirst {
			plo = partitionStart(p, w)
		}
		positioned := false
		for _, key := range order {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			*seek = sp.appendPaneKey((*seek)[:0], p, key, plo)
			if !positioned || !stepTo(it, *seek) {
				it.Seek(*seek)
				positioned = true
			}
			if !it.Valid() {
				return out, nil // nothing further in this stream
			}
			if err := copyKeyPanes(ctx, it, sp, (*seek)[:len(*seek)-8], to, key, reuse, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// walkOrder returns keys without duplicates (and without those too long
// to be stored) in the order of their pane keys within a partition: by
// length (the key's u16 length comes first), then bytes.
func walkOrder(keys []string) []string {
	order := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return len(k) > sketchd.MaxKeyLen })
	slices.SortFunc(order, func(a, b string) int {
		if c := cmp.Compare(len(a), len(b)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return slices.Compact(order)
}

// stepTo advances it with Next to the first item at or after target, by
// at most openWalkSkip steps, and reports whether it got there (or past
// the last item).
func stepTo(it *badger.Iterator, target []byte) bool {
	for n := 0; it.Valid(); n++ {
		if bytes.Compare(it.Item().Key(), target) >= 0 {
			return true
		}
		if n == openWalkSkip {
			return false
		}
		it.Next()
	}
	return true
}

// copyKeyPanes copies the panes at it that have the pane-key prefix of
// key and start before to and adds them to out[key], leaving it on the
// first item after them; a pane whose value still holds the record reuse
// gives for it is added as that record, not copied.
func copyKeyPanes(ctx context.Context, it *badger.Iterator, sp space, prefix []byte, to int64, key string, reuse reuseFunc, out map[string][]openPane) error {
	_, err := walkRun(ctx, it, sp, prefix, to, func(item *badger.Item, k []byte, start int64) error {
		return item.Value(func(v []byte) error {
			if rec := reused(reuse, key, start, v); rec != nil {
				out[key] = append(out[key], openPane{start: start, reused: rec, size: len(v)})
				return nil
			}
			b := make([]byte, len(k)+len(v))
			copy(b, k)
			copy(b[len(k):], v)
			out[key] = append(out[key], openPane{key: b[:len(k):len(k)], start: start, val: b[len(k):], owned: true})
			return nil
		})
	})
	return err
}

// reused returns the record reuse gives for key's pane at start when v,
// the pane's stored value, still holds it; else nil (reuse nil: none).
func reused(reuse reuseFunc, key string, start int64, v []byte) *sketchd.PaneRecord {
	if reuse == nil {
		return nil
	}
	if rec := reuse(key, start); rec != nil && paneEquals(v, rec) {
		return rec
	}
	return nil
}
