package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/internal/syncbuf"
)

// occupy listens on a free loopback port for the test's duration and
// returns its address.
func occupy(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestTakenPortsNameTheSetting runs run() with the HTTP or the embedded
// NATS address already taken: the error names the address and the flag and
// environment variable that change it, and (HTTP) nothing was opened.
func TestTakenPortsNameTheSetting(t *testing.T) {
	tests := []struct {
		name string
		args func(taken string) []string
		want []string
	}{
		{"http", func(a string) []string { return []string{"--http-addr", a, "--nats-listen", "127.0.0.1:0"} },
			[]string{"HTTP API", "address already in use", "--http-addr", "$SKETCHD_HTTP_ADDR"}},
		{"nats", func(a string) []string { return []string{"--http-addr", "127.0.0.1:0", "--nats-listen", a} },
			[]string{"embedded NATS", "address already in use", "--nats-listen", "$SKETCHD_NATS_LISTEN", "--nats-url nats://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			taken := occupy(t)
			data := filepath.Join(t.TempDir(), "data")
			args := append(tt.args(taken), "--data-dir", data)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var stderr syncbuf.Buffer
			err := run(ctx, args, env(nil), &stderr, &stderr)
			if err == nil {
				t.Fatal("run succeeded with a taken port")
			}
			for _, w := range append(tt.want, taken) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, serr := os.Stat(data); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("the data dir was created (%v) before the port check failed", serr)
			}
		})
	}
}

func TestDefaultDataDir(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"xdg", map[string]string{"XDG_STATE_HOME": "/xdg/state", "HOME": "/home/u"}, "/xdg/state/sketchd"},
		{"relative xdg is ignored", map[string]string{"XDG_STATE_HOME": "state", "HOME": "/home/u"}, "/home/u/.local/state/sketchd"},
		{"home", map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/sketchd"},
		{"no home", nil, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultDataDir(env(tt.env)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDataDirLoggedAbsolute starts run() without --data-dir: data goes to
// $XDG_STATE_HOME/sketchd, and the start log names that absolute path (and
// the default scheduler threads, which run applied).
func TestDataDirLoggedAbsolute(t *testing.T) {
	state := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--log-format", "text"},
			env(map[string]string{"XDG_STATE_HOME": state, "HOME": "/nonexistent"}), &logs, &logs)
	}()
	waitHTTPAddr(t, &logs, done)
	want := filepath.Join(state, "sketchd")
	if !strings.Contains(logs.String(), "data_dir="+want+"\n") {
		t.Errorf("the start log does not name data_dir=%s:\n%s", want, logs.String())
	}
	for _, sub := range []string{"badger", "nats"} {
		if _, err := os.Stat(filepath.Join(want, sub)); err != nil {
			t.Errorf("%s: %v", sub, err)
		}
	}
	// The default scheduler threads: 4 per CPU, logged and applied.
	procs := defaults.DefaultProcs()
	if line := fmt.Sprintf("procs=%d cpus=%d", procs, defaults.CPUs()); !strings.Contains(logs.String(), line) {
		t.Errorf("the start log does not say %s:\n%s", line, logs.String())
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS %d, want %d", got, procs)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestHealthcheck runs `sketchd healthcheck` against a running instance
// (ok), a port where nothing listens and a listener that is not sketchd
// (both fail).
func TestHealthcheck(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--log-format", "text"},
			env(nil), &logs, &logs)
	}()
	base := waitHTTPAddr(t, &logs, done)
	addr := strings.TrimPrefix(base, "http://")

	var out syncbuf.Buffer
	if err := run(t.Context(), []string{"healthcheck", "--http-addr", addr}, env(nil), &out, &out); err != nil {
		t.Errorf("healthcheck of a running sketchd: %v", err)
	}
	if !strings.Contains(out.String(), "ok http://"+addr+"/livez") {
		t.Errorf("healthcheck printed %q", out.String())
	}
	// The environment the container sets works the same way.
	if err := run(t.Context(), []string{"healthcheck"}, env(map[string]string{"SKETCHD_HTTP_ADDR": addr}), &out, &out); err != nil {
		t.Errorf("healthcheck with $SKETCHD_HTTP_ADDR: %v", err)
	}

	// Nothing listens: a port that was just free.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()
	if err := run(t.Context(), []string{"healthcheck", "--http-addr", free}, env(nil), &out, &out); err == nil {
		t.Error("healthcheck succeeded with nothing listening")
	}
	// Something that is not sketchd: 404 on /livez.
	other := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = other.Serve(ln) }()
	defer other.Close()
	if err := run(t.Context(), []string{"healthcheck", "--http-addr", ln.Addr().String()}, env(nil), &out, &out); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Errorf("healthcheck of a 404: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLivezURL(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080/livez"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080/livez"},
		{":8080", "http://127.0.0.1:8080/livez"},
		{"[::]:8080", "http://[::1]:8080/livez"},
		{"localhost:9", "http://localhost:9/livez"},
	} {
		if got, err := livezURL(tt.addr); err != nil || got != tt.want {
			t.Errorf("livezURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
	if _, err := livezURL("127.0.0.1:0"); err == nil {
		t.Error("port 0 accepted")
	}
}
