package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
// $XDG_STATE_HOME/sketchd, and the start log names that absolute path.
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
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
