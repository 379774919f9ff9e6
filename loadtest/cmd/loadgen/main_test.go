package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/sketchd/sketchd/internal/gen"
)

func TestRunWritesTruth(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("lg.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	truth := filepath.Join(t.TempDir(), "truth.jsonl")
	var out, errb bytes.Buffer
	err = run(context.Background(), []string{"--nats-url", ns.ClientURL(), "--subject", "lg.test", "--count", "2000",
		"--backfill", "1h", "--countries", "4", "--devices", "2", "--invalid-fraction", "0.01", "--seed", "3", "--truth", truth}, &out, &errb)
	if err != nil {
		t.Fatalf("run: %v (%s)", err, errb.String())
	}
	if !strings.Contains(out.String(), "published 2000 events") {
		t.Errorf("output %q", out.String())
	}
	received, valid := 0, 0
	for {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			break
		}
		received++
		var e map[string]any
		if json.Unmarshal(m.Data, &e) != nil || e["country"] == nil || e["user_id"] == nil {
			continue
		}
		if ts, ok := e["ts"].(string); ok {
			if _, err := time.Parse(time.RFC3339, ts); err == nil {
				valid++
			}
		}
	}
	if received != 2000 {
		t.Errorf("received %d, want 2000", received)
	}
	f, err := os.Open(truth)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var events uint64
	lines := 0
	for sc.Scan() {
		var r gen.PaneRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		events += r.Events
		lines++
	}
	// 1h of backfill: about 60 minutes × 4 countries × 2 devices panes.
	if lines < 200 || lines > 8*61 {
		t.Errorf("%d truth lines", lines)
	}
	if int(events) != valid {
		t.Errorf("the truth holds %d events, %d valid ones arrived", events, valid)
	}
}

func TestRunFlagErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"--backfill", "1h", "--duration", "1s"}, {"--count", "1", "--latency-dist", "zipf"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%q): no error", args)
		}
	}
}
