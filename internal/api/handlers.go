package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// writeJSON writes v with status.
func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := marshalJSON(r, v)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (s *server) livez(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds the Ready check.
const readyTimeout = 5 * time.Second

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		err := s.ready(ctx)
		cancel()
		if err != nil {
			writeProblem(w, r, newProblem(codeNotReady, err.Error()))
			return
		}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *server) listStreams(w http.ResponseWriter, r *http.Request) {
	if err := s.noParams(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.streams.List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Streams []streamJSON `json:"streams"`
	}{Streams: make([]streamJSON, 0, len(list))}
	for i := range list {
		out.Streams = append(out.Streams, newStreamJSON(&list[i]))
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// noParams rejects any query parameter (the first by name).
func (s *server) noParams(r *http.Request) error {
	v, err := s.queryValues(r)
	if err != nil {
		return err
	}
	if len(v) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(v))
	return paramError(names[0], "unknown parameter")
}

func (s *server) getStream(w http.ResponseWriter, r *http.Request) {
	if err := s.noParams(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.stream(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, newStreamJSON(&st))
}

// streamError is err of an operation on the stream called name, in the
// API's words: an unknown stream is `stream "x" not found` (the store's own
// error names the stream and its layer, so wrapping it again read
// `stream "x": stream "x": store: not found`); anything else is err under
// the stream's name.
func streamError(name string, err error) error {
	if errors.Is(err, sketchd.ErrNotFound) {
		return fmt.Errorf("stream %q %w", name, sketchd.ErrNotFound)
	}
	return fmt.Errorf("stream %q: %w", name, err)
}

// stream looks up the {stream} of the route.
func (s *server) stream(r *http.Request) (sketchd.StreamStatus, error) {
	name := chi.URLParam(r, "stream")
	st, err := s.streams.Get(r.Context(), name)
	if err != nil {
		return st, streamError(name, err)
	}
	return st, nil
}

func (s *server) createStream(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			s.writeError(w, r, &httpError{code: codeUnsupportedMedia,
				detail: "the body must be application/json, got " + strconv.Quote(ct)})
			return
		}
	}
	body, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	spec, err := sketchd.ParseStreamJSON(body)
	if err != nil {
		if len(fieldErrors(err)) == 0 {
			err = &bodyError{err}
		}
		s.writeError(w, r, err)
		return
	}
	if spec.Validate() == nil { // else Create lists every problem
		if err := CheckEmit(&spec); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	st, err := s.streams.Create(r.Context(), spec)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/streams/"+url.PathEscape(st.Spec.Name))
	s.writeJSON(w, r, http.StatusCreated, newStreamJSON(&st))
}

func (s *server) deleteStream(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "stream")
	opts, err := deleteOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.streams.Delete(r.Context(), name, opts); err != nil {
		s.writeError(w, r, streamError(name, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// target is what a query reads, as of the stream's last commit: answers
// are cached until the next one changes the store.
func target(st *sketchd.StreamStatus) query.Target { return query.TargetOf(st) }

func (s *server) keys(w http.ResponseWriter, r *http.Request) {
	v, err := s.queryValues(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkParams(v, epKeys, ""); err != nil {
		s.writeError(w, r, err)
		return
	}
	from, to, err := s.parseRange(v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := parseInt(v, "limit", min(defaultKeysLimit, s.limits.MaxKeys), 1, s.limits.MaxKeys)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.stream(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	where, err := s.parseWhere(v, &st.Spec)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	g := int64(st.Spec.Granularity)
	alignDefaultRange(v, &from, &to, g)
	from = sketchd.PaneStart(from, g) // the pane holding from counts
	t := target(&st)
	key, cacheable := s.keysAnswerKey(r, t, from, to, where)
	s.answerCached(w, r, key, "", cacheable, func(ctx context.Context) ([]byte, error) {
		return s.renderKeys(ctx, &st, t, from, to, where, limit)
	})
}

// keysAnswerKey is the answer-cache key of a key listing: the querier's
// key of a whole-range question over the same range and filters (its
// stream, last commit, committed watermark and generation: the key index
// changes only with a commit), under a prefix of its own, with the
// range as rendered, the request's query string and pretty flag (limit is
// in the query string).
// A listing is not served stale (no question key): it carries no as_of to
// say so.
func (s *server) keysAnswerKey(r *http.Request, t query.Target, from, to int64, where []query.Filter) (string, bool) {
	ak, ok := s.querier.(answerKeyer)
	if !ok || s.answers == nil {
		return "", false
	}
	k, ok := ak.AnswerKey(t, query.Query{From: from, To: to, Filters: where})
	if !ok {
		return "", false
	}
	pretty, _ := r.Context().Value(prettyKey{}).(bool)
	return fmt.Sprintf("keys\x00%s\x00%d\x00%d\x00%t\x00%s", k, from, to, pretty, r.URL.RawQuery), true
}

// renderKeys lists the keys of [from, to) that match where and renders the
// response body.
func (s *server) renderKeys(ctx context.Context, st *sketchd.StreamStatus, t query.Target, from, to int64, where []query.Filter, limit int) ([]byte, error) {
	keys, truncated, err := s.querier.KeysFiltered(ctx, t, from, to, where, limit)
	if err != nil {
		return nil, err
	}
	if keys == nil {
		keys = []map[string]string{}
	}
	dims := st.Spec.GroupBy
	if dims == nil {
		dims = []string{}
	}
	b, err := json.Marshal(keysJSON{
		Stream: st.Spec.Name, From: rfc3339(from), To: rfc3339(to),
		Dimensions: dims, Keys: keys, Truncated: truncated,
	})
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return append(indentIfPretty(ctx, b), '\n'), nil
}

type keysJSON struct {
	Stream     string              `json:"stream"`
	From       string              `json:"from"`
	To         string              `json:"to"`
	Dimensions []string            `json:"dimensions"`
	Keys       []map[string]string `json:"keys"`
	Truncated  bool                `json:"truncated"`
}

// prepare resolves the stream and aggregate of a query route and parses its
// parameters.
func (s *server) prepare(r *http.Request, ep endpoint) (sketchd.StreamStatus, queryParams, error) {
	st, err := s.stream(r)
	if err != nil {
		return st, queryParams{}, err
	}
	name := chi.URLParam(r, "aggregate")
	agg, ok := st.Spec.Aggregates[name]
	if !ok {
		return st, queryParams{}, fmt.Errorf("stream %q: %w %q", st.Spec.Name, query.ErrUnknownAggregate, name)
	}
	v, err := s.queryValues(r)
	if err != nil {
		return st, queryParams{}, err
	}
	p, err := s.parseQuery(v, ep, &st.Spec, agg)
	if err != nil {
		return st, p, err
	}
	alignDefaultRange(v, &p.from, &p.to, int64(st.Spec.Granularity))
	return st, p, s.checkSliding(&p, int64(st.Spec.Granularity))
}

func (s *server) query(w http.ResponseWriter, r *http.Request) {
	st, p, err := s.prepare(r, epQuery)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t, qu := target(&st), query.Query{
		Aggregate: chi.URLParam(r, "aggregate"),
		From:      p.from, To: p.to,
		Filters: p.filters, GroupBy: p.groupBy,
		Step: p.step, Window: p.window,
	}
	key, question, cacheable := s.answerKeys(r, t, qu, &p)
	s.answerCached(w, r, key, question, cacheable, func(ctx context.Context) ([]byte, error) {
		return s.renderQuery(ctx, &st, t, qu, &p)
	})
}

// renderQuery computes qu's answer and renders it as the response body.
func (s *server) renderQuery(ctx context.Context, st *sketchd.StreamStatus, t query.Target, qu query.Query, p *queryParams) ([]byte, error) {
	res, err := s.queryRead(ctx, t, qu)
	if err != nil {
		return nil, err
	}
	var ranking *query.Ranking
	if p.order != nil {
		if ranking, err = query.RankGroups(res, *p.order); err != nil {
			return nil, err
		}
	}
	out, err := renderResult(st, res, p, s.windows)
	if err != nil {
		return nil, err
	}
	if ranking != nil {
		out.Ranking = renderRanking(ranking)
	}
	return encodeResult(ctx, out)
}

// writeBody writes a 200 JSON answer.
func writeBody(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// Headers of the sketch endpoint.
const (
	hdrKind      = "Sketchd-Kind"
	hdrFrom      = "Sketchd-From"
	hdrTo        = "Sketchd-To"
	hdrEvents    = "Sketchd-Events"
	hdrFinal     = "Sketchd-Final"
	hdrKeys      = "Sketchd-Keys"
	hdrPanes     = "Sketchd-Panes"
	hdrWatermark = "Sketchd-Watermark"
	// hdrRetainedFrom and hdrComplete: retained_from and complete of a
	// query's answer, only when the range starts before what retention
	// keeps (retainedOf).
	hdrRetainedFrom = "Sketchd-Retained-From"
	hdrComplete     = "Sketchd-Complete"
)

// sketch answers the merged sketch of the whole range and where filter in
// the sketch wire format, for federation.
func (s *server) sketch(w http.ResponseWriter, r *http.Request) {
	st, p, err := s.prepare(r, epSketch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.querier.Query(r.Context(), target(&st), query.Query{
		Aggregate: chi.URLParam(r, "aggregate"),
		From:      p.from, To: p.to, Filters: p.filters,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(res.Groups) != 1 || len(res.Groups[0].Windows) != 1 {
		s.writeError(w, r, fmt.Errorf("sketch query returned %d groups, want one window of one group", len(res.Groups)))
		return
	}
	win := &res.Groups[0].Windows[0]
	b, err := encodeExport(win.Sketch, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set(hdrKind, string(res.Kind))
	h.Set(hdrFrom, rfc3339(win.Start))
	h.Set(hdrTo, rfc3339(win.End))
	h.Set(hdrEvents, strconv.FormatUint(win.Events, 10))
	h.Set(hdrFinal, strconv.FormatBool(win.Final))
	h.Set(hdrKeys, strconv.Itoa(res.Keys))
	h.Set(hdrPanes, strconv.Itoa(win.Panes))
	if wm := timePtr(res.Watermark); wm != nil {
		h.Set(hdrWatermark, *wm)
	}
	from, complete := retainedOf(res, win)
	if from != nil {
		h.Set(hdrRetainedFrom, *from)
	}
	if complete != nil {
		h.Set(hdrComplete, "false")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
