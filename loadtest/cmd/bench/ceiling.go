package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Ceiling is the transport's rate for one mode: a bare `nats bench`
// subscriber (core) or durable consumer (JetStream) on sketchd's embedded
// server, for messages of the events' size.
type Ceiling struct {
	Rate     float64  `json:"rate"` // messages per second received
	Msgs     int      `json:"msgs"`
	Commands []string `json:"commands"`
}

// natsBench runs the transport ceiling benchmarks with the nats CLI.
type natsBench struct {
	p       *procs
	nats    string // path of the nats CLI
	url     string
	dir     string // for CSV files
	msgs    int
	size    int // bytes per message
	timeout time.Duration
}

// core runs `nats bench sub` against `nats bench pub` and returns the
// subscriber's rate.
func (b natsBench) core(ctx context.Context) (Ceiling, error) {
	csvPath := filepath.Join(b.dir, "ceiling-core.csv")
	subject := "bench.ceiling.core"
	common := []string{"--server", b.url, "--msgs", strconv.Itoa(b.msgs), "--size", strconv.Itoa(b.size) + "B", "--no-progress"}
	subArgs := append([]string{"bench", "sub", subject}, append(common, "--csv", csvPath)...)
	pubArgs := append([]string{"bench", "pub", subject}, common...)
	c := Ceiling{Msgs: b.msgs, Commands: []string{shellLine("nats", subArgs) + " &", shellLine("nats", pubArgs)}}

	sub, cancel := b.p.command(ctx, b.timeout, b.nats, subArgs...)
	defer cancel()
	sub.Stdout, sub.Stderr = b.p.log, b.p.log
	fmt.Fprintf(b.p.log, "+ %s &\n", shellLine("nats", subArgs))
	if err := sub.Start(); err != nil {
		return c, err
	}
	b.p.track(sub)
	defer b.p.untrack(sub)
	// The subscriber says nothing machine-readable when it is subscribed;
	// give it a moment (it only has to connect).
	select {
	case <-ctx.Done():
		return c, ctx.Err()
	case <-time.After(time.Second):
	}
	if _, err := b.p.run(ctx, b.timeout, b.nats, pubArgs...); err != nil {
		return c, err
	}
	if err := sub.Wait(); err != nil {
		return c, fmt.Errorf("nats bench sub: %w (a core subscriber that misses messages waits until the timeout)", err)
	}
	rate, err := readBenchCSV(csvPath)
	c.Rate = rate
	return c, err
}

// jetStream fills a stream with `nats bench js pub async` and returns the
// rate of `nats bench js consume` (a durable consumer with a callback).
func (b natsBench) jetStream(ctx context.Context) (Ceiling, error) {
	csvPath := filepath.Join(b.dir, "ceiling-js.csv")
	common := []string{"--server", b.url, "--msgs", strconv.Itoa(b.msgs), "--size", strconv.Itoa(b.size) + "B",
		"--no-progress", "--stream", "BENCHCEILING"}
	pubArgs := append([]string{"bench", "js", "pub", "async", "bench.ceiling.js", "--create", "--purge", "--batch", "1000"}, common...)
	conArgs := append([]string{"bench", "js", "consume", "--batch", "4096", "--acks", "none", "--csv", csvPath}, common...)
	c := Ceiling{Msgs: b.msgs, Commands: []string{shellLine("nats", pubArgs), shellLine("nats", conArgs)}}
	if _, err := b.p.run(ctx, b.timeout, b.nats, pubArgs...); err != nil {
		return c, err
	}
	if _, err := b.p.run(ctx, b.timeout, b.nats, conArgs...); err != nil {
		return c, err
	}
	rate, err := readBenchCSV(csvPath)
	c.Rate = rate
	if err == nil {
		_, err = b.p.run(ctx, time.Minute, b.nats, "--server", b.url, "stream", "rm", "-f", "BENCHCEILING")
	}
	return c, err
}

func readBenchCSV(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return parseBenchCSV(rows)
}

// parseBenchCSV returns the total MsgsPerSec of a `nats bench --csv` file
// (one row per client; the first row is the header).
func parseBenchCSV(rows [][]string) (float64, error) {
	if len(rows) < 2 {
		return 0, errors.New("nats bench CSV: no data rows")
	}
	col := -1
	for i, h := range rows[0] {
		if strings.TrimSpace(h) == "MsgsPerSec" {
			col = i
		}
	}
	if col < 0 {
		return 0, fmt.Errorf("nats bench CSV: no MsgsPerSec column in %q", rows[0])
	}
	total := 0.0
	for _, r := range rows[1:] {
		if col >= len(r) {
			return 0, fmt.Errorf("nats bench CSV: short row %q", r)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(r[col]), 64)
		if err != nil {
			return 0, fmt.Errorf("nats bench CSV: %w", err)
		}
		total += v
	}
	return total, nil
}
