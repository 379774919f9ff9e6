package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/sketchd/sketchd/internal/cgroup"
)

// TestBoxReport: a run in a memory cgroup says so in the peak-RSS target,
// adds the OOM-kill target (missed on a kill) and the box's counters to
// the memory section; a run without one adds neither.
func TestBoxReport(t *testing.T) {
	r := fixture()
	for _, tg := range r.Targets() {
		if strings.HasPrefix(tg.Name, "small box") {
			t.Fatalf("a run without --memory-box has the target %q", tg.Name)
		}
	}
	r.Box = &MemoryBox{Limit: 400 << 20, Usage: cgroup.Usage{Peak: 399 << 20, LimitHits: 632623, OOMKills: 0}}
	md := RenderMarkdown(r)
	for _, want := range []string{
		"| small box: no OOM kill | 0, sketchd at its defaults in a memory cgroup of 400.0 MiB | 0 OOM kills; the box's peak charge 399.0 MiB, the limit met 632,623 times | yes |",
		"| peak RSS over the whole run | ≤ 400 MiB at the default settings, sketchd in a memory cgroup of 400.0 MiB (--memory-box",
		"limit 400.0 MiB, so its default `--memory-limit`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	r.Box.OOMKills = 1
	if !slices.Contains(r.Missed(), "small box: no OOM kill") {
		t.Errorf("an OOM kill is not a miss: %v", r.Missed())
	}
	r.Box = &MemoryBox{Limit: 400 << 20, Usage: cgroup.Usage{Peak: -1, LimitHits: -1, OOMKills: -1}}
	if md := RenderMarkdown(r); !strings.Contains(md, "unknown OOM kills; the box's peak charge unknown") {
		t.Error("unknown counters are not said to be unknown")
	}
}

// TestBoxJSON: the box reads from and writes to a results file under the
// names it had before it embedded cgroup.Usage (this one is /tmp/ab-box1.json's,
// run 2026-12-06), so that older results still render.
func TestBoxJSON(t *testing.T) {
	const old = `{"limit":419430400,"dir":"/sys/fs/cgroup/memory/sketchd-bench-22066","peak":419438592,"limit_hits":658231,"oom_kills":0}`
	var b MemoryBox
	if err := json.Unmarshal([]byte(old), &b); err != nil {
		t.Fatal(err)
	}
	if b.Peak != 419438592 || b.LimitHits != 658231 || b.OOMKills != 0 {
		t.Errorf("read %+v from %s", b, old)
	}
	got, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != old {
		t.Errorf("got %s, want %s", got, old)
	}
}
