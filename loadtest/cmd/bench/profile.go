package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	p.Top = trimPprofTop(string(out))
	return p, nil
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
// and lasts d (the profile covers its first 30 s at most, from 1 s in).
func (r *runner) profileDuring(ctx context.Context, name string, d time.Duration) <-chan profResult {
	ch := make(chan profResult, 1)
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		p, err := r.profileCPU(ctx, name, d-2*time.Second)
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
