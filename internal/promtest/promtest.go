// Package promtest reads what a Prometheus registry exports, for tests:
// one place for the gathering every package's metric tests need.
package promtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Series gathers g and returns the value of each series, keyed as the
// exposition format writes it: `name` or `name{a="x",b="y"}` (labels in
// the sorted order the registry gives them). Counters, gauges and untyped
// metrics have their value; histograms and summaries their count.
func Series(tb testing.TB, g prometheus.Gatherer) map[string]float64 {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				out[key] = m.GetUntyped().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			case m.GetSummary() != nil:
				out[key] = float64(m.GetSummary().GetSampleCount())
			}
		}
	}
	return out
}

// Value is the value of one series of g (named as Series keys it); the
// test fails when g does not export it.
func Value(tb testing.TB, g prometheus.Gatherer, series string) float64 {
	tb.Helper()
	v, ok := Series(tb, g)[series]
	if !ok {
		tb.Fatalf("%s not exported", series)
	}
	return v
}
