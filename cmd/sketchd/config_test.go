package main

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/defaults"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", "../../docs/example-config.yaml"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Streams) != 2 || cfg.Streams[0].Name != "pageviews" || cfg.Streams[1].JetStream {
		t.Fatalf("streams %+v", cfg.Streams)
	}
	if got := cfg.Streams[0].Aggregates["urls"].TopK; got != 20 {
		t.Errorf("top_k %d, want 20", got)
	}
	if cfg.Streams[1].Time.Field != "" || cfg.Streams[1].Granularity != sketchd.Duration(10*time.Second) {
		t.Errorf("metrics stream %+v", cfg.Streams[1])
	}
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("http_addr: 127.0.0.1:1111\ndata_dir: /from/file\nflush_interval: 2s\nack_wait: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(
		[]string{"--config", file, "--http-addr", "127.0.0.1:3333"},
		env(map[string]string{"SKETCHD_HTTP_ADDR": "127.0.0.1:2222", "SKETCHD_DATA_DIR": "/from/env"}),
		io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"flag beats env and file", cfg.HTTPAddr, "127.0.0.1:3333"},
		{"env beats file", cfg.DataDir, "/from/env"},
		{"file beats default", cfg.FlushInterval.String(), "2s"},
		{"default", cfg.NATSListen, "127.0.0.1:4222"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--flush-interval", "soon"}, nil, "setting flush-interval"},
		{nil, map[string]string{"SKETCHD_MAX_ACK_PENDING": "many"}, "SKETCHD_MAX_ACK_PENDING"},
		{[]string{"--log-level", "loud"}, nil, "setting log-level"},
		{[]string{"--flush-interval", "10s", "--ack-wait", "20s"}, nil, "setting ack-wait"},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
		{[]string{"--demo=maybe"}, nil, "demo"},
		{[]string{"--memory-limit", "lots"}, nil, "setting memory-limit"},
		{nil, map[string]string{"SKETCHD_MEMORY_LIMIT": "-1GiB"}, "memory-limit"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := loadConfig(tt.args, env(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to name %q", err, tt.want)
			}
		})
	}
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("streams:\n  - name: x\n    subject: a\n    granularity: 7m\n    aggregates: {u: {sketch: hll, field: u}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig([]string{"--config", file}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "granularity") {
		t.Fatalf("bad stream in file: %v", err)
	}
}

// TestMemoryLimitSplit: --memory-limit (or its environment variable)
// sets the limit the caches and budgets are shares of; explicit cache
// sizes take the place of their shares; without it GOMEMLIMIT (the
// runtime's limit), else the default applies.
func TestMemoryLimitSplit(t *testing.T) {
	cfg, err := loadConfig([]string{"--memory-limit", "1GiB", "--store-block-cache-mb", "40"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.memory(300 << 20) // --memory-limit wins over GOMEMLIMIT
	if m.Budget != 1<<30 || m.Limit != 896<<20 || m.QueryCache != 112<<20 || m.QueriesTotal != 256<<20 || m.StoreBlockCache != 40<<20 || m.JetStreamMemory != 64<<20 {
		t.Errorf("--memory-limit 1GiB --store-block-cache-mb 40: %+v", m)
	}
	cfg, err = loadConfig(nil, env(map[string]string{"SKETCHD_MEMORY_LIMIT": "256MiB", "SKETCHD_QUERY_CACHE_MB": "100"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.memory(math.MaxInt64); m.Budget != 256<<20 || m.QueryCache != 100<<20 || m.StoreBlockCache != 0 {
		t.Errorf("SKETCHD_MEMORY_LIMIT=256MiB SKETCHD_QUERY_CACHE_MB=100: %+v", m)
	}
	cfg, err = loadConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.memory(math.MaxInt64); m.Budget != defaults.MemoryLimitFor(defaults.CgroupMemoryLimit()) || m.Budget > defaults.MemoryLimit {
		t.Errorf("default: %+v", m)
	}
	if m := cfg.memory(300 << 20); m.Budget != 300<<20 {
		t.Errorf("GOMEMLIMIT=300MiB and no --memory-limit: %+v", m)
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out strings.Builder
	_, err := loadConfig([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, errHelp) {
		t.Fatalf("err = %v", err)
	}
	c := defaultConfig()
	for _, s := range c.settings() {
		if !strings.Contains(out.String(), "--"+s.name) || !strings.Contains(out.String(), "$"+s.env()) {
			t.Errorf("--help lacks %s / $%s", s.name, s.env())
		}
	}
}

func TestProcsSetting(t *testing.T) {
	cpus := defaults.CPUs()
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default", nil, nil, defaults.DefaultProcs()},
		{"flag", []string{"--procs", "3"}, nil, 3},
		{"env", nil, map[string]string{"SKETCHD_PROCS": "5"}, 5},
		{"GOMAXPROCS honoured", nil, map[string]string{"GOMAXPROCS": "7"}, cpus},
		{"flag over GOMAXPROCS", []string{"--procs", "6"}, map[string]string{"GOMAXPROCS": "7"}, 6},
	} {
		cfg, err := loadConfig(c.args, env(c.env), io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := cfg.procs(env(c.env)); got != c.want {
			t.Errorf("%s: procs %d, want %d", c.name, got, c.want)
		}
	}
	if _, err := loadConfig([]string{"--procs", "-1"}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "procs") {
		t.Errorf("--procs -1: %v, want an error naming procs", err)
	}
}
