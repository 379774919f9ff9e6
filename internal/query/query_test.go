package query

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/panetest"
	"github.com/sketchd/sketchd/sketch"
)

// TestQuerySeries checks tumbling and sliding composition, where and
// group_by against a brute-force reference over the raw events.
func TestQuerySeries(t *testing.T) {
	spec := panetest.Spec(t)
	f := newFeeder(t, spec)
	rng := rand.New(rand.NewPCG(7, 8))
	countries, devices := []string{"DE", "FR", "US"}, []string{"ios", "web"}
	type raw struct {
		c, d, user string
		at         time.Time
	}
	var raws []raw
	for i := range 3000 {
		r := raw{countries[rng.IntN(3)], devices[rng.IntN(2)], fmt.Sprint("u", rng.IntN(200)), t0.Add(time.Duration(i) * 2 * time.Second)}
		raws = append(raws, r)
		f.process(t, r.at, 0, panetest.Event(sketchd.EncodeKey(r.c, r.d), r.at, 0, r.user))
	}
	f.flush(t)
	q := New(f.st, Options{})
	tgt := Target{ID: 1, Spec: spec, Watermark: f.watermark()}

	tests := []struct {
		name         string
		qu           Query
		wantGroups   int
		wantWindows  int
		match        func(raw) bool
		group        func(raw) string
		groupOfKey   func(map[string]string) string
		windowStartT time.Time
	}{
		{name: "whole range", qu: Query{From: t0.UnixNano(), To: t0.Add(100 * time.Minute).UnixNano()}, wantGroups: 1, wantWindows: 1},
		{name: "tumbling 10m", qu: Query{From: t0.UnixNano(), To: t0.Add(100 * time.Minute).UnixNano(), Step: int64(10 * time.Minute)}, wantGroups: 1, wantWindows: 10},
		{name: "sliding 30m every 10m", qu: Query{From: t0.UnixNano(), To: t0.Add(100 * time.Minute).UnixNano(), Step: int64(10 * time.Minute), Window: int64(30 * time.Minute)}, wantGroups: 1, wantWindows: 10},
		{name: "where country=DE,FR by device", qu: Query{From: t0.UnixNano(), To: t0.Add(100 * time.Minute).UnixNano(), Step: int64(20 * time.Minute), Where: map[string][]string{"country": {"DE", "FR"}}, GroupBy: []string{"device"}}, wantGroups: 2, wantWindows: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.qu.Aggregate = "users"
			res, err := q.Query(context.Background(), tgt, tt.qu)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Groups) != tt.wantGroups {
				t.Fatalf("%d groups, want %d", len(res.Groups), tt.wantGroups)
			}
			for _, g := range res.Groups {
				if len(g.Windows) != tt.wantWindows {
					t.Fatalf("%d windows, want %d", len(g.Windows), tt.wantWindows)
				}
				for _, w := range g.Windows {
					var n uint64
					distinct := map[string]bool{}
					for _, r := range raws {
						if r.at.UnixNano() < w.Start || r.at.UnixNano() >= w.End {
							continue
						}
						if vals, ok := tt.qu.Where["country"]; ok && !slices.Contains(vals, r.c) {
							continue
						}
						if d, ok := g.Key["device"]; ok && d != r.d {
							continue
						}
						n++
						distinct[r.user] = true
					}
					if w.Events != n {
						t.Errorf("window %s: %d events, want %d", time.Unix(0, w.Start).UTC(), w.Events, n)
					}
					est := w.Sketch.(*sketch.HLL).Estimate()
					if float64(len(distinct)) < est.Lower || float64(len(distinct)) > est.Upper {
						t.Errorf("window %s: distinct %d outside [%v, %v]", time.Unix(0, w.Start).UTC(), len(distinct), est.Lower, est.Upper)
					}
				}
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	spec := panetest.Spec(t)
	q := New(panetest.NewStore(), Options{MaxWindows: 100})
	tgt := Target{ID: 1, Spec: spec}
	from, to := t0.UnixNano(), t0.Add(time.Hour).UnixNano()
	tests := []struct {
		name  string
		qu    Query
		param string
		limit string
	}{
		{"unknown aggregate", Query{Aggregate: "nope", From: from, To: to}, "", ""},
		{"to before from", Query{Aggregate: "users", From: to, To: from}, "to", ""},
		{"step not a multiple", Query{Aggregate: "users", From: from, To: to, Step: int64(90 * time.Second)}, "step", ""},
		{"window not a multiple of step", Query{Aggregate: "users", From: from, To: to, Step: int64(2 * time.Minute), Window: int64(3 * time.Minute)}, "window", ""},
		{"window without step", Query{Aggregate: "users", From: from, To: to, Window: int64(time.Minute)}, "window", ""},
		{"unknown where", Query{Aggregate: "users", From: from, To: to, Where: map[string][]string{"city": {"x"}}}, "where", ""},
		{"unknown group_by", Query{Aggregate: "users", From: from, To: to, GroupBy: []string{"city"}}, "group_by", ""},
		{"too many windows", Query{Aggregate: "users", From: from, To: to + int64(24*time.Hour), Step: int64(time.Minute)}, "", "max_windows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := q.Query(context.Background(), tgt, tt.qu)
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ParamError
			var le *LimitError
			switch {
			case tt.param != "":
				if !errors.As(err, &pe) || pe.Param != tt.param {
					t.Fatalf("err = %v, want a ParamError for %q", err, tt.param)
				}
			case tt.limit != "":
				if !errors.As(err, &le) || le.Limit != tt.limit {
					t.Fatalf("err = %v, want a LimitError for %q", err, tt.limit)
				}
			default:
				if !errors.Is(err, ErrUnknownAggregate) {
					t.Fatalf("err = %v, want ErrUnknownAggregate", err)
				}
			}
		})
	}
}
