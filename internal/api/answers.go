package api

import (
	"container/list"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/sketchd/sketchd/internal/heapsize"
	"github.com/sketchd/sketchd/internal/query"
)

// answerCache keeps the rendered JSON of recent answers, so that the many
// clients of a dashboard asking the same question between two commits get
// the bytes of the first answer: no result copy, no render. The key is the
// querier's (query.Querier.AnswerKey: the stream, its last commit and
// committed watermark, the aligned geometry, where and group_by) and what
// rendering adds (renderKey); a commit changes every key, and the LRU
// forgets the old ones. An old answer is only served, marked stale, to a
// request that would otherwise wait for another's computation of the new
// one (stale, flight.go).
type answerCache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	ll       *list.List
	m        map[string]*list.Element
	// latest is each question's newest answer in ll (put with a question):
	// what a request waiting for a newer one may be served instead.
	latest map[string]*list.Element
}

type answerEntry struct {
	key      string
	body     []byte
	question string    // "" when put without one
	at       time.Time // when it was put
	size     int64     // answerSize
}

// answerEntryBytes is an entry's own heap: the entry, its list element,
// and its slots in m and latest.
var answerEntryBytes = heapsize.MapEntry(unsafe.Sizeof(answerEntry{}), unsafe.Sizeof("")+unsafe.Sizeof(&list.Element{})) +
	heapsize.Class(int64(unsafe.Sizeof(list.Element{}))) + heapsize.MapEntry(0, unsafe.Sizeof("")+unsafe.Sizeof(&list.Element{}))

// answerSize is the heap an answer holds in the cache: its key and
// question, the body's whole capacity (rendering grows it ahead), and the
// entry's own bytes.
func answerSize(key, question string, body []byte) int64 {
	return int64(len(key)+len(question)+cap(body)) + answerEntryBytes
}

func newAnswerCache(maxBytes int64) *answerCache {
	if maxBytes <= 0 {
		return nil
	}
	return &answerCache{maxBytes: maxBytes, ll: list.New(), m: map[string]*list.Element{}, latest: map[string]*list.Element{}}
}

func (c *answerCache) get(key string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*answerEntry).body, true
}

// put keeps body (not modified afterwards) unless it is larger than an
// eighth of the budget. With a question, it becomes that question's latest
// answer (stale).
func (c *answerCache) put(key, question string, body []byte) {
	if c == nil {
		return
	}
	size := answerSize(key, question, body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok || size > c.maxBytes/8 {
		return
	}
	e := c.ll.PushFront(&answerEntry{key: key, body: body, question: question, at: time.Now(), size: size})
	c.m[key] = e
	if question != "" {
		c.latest[question] = e
	}
	c.bytes += size
	for c.bytes > c.maxBytes {
		e := c.ll.Back()
		ae := e.Value.(*answerEntry)
		c.ll.Remove(e)
		delete(c.m, ae.key)
		if c.latest[ae.question] == e {
			delete(c.latest, ae.question)
		}
		c.bytes -= ae.size
	}
}

// stale returns the latest answer put for question, if it was put within
// maxAge.
func (c *answerCache) stale(question string, maxAge time.Duration) ([]byte, bool) {
	if c == nil || question == "" || maxAge <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.latest[question]
	if !ok {
		return nil, false
	}
	ae := e.Value.(*answerEntry)
	if time.Since(ae.at) > maxAge {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return ae.body, true
}

// answerKeyer is the part of *query.Querier the answer cache needs; a
// Querier without it is never cached.
type answerKeyer interface {
	AnswerKey(t query.Target, qu query.Query) (string, bool)
	QuestionKey(t query.Target, qu query.Query) (string, bool)
	MovingQuestionKey(t query.Target, qu query.Query) (string, bool)
}

// answerKeys returns the cache key of a query's rendered answer, or false:
// the querier's key for the result, and the request's query string, which
// holds every parameter rendering reads (kind parameters, omit_empty,
// order_by, ...); ?pretty is read from the context as marshalJSON does.
// The same parameters in another order are another key: a miss, never a
// wrong answer. question is the same for questionKey: what the answers of
// this question at other commits (and, for a range relative to now, other
// nows) are cached under; it is
// empty (never a stale answer) when the request says Cache-Control:
// no-cache (RFC 9111: no stored response without validation; an answer
// cached at the newest commit is valid, one of an earlier commit is not).
func (s *server) answerKeys(r *http.Request, t query.Target, qu query.Query, p *queryParams) (key, question string, ok bool) {
	ak, ok := s.querier.(answerKeyer)
	if !ok || s.answers == nil {
		return "", "", false
	}
	k, ok := ak.AnswerKey(t, qu)
	if !ok {
		return "", "", false
	}
	pretty, _ := r.Context().Value(prettyKey{}).(bool)
	suffix := fmt.Sprintf("\x00%t\x00%t\x00%s", p.step != 0, pretty, r.URL.RawQuery)
	if qk, ok := questionKey(ak, t, qu, p.moving); ok && !noCache(r) {
		question = qk + suffix
	}
	return k + suffix, question, true
}

// questionKey is the querier's key for the answers of one question at any
// commit. A range relative to now (moving) leaves its range out: the query
// string, in the suffix, is the question, so the answer of the minute
// before is a stale answer of this one while the new range's is computed.
// Why: when the clock enters a new pane, every question over "the last
// hour" asks for another range at once; with the range in the key none of
// them had an earlier answer, and each request computed its own while the
// others waited for the CPU (the load runner's dashboard: p99 57 ms in the
// 5 s after each minute began, 16 ms in the other seconds).
func questionKey(ak answerKeyer, t query.Target, qu query.Query, moving bool) (string, bool) {
	if moving {
		return ak.MovingQuestionKey(t, qu)
	}
	return ak.QuestionKey(t, qu)
}

// noCache reports whether the request's Cache-Control has no-cache.
func noCache(r *http.Request) bool {
	for _, v := range r.Header.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			if name, _, _ := strings.Cut(strings.TrimSpace(d), "="); strings.EqualFold(name, "no-cache") {
				return true
			}
		}
	}
	return false
}
