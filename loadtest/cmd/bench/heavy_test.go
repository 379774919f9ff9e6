package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHeavyTargets: the heavy query's goals are met only by a refusal for
// max_output_windows under 100 ms and 50 MB, and by eight refusals whose
// peak RSS stays within the memory limit.
func TestHeavyTargets(t *testing.T) {
	good := HeavyQuery{Status: 422, Code: "query_too_large", Limit: "max_output_windows", Latency: 40 * time.Millisecond,
		Alloc: 2e6, AtOnceStatus: map[int]int{422: 8}, StartRSS: 300 << 20, PeakRSS: 310 << 20, MemoryLimit: 512 << 20}
	for _, tg := range heavyTargets(&good) {
		if !tg.Met {
			t.Errorf("%s: not met by %+v", tg.Name, good)
		}
	}
	bad := []func(h *HeavyQuery){
		func(h *HeavyQuery) { h.Limit = "max_query_bytes" },
		func(h *HeavyQuery) { h.Status = 200 },
		func(h *HeavyQuery) { h.Latency = 100 * time.Millisecond },
		func(h *HeavyQuery) { h.Alloc = 50e6 },
		func(h *HeavyQuery) { h.AtOnceStatus = map[int]int{422: 7, 503: 1} },
		func(h *HeavyQuery) { h.PeakRSS = h.MemoryLimit + 1 },
		func(h *HeavyQuery) { h.MemoryLimit = 0 },
	}
	for i, spoil := range bad {
		h := good
		h.AtOnceStatus = map[int]int{422: 8}
		spoil(&h)
		met := 0
		for _, tg := range heavyTargets(&h) {
			if tg.Met {
				met++
			}
		}
		if met != 2 {
			t.Errorf("case %d: %d of 3 targets met, want exactly one missed", i, met)
		}
	}
	if got := statusCounts(map[int]int{503: 1, 422: 7}); got != "7 × 422, 1 × 503" {
		t.Errorf("statusCounts = %q", got)
	}
	var b strings.Builder
	good.RestWait = 4200 * time.Millisecond
	renderHeavy(func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...)) }, &Results{Heavy: &good})
	if !strings.Contains(b.String(), "max_output_windows") || !strings.Contains(b.String(), "8 × 422") {
		t.Errorf("report section lacks the limit or the statuses:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "under a fifth of a core (4.2 s after") {
		t.Errorf("report section lacks the wait for rest:\n%s", b.String())
	}
	b.Reset()
	good.RestWait, good.RestTimedOut = 2*time.Minute, true
	renderHeavy(func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...)) }, &Results{Heavy: &good})
	if !strings.Contains(b.String(), "still busy 120.0 s after") || strings.Contains(b.String(), "had stopped") {
		t.Errorf("a wait that gave up must not read as at rest:\n%s", b.String())
	}
}
