package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTierCostTarget: the target compares the mean ingest rates of the
// runs with and without tiers, and the section lists every run.
func TestTierCostTarget(t *testing.T) {
	runs := func(with float64) *TierCost {
		return &TierCost{Events: 1000, Span: 25 * time.Hour, Runs: []TierRun{
			{Stream: "tiers0a", Rate: 100_000, Elapsed: 10 * time.Millisecond, Done: time.Second, CPU: 0.02},
			{Stream: "tiers2b", Tiers: 2, Rate: with, Elapsed: 10 * time.Millisecond, Done: time.Second, CPU: 0.03},
			{Stream: "tiers2c", Tiers: 2, Rate: with, Elapsed: 10 * time.Millisecond, Done: time.Second, CPU: 0.03},
			{Stream: "tiers0d", Rate: 100_000, Elapsed: 10 * time.Millisecond, Done: time.Second, CPU: 0.02},
		}}
	}
	for _, c := range []struct {
		with float64
		met  bool
	}{{90_000, true}, {89_000, false}, {120_000, true}} {
		tg := runs(c.with).target()
		if tg.Met != c.met {
			t.Errorf("rate with tiers %.0f against 100,000: met %v, want %v (%+v)", c.with, tg.Met, c.met, tg)
		}
	}
	tg := runs(95_000).target()
	if want := "95,000/s / 100,000/s = 95% (CPU per event, tiers built: 30.0 / 20.0 µs = 150%)"; tg.Measured != want {
		t.Errorf("measured %q, want %q", tg.Measured, want)
	}
	if (&TierCost{Events: 1}).target().Met {
		t.Error("no runs: met")
	}
	var b strings.Builder
	renderTierCost(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, runs(95_000))
	for _, want := range []string{"| tiers2c | 2 | 95,000/s | 10ms | 1s | 0.03 s | 30.0 µs | 0 |", "Means: 100,000/s without tiers, 95,000/s with two (95%)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("section lacks %q:\n%s", want, b.String())
		}
	}
}
