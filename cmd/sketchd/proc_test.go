package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd/internal/cluster/clustertest"
	"github.com/sketchd/sketchd/internal/testbin"
)

// The binary is built once per test binary (internal/testbin).
var binary testbin.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBinary()
	binary.Remove()
	os.Exit(code)
}

// buildBinary returns the path of sketchd built from this directory.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	return binary.Path(tb, "sketchd", ".")
}

// writeConfig writes a config file into dir and returns its path.
func writeConfig(tb testing.TB, dir, yaml string) string {
	tb.Helper()
	path := filepath.Join(dir, "sketchd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// startWithConfig runs the binary on a config and a fresh data dir under
// dir, on loopback ports the kernel picks, with any extra flags.
func startWithConfig(tb testing.TB, dir, yaml string, extra ...string) *sketchdProc {
	tb.Helper()
	args := append([]string{"--config", writeConfig(tb, dir, yaml), "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, extra...)
	return startSketchd(tb, buildBinary(tb), args...)
}

// restart runs the binary again with the same flags (the same config and
// data dir), after the test stopped or killed this process.
func (p *sketchdProc) restart(tb testing.TB) *sketchdProc {
	tb.Helper()
	return startSketchd(tb, p.bin, p.args...)
}

// connect opens a NATS connection and a JetStream context on the
// process's embedded server; the connection closes when the test ends.
func (p *sketchdProc) connect(tb testing.TB, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(p.natsURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}
