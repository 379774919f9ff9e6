package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/sketch"
)

// PaneUpdater merges one aggregate's import into one stored pane under
// an import id, in one transaction with the id's record (*store.DB
// implements it; see its UpdatePane for what an id names).
type PaneUpdater interface {
	UpdatePane(ctx context.Context, streamID uint32, key string, start int64, imp store.Import, edit func(p *sketchd.PaneRecord, exists bool) error) (store.ImportResult, error)
	// UpdateFrom is the first pane start UpdatePane accepts: the start of
	// the retained range reads return.
	UpdateFrom(streamID uint32) int64
}

var _ PaneUpdater = (*store.DB)(nil)

// cacheForgetter is a Querier that caches final panes and results, which an
// import changes: it must forget the stream's.
type cacheForgetter interface{ Forget(streamID uint32) }

// Import formats.
const (
	formatSketchd = "sketchd" // the sketch wire format (docs/format-sketches.md)
	formatTDigest = "tdigest" // the t-digest exchange format (sketch.DecodeTDigestExchange)
)

// importParams is a parsed import request.
type importParams struct {
	key    string            // encoded group-by tuple
	keyMap map[string]string // the same, by dimension
	start  int64             // pane start
	id     string
	format string
}

type importJSON struct {
	Stream    string            `json:"stream"`
	Aggregate string            `json:"aggregate"`
	Key       map[string]string `json:"key"`
	PaneStart string            `json:"pane_start"`
	PaneEnd   string            `json:"pane_end"`
	ID        string            `json:"id"`
	Format    string            `json:"format"`
	// Applied is false when this import was applied before (a retry):
	// nothing changed.
	Applied bool `json:"applied"`
	// Count is the imported sketch's count (values or items added).
	Count uint64 `json:"count"`
	// EventsAdded is how much the pane's events grew: the count less the
	// largest count imported under the id into the pane before (0 for a
	// retry).
	EventsAdded uint64 `json:"events_added"`
}

// importSketch merges a posted sketch into one pane of an aggregate:
//
//	POST /v1/streams/{stream}/aggregates/{aggregate}/import?key=country=de&key=device=mobile&pane=2026-01-02T15:04:00Z&id=batch-17[&format=tdigest]
//
// The body is the sketch: sketchd's wire format (format=sketchd, the
// default; the aggregate's kind and parameters) or, for a tdigest
// aggregate, the t-digest exchange format (format=tdigest). The pane is the
// one containing pane=; it must be final at the committed watermark (until
// then ingestion owns it: 409 pane_open) and within the retained range
// that reads return (older than the stream's retention: 422 pane_expired,
// since it would never be read). The sketch merges into
// the pane's sketch of that aggregate as panes merge (a new pane is created
// with empty sketches of the other aggregates), and the id's record is
// stored in the same transaction (store.UpdatePane). An id names one
// source pane's import into one pane, its aggregates one POST each: the
// pane's event count grows by how much the sketch's count exceeds the
// largest count imported under the id before (so a pane moved whole counts
// its events once); a retried POST (the same id, aggregate, pane and body)
// changes nothing and answers applied: false; the same id into another
// pane, or of the same aggregate with another body, is 409
// import_id_conflict.
func (s *server) importSketch(w http.ResponseWriter, r *http.Request) {
	if s.panes == nil {
		s.writeError(w, r, &httpError{code: codeUnavailable, detail: "this server has no store to import into"})
		return
	}
	st, err := s.stream(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	name := chi.URLParam(r, "aggregate")
	ai, ok := st.Spec.Slot(name)
	if !ok {
		s.writeError(w, r, fmt.Errorf("stream %q: %w %q", st.Spec.Name, query.ErrUnknownAggregate, name))
		return
	}
	agg := st.Spec.Aggregates[name]
	v, err := s.queryValues(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ip, err := parseImport(v, &st.Spec, s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !st.Spec.PaneFinalAt(ip.start, st.CommittedWatermark) {
		s.writeError(w, r, &httpError{code: codePaneOpen, detail: fmt.Sprintf(
			"the pane starting %s is not final at the committed watermark: ingestion still owns it; import into final panes", rfc3339(ip.start))})
		return
	}
	// Checked before the body is read; UpdatePane checks it again.
	if from := s.panes.UpdateFrom(importID(&st)); ip.start < from {
		s.writeError(w, r, &store.ExpiredError{Start: ip.start, From: from})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.writeError(w, r, err) // *http.MaxBytesError: 413
		return
	}
	imp, err := decodeImport(body, ip.format, agg)
	if err != nil {
		s.writeError(w, r, &bodyError{err})
		return
	}
	in := store.Import{ID: ip.id, Aggregate: name, Count: imp.Count(), Digest: importDigest(ip.format, body)}
	res, err := s.panes.UpdatePane(r.Context(), importID(&st), ip.key, ip.start, in, func(p *sketchd.PaneRecord, exists bool) error {
		return mergeImport(p, exists, &st.Spec, ai, imp)
	})
	if errors.Is(err, store.ErrInvalid) {
		err = &bodyError{err}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if f, ok := s.querier.(cacheForgetter); ok && res.Applied {
		f.Forget(st.ID)
	}
	g := int64(st.Spec.Granularity)
	s.writeJSON(w, r, http.StatusOK, importJSON{
		Stream: st.Spec.Name, Aggregate: name, Key: ip.keyMap,
		PaneStart: rfc3339(ip.start), PaneEnd: rfc3339(ip.start + g),
		ID: ip.id, Format: ip.format, Applied: res.Applied, Count: imp.Count(), EventsAdded: res.EventsAdded,
	})
}

// importDigest identifies an import's bytes: the SHA-256 of the format,
// a zero byte and the body. A retry sends the same; another body (or the
// same bytes read in another format) is another import.
func importDigest(format string, body []byte) [store.DigestLen]byte {
	h := sha256.New()
	h.Write([]byte(format))
	h.Write([]byte{0})
	h.Write(body)
	var d [store.DigestLen]byte
	copy(d[:], h.Sum(nil))
	return d
}

// parseImport reads key (dimension=value, each group-by dimension once),
// pane, id and format.
func parseImport(v url.Values, spec *sketchd.Stream, now time.Time) (importParams, error) {
	p := importParams{format: formatSketchd, keyMap: map[string]string{}}
	for k, vals := range v {
		switch k {
		case "key":
		case "pane", "id", "format":
			if len(vals) != 1 {
				return p, paramError(k, "given %d times; give it once", len(vals))
			}
		default:
			return p, paramError(k, "unknown parameter: import takes key, pane, id and format")
		}
	}
	for _, kv := range v["key"] {
		d, val, ok := strings.Cut(kv, "=")
		if !ok || !slices.Contains(spec.GroupBy, d) {
			return p, paramError("key", "want dimension=value with a dimension of %v, got %q", spec.GroupBy, kv)
		}
		if _, dup := p.keyMap[d]; dup {
			return p, paramError("key", "dimension %q given twice", d)
		}
		p.keyMap[d] = val
	}
	vals := make([]string, len(spec.GroupBy))
	for i, d := range spec.GroupBy {
		val, ok := p.keyMap[d]
		if !ok {
			return p, paramError("key", "dimension %q missing: give every group-by dimension (%v) once", d, spec.GroupBy)
		}
		vals[i] = val
	}
	p.key = sketchd.EncodeKey(vals...)
	t, ok, err := parseTime(v, "pane", now)
	if err != nil {
		return p, err
	}
	if !ok {
		return p, paramError("pane", "required: a time inside the pane to import into")
	}
	p.start = sketchd.PaneStart(t, int64(spec.Granularity))
	p.id = v.Get("id")
	if p.id == "" || len(p.id) > store.MaxUpdateIDLen {
		return p, paramError("id", "required: 1 to %d bytes that name this import, so that a retry applies it once", store.MaxUpdateIDLen)
	}
	if f := v.Get("format"); f != "" {
		if f != formatSketchd && f != formatTDigest {
			return p, paramError("format", "want %s or %s, got %q", formatSketchd, formatTDigest, f)
		}
		p.format = f
	}
	return p, nil
}

// decodeImport decodes the body into a sketch of the aggregate's kind and
// parameters.
func decodeImport(body []byte, format string, agg sketchd.Aggregate) (sketch.Sketch, error) {
	want, err := agg.SketchParams()
	if err != nil {
		return nil, err
	}
	if format == formatTDigest {
		if want.Kind != sketch.KindTDigest {
			return nil, fmt.Errorf("format tdigest imports into a tdigest aggregate, this one is %s", agg.Sketch)
		}
		return sketch.DecodeTDigestExchange(body, want.Compression)
	}
	sk, err := sketchd.DecodeSketch(body, want.Kind)
	if err != nil {
		return nil, err
	}
	if sk.Params() != want {
		return nil, fmt.Errorf("the sketch's parameters %s do not match the aggregate's %s", describeParams(sk.Params()), describeParams(want))
	}
	return sk, nil
}

// describeParams names a kind's parameters: "hll precision=12".
func describeParams(p sketch.Params) string {
	var b strings.Builder
	b.WriteString(p.Kind.String())
	if k, ok := p.Kind.Info(); ok {
		for _, q := range k.Params() {
			fmt.Fprintf(&b, " %s=%g", q.Name, q.Get(p))
		}
	}
	if p.Weighted {
		b.WriteString(" weighted")
	}
	return b.String()
}

// mergeImport merges imp into slot ai of the pane p (new when !exists),
// laid out by spec.SlotNames: a pane written before later aggregates were
// added is extended with empty slots. The pane's events are the store's
// to raise (store.UpdatePane).
func mergeImport(p *sketchd.PaneRecord, exists bool, spec *sketchd.Stream, ai int, imp sketch.Sketch) error {
	slots := spec.SlotNames()
	if !exists {
		p.Final = true
		p.Sketches = nil
	}
	if len(p.Sketches) > len(slots) {
		return fmt.Errorf("stored pane holds %d sketches, the stream's layout %d slots: %w", len(p.Sketches), len(slots), sketchd.ErrCorrupt)
	}
	for i := len(p.Sketches); i < len(slots); i++ {
		var blob []byte
		if slots[i] != "" {
			sp, err := spec.Aggregates[slots[i]].SketchParams()
			if err != nil {
				return err
			}
			sk, err := sketch.New(sp)
			if err != nil {
				return err
			}
			if blob, err = sk.AppendBinary(nil); err != nil {
				return err
			}
		}
		p.Sketches = append(p.Sketches, blob)
	}
	if len(p.Sketches[ai]) == 0 {
		sp, err := spec.Aggregates[slots[ai]].SketchParams()
		if err != nil {
			return err
		}
		empty, err := sketch.New(sp)
		if err != nil {
			return err
		}
		if p.Sketches[ai], err = empty.AppendBinary(nil); err != nil {
			return err
		}
	}
	cur, err := sketchd.DecodeSketch(p.Sketches[ai], imp.Kind())
	if err != nil {
		return err
	}
	if err := cur.Merge(imp); err != nil {
		return &bodyError{err}
	}
	if p.Sketches[ai], err = cur.AppendBinary(nil); err != nil {
		return err
	}
	return nil
}

// encodeExport encodes the sketch endpoint's answer in the format= of the
// request: sketchd's wire format (the default) or, for a t-digest, the
// t-digest exchange format (format=tdigest).
func encodeExport(sk sketch.Sketch, r *http.Request) ([]byte, error) {
	var format string
	if vals := r.URL.Query()["format"]; len(vals) > 0 {
		if len(vals) > 1 {
			return nil, paramError("format", "given %d times; give it once", len(vals))
		}
		format = vals[0]
	}
	switch format {
	case "", formatSketchd:
		b, err := sk.AppendBinary(nil)
		if err != nil {
			return nil, fmt.Errorf("encode sketch: %w", err)
		}
		return b, nil
	case formatTDigest:
		td, ok := sk.(*sketch.TDigest)
		if !ok {
			return nil, paramError("format", "tdigest exports a tdigest aggregate, this one is %s", sk.Kind())
		}
		b, err := sketch.AppendTDigestExchange(nil, td)
		if err != nil {
			return nil, fmt.Errorf("encode sketch: %w", err)
		}
		return b, nil
	}
	return nil, paramError("format", "want %s or %s, got %q", formatSketchd, formatTDigest, format)
}

// importID is the store ID an import writes to: the stream's, or its first
// partition's on a partitioned stream (queries merge the partitions).
func importID(st *sketchd.StreamStatus) uint32 {
	if len(st.Partitions) > 0 {
		return st.Partitions[0]
	}
	return st.ID
}
