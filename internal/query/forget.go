package query

import (
	"encoding/binary"
	"sync"
)

// generations count, per stream, the changes to its stored panes that do
// not come with a commit (an admin's import into a final pane): the caches
// hold final panes and results per commit, so such a change must start a
// new generation, which every cache key includes. Entries of older
// generations are never looked up again and age out of the LRUs; a query
// that was running across the change caches under the old generation.
type generations struct {
	mu sync.Mutex
	m  map[uint32]uint64
}

func (g *generations) get(id uint32) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[id]
}

// Forget makes q forget what it cached of stream id: the next queries read
// the store again. Call it after changing a stream's stored panes outside
// a commit.
func (q *Querier) Forget(id uint32) {
	q.gens.mu.Lock()
	defer q.gens.mu.Unlock()
	if q.gens.m == nil {
		q.gens.m = map[uint32]uint64{}
	}
	q.gens.m[id]++
	q.tails.forget(id)
}

// withGeneration appends the stream's generation to a result key.
func withGeneration(key string, gen uint64) string {
	return string(binary.AppendUvarint([]byte(key), gen))
}
