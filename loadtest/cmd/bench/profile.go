package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Profile is a pprof profile of sketchd taken during a phase, with the top
// entries of `go tool pprof -top`.
type Profile struct {
	Name    string `json:"name"`    // what was running: "cpu, vegeta 1000 req/s"
	Path    string `json:"path"`    // in the temp dir (kept with --keep)
	Command string `json:"command"` // how to read it
	Top     string `json:"top"`     // the first entries of -top
	// Seconds is a CPU profile's duration and CPU the CPU time sampled in
	// it: CPU/Seconds is the share of one core sketchd got.
	Seconds float64 `json:"seconds,omitempty"`
	CPU     float64 `json:"cpu,omitempty"`
}

// profileCPU takes a CPU profile of sketchd for d (at most 30 s, the API's
// bound) and stores it as name.pprof in the temp dir.
func (r *runner) profileCPU(ctx context.Context, name string, d time.Duration) (Profile, error) {
	secs := max(1, min(30, int(d/time.Second)))
	return r.profile(ctx, name, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), "-top", "-nodecount=25")
}

// profileHeap takes a heap profile of sketchd (in-use bytes).
func (r *runner) profileHeap(ctx context.Context, name string) (Profile, error) {
	return r.profile(ctx, name, "/debug/pprof/heap", "-top", "-nodecount=15", "-sample_index=inuse_space")
}

// heapSnapshot saves a heap profile of sketchd as name.pprof in the temp
// dir without reporting it: the base of profileAllocs.
func (r *runner) heapSnapshot(ctx context.Context, name string) (string, error) {
	b, code, err := r.api.do(ctx, "GET", "/debug/pprof/heap", nil)
	if err != nil {
		return "", err
	}
	if code != 200 {
		return "", fmt.Errorf("GET /debug/pprof/heap: %d: %.200s", code, b)
	}
	path := filepath.Join(r.dir, name+".pprof")
	return path, os.WriteFile(path, b, 0o644)
}

// profileAllocs reports what sketchd allocated since the snapshot base
// (heapSnapshot): the allocation rate a phase puts on the GC, by function.
func (r *runner) profileAllocs(ctx context.Context, name, base string) (Profile, error) {
	return r.profile(ctx, name, "/debug/pprof/heap", "-top", "-nodecount=20", "-sample_index=alloc_space", "-diff_base", base)
}

// memoryProfiles records, once the phase named what has run, sketchd's
// live heap and what it allocated since the snapshot base taken when the
// phase started (or why there is no such profile): the bytes a phase
// puts through the GC, and what stays.
func (r *runner) memoryProfiles(ctx context.Context, what, base string, baseErr error) {
	r.addProfile(r.profileHeap(ctx, "heap, after "+what))
	if baseErr != nil {
		r.addProfile(Profile{Name: "allocations during " + what}, baseErr)
		return
	}
	r.addProfile(r.profileAllocs(ctx, "allocations during "+what, base))
}

func (r *runner) profile(ctx context.Context, name, path string, topArgs ...string) (Profile, error) {
	file := strings.NewReplacer(" ", "-", ",", "", "/", "-").Replace(name) + ".pprof"
	p := Profile{Name: name, Path: filepath.Join(r.dir, file)}
	b, code, err := r.api.do(ctx, "GET", path, nil)
	if err != nil {
		return p, err
	}
	if code != 200 {
		return p, fmt.Errorf("GET %s: %d: %.200s", path, code, b)
	}
	if err := os.WriteFile(p.Path, b, 0o644); err != nil {
		return p, err
	}
	bin := filepath.Join(r.dir, "sketchd")
	args := append([]string{"tool", "pprof"}, topArgs...)
	args = append(args, bin, p.Path)
	p.Command = "go " + strings.Join(args, " ")
	out, err := r.p.run(ctx, 2*time.Minute, "go", args...)
	if err != nil {
		return p, fmt.Errorf("%s: %w", p.Command, err)
	}
	p.Seconds, p.CPU = parseProfileDuration(string(out))
	p.Top = trimPprofTop(string(out))
	return p, nil
}

var durationRE = regexp.MustCompile(`Duration: ([0-9.]+)(ms|s), Total samples = ([0-9.]+)(ms|s)`)

// parseProfileDuration reads "Duration: 6.03s, Total samples = 3.47s" of
// a CPU profile's -top header (0, 0 when absent).
func parseProfileDuration(s string) (seconds, cpu float64) {
	m := durationRE.FindStringSubmatch(s)
	if m == nil {
		return 0, 0
	}
	sec := func(v, unit string) float64 {
		f, _ := strconv.ParseFloat(v, 64)
		if unit == "ms" {
			f /= 1000
		}
		return f
	}
	return sec(m[1], m[2]), sec(m[3], m[4])
}

// trimPprofTop drops the header lines of `go tool pprof -top` before
// "Showing nodes" (file, build id, type, time).
func trimPprofTop(s string) string {
	if i := strings.Index(s, "Showing nodes"); i >= 0 {
		s = s[i:]
	}
	return strings.TrimRight(s, "\n")
}

type profResult struct {
	p   Profile
	err error
}

// profileDuring starts a CPU profile of the load phase that starts now
// and lasts d: 30 s at most, from 1 s in, or, for a phase longer than
// FirstMinute plus 30 s, from just after its first minute (the steady
// state: Timeline.SplitFirstMinute).
func (r *runner) profileDuring(ctx context.Context, name string, d time.Duration) <-chan profResult {
	ch := make(chan profResult, 1)
	wait := time.Second
	if d > FirstMinute+31*time.Second {
		wait = FirstMinute + time.Second
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		p, err := r.profileCPU(ctx, name, d-wait-time.Second)
		ch <- profResult{p, err}
	}()
	return ch
}

// addProfile records a profile, or a note of why there is none.
func (r *runner) addProfile(p Profile, err error) {
	if err != nil {
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("profile %q: %v", p.Name, err))
		return
	}
	r.res.Profiles = append(r.res.Profiles, p)
}
