package api

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/sketchd/sketchd/internal/query"
)

// A final window never changes, so its JSON is rendered once: a window of
// a shared result (query.Querier.QueryShared) that came from the window
// cache has a CacheID naming it, and its rendered bytes are kept under
// that id and the parameters rendering reads (renderParamsKey). After a
// commit, a repeated question then renders only the windows that were not
// final, and splices the others' bytes. The memo is an answerCache of half
// of Limits.AnswerCacheBytes.

// renderWindowMemo renders w as JSON, from memo when it was rendered
// before with the same parameters.
func renderWindowMemo(w *query.Window, p *queryParams, memo *answerCache, kp string) (json.RawMessage, error) {
	// An incomplete window is rendered each time: CacheID names its data,
	// not whether retention has passed it since.
	cacheable := memo != nil && w.CacheID != 0 && w.Final && !w.Incomplete
	var key string
	if cacheable {
		key = kp + strconv.FormatUint(w.CacheID, 36)
		if b, ok := memo.get(key); ok {
			return b, nil
		}
	}
	wj, err := renderWindow(w, p)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(wj)
	if err != nil {
		return nil, fmt.Errorf("encode window: %w", err)
	}
	if cacheable {
		memo.put(key, "", b)
	}
	return b, nil
}

// renderParamsKey names the parameters that rendering a window reads (its
// kind's: quantiles, cdf, ranks, trims, top, items, n, seed), so that two
// requests rendering the same window alike share its bytes.
func renderParamsKey(p *queryParams) string {
	seed := "-"
	if p.seed != nil {
		seed = strconv.FormatUint(*p.seed, 10)
	}
	return fmt.Sprintf("%v|%v|%v|%v|%d|%q|%d|%s|", p.q, p.cdf, p.rank, p.trim, p.top, p.items, p.n, seed)
}
