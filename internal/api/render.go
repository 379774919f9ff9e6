package api

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/sketch"
)

// rfc3339 formats unix ns in UTC with as many fractional digits as needed.
func rfc3339(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// timePtr formats a live or committed time, or nil when it is not a time
// yet (sketchd.NoTime before the first event, or saturated arithmetic on
// it).
func timePtr(ns int64) *string {
	if ns < minTime || ns > maxTime {
		return nil
	}
	s := rfc3339(ns)
	return &s
}

// wallPtr formats a wall-clock time, or nil for the zero time.
func wallPtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// num returns x, or nil (JSON null) when x is NaN or infinite.
func num(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// streamJSON is a stream's spec and live state as the API shows it: times
// in RFC 3339 (null before the first event) rather than unix ns.
type streamJSON struct {
	Name               string                  `json:"name"`
	ID                 uint32                  `json:"id"`
	State              string                  `json:"state"`
	Error              string                  `json:"error,omitempty"`
	Alters             []sketchd.Alteration    `json:"alters,omitempty"`
	Backfill           *sketchd.BackfillStatus `json:"backfill,omitempty"`
	Created            *string                 `json:"created"`
	Watermark          *string                 `json:"watermark"`
	MaxEventTime       *string                 `json:"max_event_time"`
	CommittedWatermark *string                 `json:"committed_watermark"`
	LastCommit         *string                 `json:"last_commit"`
	Counters           sketchd.Counters        `json:"counters"`
	OpenPanes          int64                   `json:"open_panes"`
	EvictedEarly       uint64                  `json:"evicted_early"`
	Dropped            uint64                  `json:"dropped"`
	Pending            uint64                  `json:"pending"`
	AckFloor           uint64                  `json:"ack_floor"`
	Rollups            []rollupJSON            `json:"rollups,omitempty"`
	Emit               []emitStatusJSON        `json:"emit,omitempty"`
	// Partitions: cluster mode only (partitions.go).
	Partitions *partitionsJSON `json:"partitions,omitempty"`
	Spec       sketchd.Stream  `json:"spec"`
}

func newStreamJSON(st *sketchd.StreamStatus) streamJSON {
	c := st.Counters
	if c.Invalid == nil {
		c.Invalid = map[string]uint64{}
	}
	spec := st.Spec
	if spec.GroupBy == nil {
		spec.GroupBy = []string{}
	}
	return streamJSON{
		Name: st.Spec.Name, ID: st.ID, State: st.State, Error: st.Error, Alters: st.Alters, Backfill: st.Backfill,
		Created:            wallPtr(st.Created),
		Watermark:          timePtr(st.Watermark),
		MaxEventTime:       timePtr(st.MaxEventTime),
		CommittedWatermark: timePtr(st.CommittedWatermark),
		LastCommit:         wallPtr(st.LastCommit),
		Counters:           c,
		OpenPanes:          st.OpenPanes,
		EvictedEarly:       st.EvictedEarly,
		Dropped:            st.Dropped,
		Pending:            st.Pending,
		AckFloor:           st.AckFloor,
		Rollups:            renderRollups(st.Rollups),
		Emit:               renderEmitStatus(st.Emit),
		Partitions:         statusPartitions(st),
		Spec:               spec,
	}
}

// asOfNote explains what the freshness members mean.
const asOfNote = "answers read the store as of the last checkpoint (last_commit); panes still open are answered as of that flush, and windows with final=false may still change"

type resultJSON struct {
	Stream    string     `json:"stream"`
	Aggregate string     `json:"aggregate"`
	Kind      string     `json:"kind"`
	Params    paramsJSON `json:"params"`
	From      string     `json:"from"`
	To        string     `json:"to"`
	// RetainedFrom is set when the range starts before the first pane
	// the stream's retention still keeps (query.Result.RetainedFrom).
	RetainedFrom *string  `json:"retained_from,omitempty"`
	Step         *string  `json:"step"`
	Window       *string  `json:"window"`
	Watermark    *string  `json:"watermark"`
	AsOf         asOfJSON `json:"as_of"`
	// Partitions says which partitions the answer covers (partitions.go).
	Partitions partitionsJSON `json:"partitions"`
	Keys       int            `json:"keys"`
	Panes      int            `json:"panes"`
	// Resolution says which resolution served each part of the range.
	Resolution []resolutionJSON `json:"resolution"`
	Groups     []groupJSON      `json:"groups"`
	// Ranking is set with order_by: how the groups were ranked and cut.
	Ranking *rankingJSON `json:"ranking,omitempty"`
}

type asOfJSON struct {
	LastCommit *string `json:"last_commit"`
	Note       string  `json:"note"`
}

type paramsJSON struct {
	Field       string  `json:"field,omitempty"`
	Precision   int     `json:"precision,omitempty"`
	Epsilon     float64 `json:"epsilon,omitempty"`
	Delta       float64 `json:"delta,omitempty"`
	TopK        int     `json:"top_k,omitempty"`
	Compression float64 `json:"compression,omitempty"`
	Size        int     `json:"size,omitempty"`
	Weighted    bool    `json:"weighted,omitempty"`

	NominalEntries   int     `json:"nominal_entries,omitempty"`
	RelativeAccuracy float64 `json:"relative_accuracy,omitempty"`
}

type groupJSON struct {
	Key     map[string]string `json:"key"`
	Windows []json.RawMessage `json:"windows"` // each a windowJSON (winmemo.go)
}

// windowJSON is one window; its kind's answer members appear inline.
type windowJSON struct {
	Start string `json:"start"`
	End   string `json:"end"`
	Final bool   `json:"final"`
	// Complete is false, and only then present, for a window that lies
	// partly or wholly in an expired part of the range (query.Window's
	// Incomplete): its events there are no longer kept.
	Complete *bool  `json:"complete,omitempty"`
	Events   uint64 `json:"events"`
	Panes    int    `json:"panes"`
	answers
}

func renderParams(a sketchd.Aggregate) paramsJSON {
	a.Normalize()
	return paramsJSON{
		Field: a.Field, Precision: a.Precision, Epsilon: a.Epsilon, Delta: a.Delta,
		TopK: a.TopK, Compression: a.Compression, Size: a.Size, Weighted: a.Weight != "",
		NominalEntries: a.NominalEntries, RelativeAccuracy: a.RelativeAccuracy,
	}
}

func durPtr(ns int64) *string {
	s := sketchd.Duration(ns).String()
	return &s
}

// renderResult turns a query result into its JSON answer. The final
// windows of a shared result are rendered once and kept in memo (nil: no
// memo).
func renderResult(st *sketchd.StreamStatus, res *query.Result, p *queryParams, memo *answerCache) (*resultJSON, error) {
	out := &resultJSON{
		Stream:     st.Spec.Name,
		Aggregate:  res.Aggregate,
		Kind:       string(res.Kind),
		Params:     renderParams(st.Spec.Aggregates[res.Aggregate]),
		From:       rfc3339(res.From),
		To:         rfc3339(res.To),
		Watermark:  timePtr(res.Watermark),
		AsOf:       asOfJSON{LastCommit: wallPtr(st.LastCommit), Note: asOfNote},
		Partitions: renderPartitions(st),
		Keys:       res.Keys,
		Panes:      res.Panes,
		Resolution: renderResolution(res.Resolution),
		Groups:     make([]groupJSON, 0, len(res.Groups)),
	}
	out.RetainedFrom, _ = retainedOf(res, nil)
	if p.step != 0 {
		out.Step, out.Window = durPtr(res.Step), durPtr(res.Window)
	}
	kp := renderParamsKey(p)
	for _, g := range res.Groups {
		gj := groupJSON{Key: g.Key, Windows: make([]json.RawMessage, 0, len(g.Windows))}
		if gj.Key == nil {
			gj.Key = map[string]string{}
		}
		for i := range g.Windows {
			if omitWindow(&g.Windows[i], p) {
				continue
			}
			wj, err := renderWindowMemo(&g.Windows[i], p, memo, kp)
			if err != nil {
				return nil, err
			}
			gj.Windows = append(gj.Windows, wj)
		}
		if p.omitEmpty && len(gj.Windows) == 0 {
			continue
		}
		out.Groups = append(out.Groups, gj)
	}
	return out, nil
}

// retainedOf is what an answer says of retention: retained_from, the
// first pane start the stream's own panes are kept for, when res's range
// starts before it; and complete: false when window w lies partly or
// wholly in a part of the range no retained pane serves (the
// resolution's "expired" parts). Both nil otherwise (and for a nil res or
// w), so an answer over a retained range has neither.
func retainedOf(res *query.Result, w *query.Window) (retainedFrom *string, complete *bool) {
	if res != nil && res.RetainedFrom != sketchd.NoTime && res.From < res.RetainedFrom {
		retainedFrom = timePtr(res.RetainedFrom)
	}
	if w != nil && w.Incomplete {
		complete = new(false)
	}
	return retainedFrom, complete
}

func renderWindow(w *query.Window, p *queryParams) (windowJSON, error) {
	out := windowJSON{Start: rfc3339(w.Start), End: rfc3339(w.End), Final: w.Final, Events: w.Events, Panes: w.Panes}
	_, out.Complete = retainedOf(nil, w)
	a, ok := renderAs(w.Sketch, *p)
	if !ok {
		return out, fmt.Errorf("window holds an unexpected sketch %T", w.Sketch)
	}
	out.answers = a
	return out, nil
}

// renderAs renders sk with the API entry of its kind; false for a sketch of
// no known kind.
func renderAs(sk sketch.Sketch, p queryParams) (answers, bool) {
	if sk == nil {
		return answers{}, false
	}
	k, ok := kindAPIs[sk.Kind()]
	if !ok {
		return answers{}, false
	}
	return k.render(sk, p)
}

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
